package authpg_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// savepointCounter counts the SAVEPOINT statements a connection sends.
type savepointCounter struct{ n atomic.Int64 }

func (c *savepointCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(d.SQL)), "savepoint") {
		c.n.Add(1)
	}
	return ctx
}

func (c *savepointCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestReadsOnATransactionSkipSavepoints: on a transaction (a caller's, or
// InTenant's) a read runs without the per-statement savepoint, while a
// write keeps it, so an expected error such as ErrHandleTaken still
// leaves the transaction usable.
func TestReadsOnATransactionSkipSavepoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	check := func(t *testing.T, s *authpg.Store, tn uuid.UUID, c *savepointCounter) {
		t.Helper()
		u := mustUser(t, s, tn, "sal")
		x := must(s.CreateSession(ctx, tn, u.ID, nil))
		c.n.Store(0)
		if _, err := s.GetUser(ctx, tn, u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListUsers(ctx, tn); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSession(ctx, tn, x.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ListAuditEvents(ctx, tn, authpg.AuditFilter{}); err != nil {
			t.Fatal(err)
		}
		if n := c.n.Load(); n != 0 {
			t.Errorf("4 reads sent %d SAVEPOINTs, want 0", n)
		}
		if _, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "sal"}); !errors.Is(err, authpg.ErrHandleTaken) {
			t.Fatalf("duplicate handle: %v", err)
		}
		if n := c.n.Load(); n != 1 {
			t.Errorf("a write sent %d SAVEPOINTs, want 1", n)
		}
		if _, err := s.GetUserByHandle(ctx, tn, "sal"); err != nil {
			t.Fatalf("transaction unusable after an expected error: %v", err)
		}
	}
	traced := func(t *testing.T, url string) (*pgxpool.Pool, *savepointCounter) {
		c := &savepointCounter{}
		return newPool(t, url, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = c }), c
	}
	t.Run("direct", func(t *testing.T) {
		pool, c := traced(t, e.super.Config().ConnString())
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		s, _ := authpg.New(tx, opts())
		check(t, s, newTenant(), c)
	})
	t.Run("WithTenant", func(t *testing.T) {
		pool, c := traced(t, e.app.Config().ConnString())
		s, _ := authpg.New(pool, opts())
		tn := newTenant()
		if err := s.InTenant(ctx, tn, func(s *authpg.Store) error { check(t, s, tn, c); return nil }); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("multigres", func(t *testing.T) {
		p := startProxy(t, e)
		tn := newTenant()
		pool, c := traced(t, proxytest.URL(p.Addr, proxytest.AppUser+"."+tn.String(), proxytest.AppUserPassword, e.db))
		s, _ := authpg.New(pool, opts())
		if err := s.InTenant(ctx, tn, func(s *authpg.Store) error { check(t, s, tn, c); return nil }); err != nil {
			t.Fatal(err)
		}
	})
}
