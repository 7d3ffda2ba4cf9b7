package frontend_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// wantPgError asserts that err is a PostgreSQL error with code whose
// message contains msg.
func wantPgError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want SQLSTATE %s %q, got %v", code, msg, err)
	}
	if pe.Code != code || !strings.Contains(pe.Message, msg) {
		t.Fatalf("want SQLSTATE %s %q, got %s %q", code, msg, pe.Code, pe.Message)
	}
}

// waitFor polls cond until it holds or ctx ends. The proxy releases a
// tenant's slot in the connection's own goroutine after the client has
// gone, so there is no event to wait on from here.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestTenantAllowDeny(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	var denied atomic.Int32
	p := proxytest.StartProxyHooks(t, pg, func(c *config.Config) {
		c.TenantAllow = []string{"acme", "team-*"}
		c.TenantDeny = []string{"team-x*", "globex"}
	}, frontend.Hooks{AuthFailure: func(reason string) {
		if reason == frontend.AuthReasonTenantDenied {
			denied.Add(1)
		}
	}})
	ctx := ctxT(t)
	for _, tenant := range []string{"acme", "team-a"} {
		c, err := connect(ctx, p, db, "app_user."+tenant)
		if err != nil {
			t.Fatalf("%s refused: %v", tenant, err)
		}
		c.Close(ctx)
	}
	for tenant, msg := range map[string]string{
		"globex":  `tenant "globex" is not allowed (tenant_deny)`,
		"team-x1": `tenant "team-x1" is not allowed (tenant_deny)`, // matches team-* too: deny wins
		"initech": `tenant "initech" is not allowed (tenant_allow)`,
	} {
		_, err := connect(ctx, p, db, "app_user."+tenant)
		wantPgError(t, err, "28000", msg)
	}
	if n := denied.Load(); n != 3 {
		t.Fatalf("AuthFailure(%q) reported %d times, want 3", frontend.AuthReasonTenantDenied, n)
	}
}

func TestTenantMaxConnections(t *testing.T) {
	t.Parallel()
	p, db := setup(t, func(c *config.Config) { c.TenantMaxConnections = 5 })
	ctx := ctxT(t)
	var open []*pgx.Conn
	for i := range 5 {
		c, err := connect(ctx, p, db, "app_user.acme")
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		open = append(open, c)
	}
	t.Cleanup(func() {
		for _, c := range open {
			c.Close(context.Background())
		}
	})
	_, err := connect(ctx, p, db, "app_user.acme")
	wantPgError(t, err, "53300", `too many connections for tenant "acme" (tenant_max_connections = 5)`)
	// Other tenants have their own count.
	other, err := connect(ctx, p, db, "app_user.globex")
	if err != nil {
		t.Fatalf("other tenant refused: %v", err)
	}
	other.Close(ctx)
	// The five are unharmed, and closing one frees a slot.
	var n int
	if err := open[4].QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	open[4].Close(ctx)
	open = open[:4]
	waitFor(ctx, t, "the slot to be released", func() bool { return p.Server.TenantConnections()["acme"] == 4 })
	sixth, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatalf("connection after one closed: %v", err)
	}
	open = append(open, sixth)
}

