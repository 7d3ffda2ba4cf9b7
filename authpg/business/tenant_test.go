package business_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestUnsetTenantIDIsRejected: a params struct whose TenantID was left
// unset (uuid.Nil) is refused with authpg.ErrInvalidTenant before any
// query, in every way of use, and no row is filed under the nil tenant.
func TestUnsetTenantIDIsRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	check := func(t *testing.T, q *business.Queries) {
		t.Helper()
		if _, err := q.CreateClient(ctx, business.CreateClientParams{Name: "no tenant"}); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("CreateClient without TenantID = %v, want ErrInvalidTenant", err)
		}
		if _, err := q.CreateService(ctx, business.CreateServiceParams{Name: "x", Slug: "x"}); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("CreateService without TenantID = %v, want ErrInvalidTenant", err)
		}
		if _, err := q.HoldSlot(ctx, business.HoldSlotParams{PractitionerID: uuid.New(), StartsAt: at(9, 0), EndsAt: at(10, 0), TTL: time.Minute}); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("HoldSlot without TenantID = %v, want ErrInvalidTenant", err)
		}
		if _, err := q.GetBusinessProfile(ctx, uuid.Nil); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("GetBusinessProfile(uuid.Nil) = %v, want ErrInvalidTenant", err)
		}
		if _, err := q.ListRedemptions(ctx, uuid.Nil, uuid.New()); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("ListRedemptions(uuid.Nil) = %v, want ErrInvalidTenant", err)
		}
	}
	t.Run("direct", func(t *testing.T) { check(t, e.q) })
	t.Run("WithTenant", func(t *testing.T) {
		// Bound to uuid.Nil the RLS check would even accept the insert,
		// so the refusal must come first.
		if err := authpg.WithTenant(ctx, e.app, uuid.Nil, func(pgx.Tx) error { return nil }); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("WithTenant(uuid.Nil) = %v, want ErrInvalidTenant", err)
		}
		err := authpg.WithTenant(ctx, e.app, uuid.New(), func(tx pgx.Tx) error {
			check(t, business.New(tx))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("multigres", func(t *testing.T) {
		pg := pgtest.Shared()
		proxytest.Setup(t, pg, e.db)
		if _, err := e.super.Exec(ctx, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_user`); err != nil {
			t.Fatal(err)
		}
		p := proxytest.StartProxy(t, pg, nil)
		pool, err := pgxpool.New(ctx, proxytest.URL(p.Addr, proxytest.AppUser+"."+uuid.NewString(), proxytest.AppUserPassword, e.db))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		check(t, business.New(pool))
	})
	var n int
	if err := e.super.QueryRow(ctx, `SELECT (SELECT count(*) FROM public.clients WHERE tenant_id = $1)
		+ (SELECT count(*) FROM public.services WHERE tenant_id = $1)`, uuid.Nil).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows under the nil tenant: %v", n, err)
	}
}
