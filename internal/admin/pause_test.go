package admin_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// waitFor polls SHOW CLIENTS until cond holds, within the test's context.
func waitFor(t *testing.T, ctx context.Context, con *pgx.Conn, what string, cond func([]map[string]string) bool) {
	t.Helper()
	for {
		rows := show(t, ctx, con, "SHOW CLIENTS")
		if cond(rows) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; clients: %v", what, ctx.Err(), rows)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func countState(rows []map[string]string, db, state string) int {
	n := 0
	for _, r := range rows {
		if r["database"] == db && r["state"] == state {
			n++
		}
	}
	return n
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	idle := tenant(t, ctx, p, db, "app_user.acme")
	inTx := tenant(t, ctx, p, db, "app_user.acme")
	if _, err := inTx.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	con := console(t, ctx, p)
	watch := console(t, ctx, p)

	// PAUSE waits for the open transaction.
	paused := make(chan error, 1)
	go func() { _, err := run(ctx, con, "PAUSE "+db); paused <- err }()

	// A new login waits (the pause is in effect even while PAUSE waits).
	type result struct {
		conn *pgx.Conn
		err  error
	}
	login := make(chan result, 1)
	go func() {
		c, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "app_user.globex", proxytest.AppUserPassword, db))
		login <- result{c, err}
	}()
	waitFor(t, ctx, watch, "the new login to wait", func(rows []map[string]string) bool {
		r := find(rows, "user", "app_user.globex")
		return r != nil && r["state"] == "waiting"
	})
	select {
	case err := <-paused:
		t.Fatalf("PAUSE returned with a transaction open: %v", err)
	default:
	}
	if pool := find(show(t, ctx, watch, "SHOW POOLS"), "database", db); pool == nil || num(t, pool, "cl_waiting") != 1 {
		t.Errorf("SHOW POOLS while paused: %v", pool)
	}
	if _, err := inTx.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-paused:
		if err != nil {
			t.Fatalf("PAUSE: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("PAUSE did not return after COMMIT")
	}
	if _, err := run(ctx, watch, "PAUSE "+db); pgCode(err) != "55000" {
		t.Errorf("PAUSE twice: %v", err)
	}

	// An idle client's next query waits too.
	queried := make(chan error, 1)
	go func() { _, err := idle.Exec(ctx, "SELECT 1"); queried <- err }()
	waitFor(t, ctx, watch, "the idle client's query to wait", func(rows []map[string]string) bool {
		return countState(rows, db, "waiting") == 2
	})
	select {
	case r := <-login:
		t.Fatalf("login finished while paused: %v", r.err)
	case err := <-queried:
		t.Fatalf("query finished while paused: %v", err)
	default:
	}

	// Other databases are not paused.
	other := pgtest.Shared().CreateDB(t)
	proxytest.Setup(t, pgtest.Shared(), other)
	tenant(t, ctx, p, other, "app_user.initech")

	if tag, err := run(ctx, con, "RESUME "+db); err != nil || tag != "RESUME" {
		t.Fatalf("RESUME: %q %v", tag, err)
	}
	select {
	case r := <-login:
		if r.err != nil {
			t.Fatalf("login after RESUME: %v", r.err)
		}
		r.conn.Close(ctx)
	case <-ctx.Done():
		t.Fatal("login still waiting after RESUME")
	}
	select {
	case err := <-queried:
		if err != nil {
			t.Fatalf("query after RESUME: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("query still waiting after RESUME")
	}
}

func TestPauseAllAndKillWaiting(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	c := tenant(t, ctx, p, db, "app_user.acme")
	con := console(t, ctx, p)
	if tag, err := run(ctx, con, "PAUSE"); err != nil || tag != "PAUSE" {
		t.Fatalf("PAUSE: %q %v", tag, err)
	}
	// The console itself is never paused.
	if got := show(t, ctx, con, "SHOW VERSION"); len(got) != 1 {
		t.Fatal("console paused")
	}
	queried := make(chan error, 1)
	go func() { _, err := c.Exec(ctx, "SELECT 1"); queried <- err }()
	waitFor(t, ctx, con, "the query to wait", func(rows []map[string]string) bool {
		return countState(rows, db, "waiting") == 1
	})
	// KILL ends a waiting client.
	if tag, err := run(ctx, con, "KILL acme"); err != nil || tag != "KILL 1" {
		t.Fatalf("KILL: %q %v", tag, err)
	}
	select {
	case err := <-queried:
		if err == nil {
			t.Fatal("killed client's query succeeded")
		}
	case <-ctx.Done():
		t.Fatal("killed client still waiting")
	}
	if _, err := run(ctx, con, "RESUME"); err != nil {
		t.Fatalf("RESUME: %v", err)
	}
}

// TestPauseLoginTimeout: a login held by PAUSE fails with 57P03 at
// handshake_timeout.
func TestPauseLoginTimeout(t *testing.T) {
	t.Parallel()
	p, db := start(t, func(c *config.Config) { c.HandshakeTimeout = 700 * time.Millisecond })
	ctx := ctxT(t)
	con := console(t, ctx, p)
	if _, err := run(ctx, con, "PAUSE "+db); err != nil {
		t.Fatal(err)
	}
	_, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P03" || pe.Message != fmt.Sprintf("database %q is paused", db) {
		t.Fatalf("login while paused: %v, want 57P03", err)
	}
	if _, err := run(ctx, con, "RESUME "+db); err != nil {
		t.Fatal(err)
	}
	tenant(t, ctx, p, db, "app_user.acme")
}

// TestCancelPause: a CancelRequest (psql's Ctrl-C) ends a PAUSE that waits
// for a transaction, with 57014; the pause itself stays until RESUME.
func TestCancelPause(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	tx := tenant(t, ctx, p, db, "app_user.acme")
	if _, err := tx.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	con := console(t, ctx, p)
	watch := console(t, ctx, p)
	paused := make(chan error, 1)
	go func() { _, err := run(ctx, con, "PAUSE"); paused <- err }()
	// The console shows active while PAUSE waits.
	waitFor(t, ctx, watch, "PAUSE to run", func(rows []map[string]string) bool {
		n := 0
		for _, r := range rows {
			if r["user"] == adminUser && r["state"] == "active" {
				n++
			}
		}
		return n == 2 // the watcher itself and the pausing console
	})
	if err := con.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-paused:
		if pgCode(err) != "57014" {
			t.Fatalf("cancelled PAUSE: %v, want 57014", err)
		}
	case <-ctx.Done():
		t.Fatal("PAUSE not cancelled")
	}
	if _, err := run(ctx, watch, "PAUSE"); pgCode(err) != "55000" {
		t.Errorf("pause not in effect after cancel: %v", err)
	}
	if _, err := run(ctx, con, "RESUME"); err != nil {
		t.Errorf("RESUME: %v", err)
	}
	if _, err := tx.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
}