func TestTenantRateLimit(t *testing.T) {
	t.Parallel()
	const rate, burst, attempts = 5, 5, 30
	p, db := setup(t, func(c *config.Config) { c.TenantRateLimit = rate })
	ctx := ctxT(t)
	var (
		mu                sync.Mutex
		admitted, refused int
		wg                sync.WaitGroup
	)
	start := time.Now()
	for range attempts {
		wg.Go(func() {
			c, err := connect(ctx, p, db, "app_user.acme")
			mu.Lock()
			defer mu.Unlock()
			var pe *pgconn.PgError
			switch {
			case err == nil:
				admitted++
				c.Close(ctx)
			case errors.As(err, &pe) && pe.Code == "53300" &&
				strings.Contains(pe.Message, `too many new connections for tenant "acme" (tenant_rate_limit = 5 per second)`):
				refused++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// A bucket that starts full admits at most burst plus what refills
	// while the logins run.
	bound := burst + int(rate*elapsed.Seconds())
	t.Logf("admitted %d, refused %d in %v (bound %d)", admitted, refused, elapsed, bound)
	if admitted+refused != attempts || refused == 0 || admitted == 0 || admitted > bound {
		t.Fatalf("admitted %d, refused %d of %d in %v; want 1..%d admitted and some refused", admitted, refused, attempts, elapsed, bound)
	}
	// Another tenant has its own bucket.
	c, err := connect(ctx, p, db, "app_user.globex")
	if err != nil {
		t.Fatalf("other tenant limited by acme's bucket: %v", err)
	}
	c.Close(ctx)
}

func TestTenantStatementTimeout(t *testing.T) {
	t.Parallel()
	p, db := setup(t, func(c *config.Config) { c.TenantStatementTimeout = 150 * time.Millisecond })
	ctx := ctxT(t)
	c, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var st string
	if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "150ms" {
		t.Fatalf("statement_timeout = %q, %v; want 150ms", st, err)
	}
	_, err = c.Exec(ctx, "SELECT pg_sleep(5)")
	wantPgError(t, err, "57014", "statement timeout")
	// The tenant cannot lift its own limit, in any spelling.
	for _, sql := range []string{"SET statement_timeout = 0", "SET LOCAL statement_timeout = 0", "RESET statement_timeout",
		"SELECT set_config('statement_timeout', '0', false)", "SET Statement_Timeout TO '1h'"} {
		_, err := c.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		wantPgError(t, err, "42501", "statement_timeout is not allowed")
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && !strings.Contains(pe.Hint, "tenant_statement_timeout") {
			t.Errorf("%s: hint %q does not name tenant_statement_timeout", sql, pe.Hint)
		}
	}
	if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "150ms" {
		t.Fatalf("after refused changes statement_timeout = %q, %v; want 150ms", st, err)
	}
	_, err = c.Exec(ctx, "SELECT pg_sleep(5)")
	wantPgError(t, err, "57014", "statement timeout")
}

// TestTenantStatementTimeoutOff: without the key, statement_timeout is the
// tenant's own business.
func TestTenantStatementTimeoutOff(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	c, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SET statement_timeout = '1h'"); err != nil {
		t.Fatalf("SET statement_timeout without tenant_statement_timeout: %v", err)
	}
}

func TestTenantIdleTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	p, db := setup(t, func(c *config.Config) { c.TenantIdleTimeout = timeout })
	ctx := ctxT(t)

	// An idle connection gets 57P05 and is closed.
	cfg, err := pgconn.ParseConfig(proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db))
	if err != nil {
		t.Fatal(err)
	}
	fatal := make(chan *pgconn.PgError, 1)
	cfg.OnPgError = func(_ *pgconn.PgConn, pe *pgconn.PgError) bool {
		select {
		case fatal <- pe:
		default:
		}
		return pe.Severity != "FATAL"
	}
	idle, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close(context.Background())
	if _, err := idle.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
		t.Fatal(err)
	}
	idleStart := time.Now()

	// Meanwhile a busy connection runs a statement longer than the
	// timeout, and one in a transaction block sits idle in it: neither is
	// idle in the sense of the key.
	busy, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	tx, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close(ctx)
	if _, err := tx.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := busy.Exec(ctx, "SELECT pg_sleep(0.8)"); err != nil {
		t.Fatalf("busy connection: %v", err)
	}

	// Wait (bounded) for the idle connection to be told and closed.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = idle.WaitForNotification(waitCtx)
	elapsed := time.Since(idleStart)
	if err == nil || waitCtx.Err() != nil {
		t.Fatalf("idle connection not closed within 5s: %v", err)
	}
	select {
	case pe := <-fatal:
		if pe.Code != "57P05" || !strings.Contains(pe.Message, "tenant_idle_timeout = 300ms") {
			t.Fatalf("idle close error = %s %q", pe.Code, pe.Message)
		}
	default:
		t.Fatalf("idle connection closed without an error response: %v", err)
	}
	if elapsed < timeout {
		t.Fatalf("idle connection closed after %v, before tenant_idle_timeout %v", elapsed, timeout)
	}
	// The busy and the in-transaction connections are still there.
	var n int
	if err := busy.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("busy connection closed: %v", err)
	}
	if err := tx.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatalf("in-transaction connection closed: %v", err)
	}
}

