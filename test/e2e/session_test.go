package e2e

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// backends counts the test database's server sessions of app_user.
func (e *env) backends(t *testing.T, super *pgx.Conn) int {
	t.Helper()
	var n int
	if err := super.QueryRow(testCtx(t),
		"SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = 'app_user'", e.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond every 10 ms for at most 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// TestClientGoneClosesServerSession: when a client disconnects, its server
// session ends too; the proxy leaks no upstream connections.
func TestClientGoneClosesServerSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	super := e.super(t)
	conns := make([]*pgx.Conn, 3)
	for i := range conns {
		conns[i] = e.connect(t, "app_user.acme")
	}
	if n := e.backends(t, super); n != 3 {
		t.Fatalf("%d server sessions for 3 clients", n)
	}
	// A graceful Terminate, and an abrupt close of the socket.
	conns[0].Close(testCtx(t))
	conns[1].PgConn().Conn().Close()
	eventually(t, "server sessions of departed clients to end", func() bool { return e.backends(t, super) == 1 })
	eventually(t, "proxy to forget departed clients", func() bool { return e.proxy.Server.ConnCount() == 1 })
	if got := names(t, conns[2], "SELECT current_tenant_id()"); !eq(got, []string{"acme"}) {
		t.Fatalf("remaining session: %v", got)
	}
}

// TestServerGoneEndsClientSession: a server session terminated by an
// administrator passes its FATAL to the client and the proxy closes the
// client connection.
func TestServerGoneEndsClientSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	super := e.super(t)
	acme := e.connect(t, "app_user.acme")
	var pid int
	if err := acme.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := super.QueryRow(testCtx(t), "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate: %v %v", ok, err)
	}
	// The server's FATAL reaches the client, relayed as it came.
	_, err := acme.Exec(testCtx(t), "SELECT 1")
	wantPgError(t, err, "57P01", "terminating connection due to administrator command")
	eventually(t, "proxy to close the client", func() bool { return e.proxy.Server.ConnCount() == 0 })
}
