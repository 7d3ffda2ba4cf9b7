package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"

	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

var caPEM []byte

func TestMain(m *testing.M) {
	pgtest.Main(m, func(s *pgtest.Server) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		caPEM, err = s.EnableTLS(ctx)
		return err
	})
}

func dialOpts(mode string, tc *tls.Config) DialOptions {
	s := pgtest.Shared()
	return DialOptions{Addr: s.Addr(), TLSMode: mode, TLSConfig: tc,
		Params:      []Param{{"user", s.User}, {"database", "postgres"}, {"application_name", "backend-test"}},
		Credentials: Credentials{Password: s.Password}}
}

func dial(t *testing.T, o DialOptions) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, o)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestServerTLSModes(t *testing.T) {
	t.Parallel()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	verify := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	insecure := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // "require" semantics under test
	for _, c := range []struct {
		mode    string
		tc      *tls.Config
		wantTLS bool
	}{{"disable", nil, false}, {"prefer", insecure, true}, {"require", insecure, true}, {"verify-full", verify, true}} {
		conn, err := dial(t, dialOpts(c.mode, c.tc))
		if err != nil {
			t.Fatalf("%s: %v", c.mode, err)
		}
		_, isTLS := conn.Conn.(*tls.Conn)
		if isTLS != c.wantTLS {
			t.Errorf("%s: TLS = %v", c.mode, isTLS)
		}
		if conn.TxStatus != 'I' || conn.PID == 0 || len(conn.SecretKey) == 0 {
			t.Errorf("%s: not ready: status %q pid %d", c.mode, conn.TxStatus, conn.PID)
		}
	}
}

func TestVerifyFullRejectsUnknownCA(t *testing.T) {
	t.Parallel()
	otherCA, _, err := pgtest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(otherCA)
	_, err = dial(t, dialOpts("verify-full", &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	var uae x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uae) {
		t.Fatalf("want unknown authority, got %v", err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	_, err = dial(t, dialOpts("verify-full", &tls.Config{RootCAs: pool, ServerName: "db.example", MinVersion: tls.VersionTLS12}))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want host name mismatch, got %v", err)
	}
}

func TestWrongPasswordIsServerError(t *testing.T) {
	t.Parallel()
	o := dialOpts("disable", nil)
	o.Credentials.Password = "wrong"
	_, err := dial(t, o)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" {
		t.Fatalf("want 28P01, got %v", err)
	}
	o.Credentials = Credentials{}
	if _, err := dial(t, o); err == nil || !strings.Contains(err.Error(), "server_password") {
		t.Fatalf("no credentials: %v", err)
	}
}

func TestApplyContext(t *testing.T) {
	t.Parallel()
	conn, err := dial(t, dialOpts("disable", nil))
	if err != nil {
		t.Fatal(err)
	}
	// The superuser bypasses RLS: with the check on, Apply must refuse it.
	err = conn.Apply(Context{Variables: []string{"app.current_tenant_id"}, Values: []string{"f"}, Role: pgtest.SuperUser, CheckRole: true})
	if !errors.Is(err, ErrRoleBypassesRLS) {
		t.Fatalf("want ErrRoleBypassesRLS, got %v", err)
	}
	// Without the check, values are applied verbatim, quotes and all.
	hostile := `x'); DROP TABLE y; --\`
	if err := conn.Apply(Context{Variables: []string{"app.v"}, Values: []string{hostile}, Role: pgtest.SuperUser}); err != nil {
		t.Fatal(err)
	}
	if conn.TxStatus != 'I' {
		t.Fatalf("status %q", conn.TxStatus)
	}
	// A bad variable name fails the whole apply.
	if err := conn.Apply(Context{Variables: []string{"no_dot"}, Values: []string{"v"}, Role: pgtest.SuperUser}); err == nil {
		t.Fatal("invalid variable name accepted")
	}
}

func TestSendCancelToUnknownKeyIsHarmless(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := SendCancel(ctx, pgtest.Shared().Addr(), 1, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
}

// TestAuthQueryPoolsAreBounded: database names come from unauthenticated
// clients, so the per-database pools are capped (LRU).
func TestAuthQueryPoolsAreBounded(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared()
	a, err := NewAuthQuery(s.Addr(), s.User, s.Password, "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = $1", "", "disable")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range maxAuthPools + 10 {
		// Unknown databases fail to connect lazily; the pool object is
		// what must stay bounded.
		_, _, _ = a.Lookup(ctx, "nodb_"+strconv.Itoa(i), "x")
	}
	if _, _, err := a.Lookup(ctx, "postgres", s.User); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	n, order := len(a.pools), len(a.order)
	a.mu.Unlock()
	if n > maxAuthPools || order != n {
		t.Fatalf("%d pools, %d in LRU order (cap %d)", n, order, maxAuthPools)
	}
}
