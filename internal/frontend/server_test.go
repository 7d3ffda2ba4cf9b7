package frontend_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

func setup(t *testing.T, mutate func(*config.Config)) (*proxytest.Proxy, string) {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	return proxytest.StartProxy(t, pg, mutate), db
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(ctx context.Context, p *proxytest.Proxy, db, user string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, proxytest.URL(p.Addr, user, proxytest.AppUserPassword, db))
}

// TestReloadAppliesToNewConnections: a reloadable key takes effect for new
// connections while open ones carry on; a restart-only key is reported and
// not applied.
func TestReloadAppliesToNewConnections(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	open, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	next := p.Server.Config().Clone()
	next.TenantValuePattern = `^[a-z]{1,3}$`
	next.Port = 7777
	restart, err := p.Server.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(restart, "port") || p.Server.Config().Port == 7777 {
		t.Fatalf("port: restart=%v effective=%d", restart, p.Server.Config().Port)
	}
	if _, err := connect(ctx, p, db, "app_user.acme"); err == nil {
		t.Fatal("reloaded tenant_value_pattern not applied to a new connection")
	}
	if c, err := connect(ctx, p, db, "app_user.abc"); err != nil {
		t.Fatalf("matching tenant refused after reload: %v", err)
	} else {
		c.Close(ctx)
	}
	var one int
	if err := open.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("open connection dropped by reload: %v", err)
	}
	bad := next.Clone()
	bad.TLSCert = "/nonexistent.crt"
	bad.TLSKey = "/nonexistent.key"
	if _, err := p.Server.Reload(bad); err == nil {
		t.Fatal("reload with unreadable certificate accepted")
	}
	if p.Server.Config().TenantValuePattern != `^[a-z]{1,3}$` {
		t.Fatal("failed reload changed the configuration")
	}
}

// TestShutdownWaitsForSessionsThenCloses: Shutdown stops accepting at once,
// lets open sessions run until its context ends, then closes them.
func TestShutdownWaitsForSessionsThenCloses(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	srv, err := frontend.New(proxytest.Config(pg), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	ctx := ctxT(t)
	p := &proxytest.Proxy{Addr: l.Addr().String(), Server: srv}
	session, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	shutCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Shutdown(shutCtx) }()
	// While shutting down, the open session still works...
	var one int
	if err := session.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("session cut before shutdown_timeout: %v", err)
	}
	// ...and no new connection is accepted.
	if c, err := connect(ctx, p, db, "app_user.acme"); err == nil {
		c.Close(ctx)
		t.Fatal("new connection accepted during shutdown")
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 5*time.Second {
		t.Fatalf("Shutdown took %v", el)
	}
	if err := session.QueryRow(ctx, "SELECT 1").Scan(&one); err == nil {
		t.Fatal("session still open after shutdown timeout")
	}
	if err := <-served; !errors.Is(err, frontend.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if n := srv.ConnCount(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
}

// TestPanicInOneConnectionIsContained: a panic inside one connection's
// goroutine closes that connection only; the server keeps serving.
func TestPanicInOneConnectionIsContained(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	p := proxytest.StartProxyHooks(t, pg, nil, frontend.Hooks{ConnState: func(_ uint64, _, to frontend.ConnState) {
		if to == frontend.StateInjecting && armed.CompareAndSwap(true, false) {
			panic("injected test panic")
		}
	}})
	ctx := ctxT(t)
	armed.Store(true)
	_, err := connect(ctx, p, db, "app_user.acme")
	if err == nil {
		t.Fatal("connection survived a panic in its handshake")
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		t.Logf("client saw %s %s", pe.Code, pe.Message)
	}
	c, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatalf("server stopped serving after a panic: %v", err)
	}
	c.Close(ctx)
}