// TestReloadTenantDeny: adding a tenant to tenant_deny refuses its new
// connections at once and leaves its open one alone.
func TestReloadTenantDeny(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	open, err := connect(ctx, p, db, "app_user.globex")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	next := p.Server.Config().Clone()
	next.TenantDeny = []string{"glob*"}
	if _, err := p.Server.Reload(next); err != nil {
		t.Fatal(err)
	}
	_, err = connect(ctx, p, db, "app_user.globex")
	wantPgError(t, err, "28000", `tenant "globex" is not allowed (tenant_deny)`)
	var tenant string
	if err := open.QueryRow(ctx, "SELECT current_setting('app.current_tenant_id')").Scan(&tenant); err != nil || tenant != "globex" {
		t.Fatalf("open connection after reload: %q, %v", tenant, err)
	}
	c, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatalf("other tenant refused after reload: %v", err)
	}
	c.Close(ctx)
}

// writeCert writes a fresh self-signed certificate and key with the given
// common name to certFile and keyFile, replacing what is there.
func writeCert(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func peerCN(t *testing.T, c *pgx.Conn) string {
	t.Helper()
	tc, ok := c.PgConn().Conn().(*tls.Conn)
	if !ok {
		t.Fatalf("connection is not TLS: %T", c.PgConn().Conn())
	}
	return tc.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestReloadRotatesTLSCertificate: a certificate replaced on disk applies to
// new connections after Reload; an open TLS connection keeps working.
func TestReloadRotatesTLSCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writeCert(t, certFile, keyFile, "multigres-one")
	p, db := setup(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.ClientTLSMode = "require"
	})
	ctx := ctxT(t)
	tlsURL := func() string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword("app_user.acme", proxytest.AppUserPassword), Host: p.Addr,
			Path: "/" + db, RawQuery: "sslmode=require"}
		return u.String()
	}
	old, err := pgx.Connect(ctx, tlsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close(ctx)
	if cn := peerCN(t, old); cn != "multigres-one" {
		t.Fatalf("first certificate CN = %q", cn)
	}

	writeCert(t, certFile, keyFile, "multigres-two")
	if _, err := p.Server.Reload(p.Server.Config().Clone()); err != nil {
		t.Fatal(err)
	}
	fresh, err := pgx.Connect(ctx, tlsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close(ctx)
	if cn := peerCN(t, fresh); cn != "multigres-two" {
		t.Fatalf("after rotation and reload, new connection sees CN %q", cn)
	}
	var s string
	if err := old.QueryRow(ctx, "SELECT current_setting('app.current_tenant_id')").Scan(&s); err != nil || s != "acme" {
		t.Fatalf("open TLS connection after rotation: %q, %v", s, err)
	}
	if cn := peerCN(t, old); cn != "multigres-one" {
		t.Fatalf("open connection's certificate changed to %q", cn)
	}
}

// TestReloadIdleTimeoutReachesOpenConnections: tenant_idle_timeout set by a
// reload applies to a connection opened before it, from its next idle
// period.
func TestReloadIdleTimeoutReachesOpenConnections(t *testing.T) {
	t.Parallel()
	p, db := setup(t, nil)
	ctx := ctxT(t)
	c, err := connect(ctx, p, db, "app_user.acme")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	next := p.Server.Config().Clone()
	next.TenantIdleTimeout = 200 * time.Millisecond
	if _, err := p.Server.Reload(next); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.PgConn().WaitForNotification(waitCtx); err == nil || waitCtx.Err() != nil {
		t.Fatalf("open connection not closed by the reloaded idle timeout within 5s: %v", err)
	}
	if !c.IsClosed() {
		t.Fatal("connection still open after the idle timeout")
	}
}
