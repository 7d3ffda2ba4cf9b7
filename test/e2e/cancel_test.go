package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// waitActive polls (bounded by ctx) until the test database has an active
// backend running query, so a cancel cannot race ahead of the query.
func (e *env) waitActive(t *testing.T, ctx context.Context, super *pgx.Conn, query string) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		err := super.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = $2",
			e.db, query).Scan(&n)
		if err != nil {
			t.Fatalf("waiting for %q to run: %v", query, err)
		}
		if n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%q never became active: %v", query, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestCancelRequest: pgx's CancelRequest sends the proxy's BackendKeyData;
// the proxy maps it to the server connection and pg_sleep(10) stops at once.
func TestCancelRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := testCtx(t)
	super := e.super(t)
	acme := e.connect(t, "app_user.acme")
	// The key is the proxy's own: the client never learns the server's pid.
	var serverPID uint32
	if err := acme.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&serverPID); err != nil {
		t.Fatal(err)
	}
	if acme.PgConn().PID() == serverPID {
		t.Fatalf("BackendKeyData carries the server's pid %d", serverPID)
	}
	const sleep = "SELECT pg_sleep(10)"
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := acme.Exec(ctx, sleep)
		done <- err
	}()
	e.waitActive(t, ctx, super, sleep)
	cancelAt := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := acme.PgConn().CancelRequest(cctx); err != nil {
		t.Fatalf("cancel request: %v", err)
	}
	select {
	case err := <-done:
		wantPgError(t, err, "57014", "canceling statement due to user request")
	case <-time.After(5 * time.Second):
		t.Fatal("query still running 5 s after the cancel")
	}
	if d := time.Since(cancelAt); d > time.Second {
		t.Fatalf("cancel took %v", d)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("query plus cancel took %v", d)
	}
	// The session survives a cancelled statement.
	if got := names(t, acme, "SELECT current_tenant_id()"); !eq(got, []string{"acme"}) {
		t.Fatalf("after cancel: %v", got)
	}
}

// TestCancelWithWrongKeyIsIgnored: a CancelRequest whose secret does not
// match (or whose pid is unknown) is dropped silently, as PostgreSQL does,
// and the running query completes.
func TestCancelWithWrongKeyIsIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := testCtx(t)
	super := e.super(t)
	acme := e.connect(t, "app_user.acme")
	pid, secret := acme.PgConn().PID(), acme.PgConn().SecretKey()
	wrong := append([]byte(nil), secret...)
	wrong[0] ^= 0xff
	const sleep = "SELECT pg_sleep(0.7)"
	done := make(chan error, 1)
	go func() {
		_, err := acme.Exec(ctx, sleep)
		done <- err
	}()
	e.waitActive(t, ctx, super, sleep)
	for _, key := range []struct {
		pid    uint32
		secret []byte
	}{{pid, wrong}, {pid ^ 0x5a5a5a5a, secret}} {
		r := rawDial(t, e.proxy.Addr)
		r.write(wire.EncodeCancel(key.pid, key.secret))
		// No answer, only a close, which comes after the proxy has
		// handled (here: dropped) the request.
		r.wantClosed()
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("query hit by a cancel with a wrong key: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("query did not finish")
	}
	if got := names(t, acme, "SELECT current_tenant_id()"); !eq(got, []string{"acme"}) {
		t.Fatalf("after wrong cancel: %v", got)
	}
}
