// Package proxytest runs a real multigres proxy in-process against a
// pgtest cluster, for end-to-end tests of the proxy and of code that works
// through it (authpg). The database gets the setup SQL, the seed guide's
// roles and passwords (app_user / app_user_password), and the auth user.
package proxytest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/auth"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/metrics"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// Passwords set on the roles the proxy uses.
const (
	AppUser         = "app_user"
	AppUserPassword = "app_user_password"
	AuthUser        = "multigres_auth"
	AuthPassword    = "multigres_auth_password"
)

// Roles are cluster-wide, so concurrent Init calls in one test binary are
// serialised.
var initMu sync.Mutex

// Setup applies the setup SQL to database db and sets the seed's passwords.
func Setup(t testing.TB, pg *pgtest.Server, db string) {
	t.Helper()
	SetupWith(t, pg, db, nil)
}

// SetupWith is Setup with the init options changed by mutate.
func SetupWith(t testing.TB, pg *pgtest.Server, db string, mutate func(*mgsql.Options)) {
	t.Helper()
	initMu.Lock()
	defer initMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, pg.SuperURL(db))
	if err != nil {
		t.Fatalf("proxytest: connect: %v", err)
	}
	defer conn.Close(context.Background())
	opts := mgsql.Options{AuthPassword: AuthPassword, Harden: true}
	if mutate != nil {
		mutate(&opts)
	}
	if err := mgsql.Init(ctx, conn, opts); err != nil {
		t.Fatalf("proxytest: init: %v", err)
	}
	if _, err := conn.Exec(ctx, pgtest.StateAuditSQL); err != nil {
		t.Fatalf("proxytest: install the state audit: %v", err)
	}
	// Roles are cluster-wide: re-setting the password would draw a new salt
	// under the feet of other tests' proxies mid-login (SCRAM passthrough
	// needs the verifier they looked up). Set it only when it differs.
	var current *string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'").Scan(&current); err != nil {
		t.Fatalf("proxytest: read verifier: %v", err)
	}
	if sec, err := auth.ParseSecret(deref(current)); current == nil || err != nil || !auth.VerifyPassword(sec, AppUser, AppUserPassword) {
		if _, err := conn.Exec(ctx, "ALTER ROLE app_user PASSWORD 'app_user_password'"); err != nil {
			t.Fatalf("proxytest: password: %v", err)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Config returns a proxy config pointing at pg, with auth_query.
func Config(pg *pgtest.Server) *config.Config {
	cfg := config.Default()
	cfg.UpstreamHost = pg.Host
	cfg.UpstreamPort = pg.Port
	cfg.AuthPassword = AuthPassword
	cfg.AuthFailureDelay = 20 * time.Millisecond
	cfg.ServerTLSMode = "disable"
	cfg.HandshakeTimeout = 10 * time.Second
	// Every test that pools in transaction mode checks the invariant that
	// a server connection's session state is what the proxy believes.
	cfg.StateAudit = true
	return cfg
}

// Proxy is a running proxy.
type Proxy struct {
	Addr   string
	Server *frontend.Server
	Config *config.Config

	// Set by StartProxyMetrics only.
	Metrics  *metrics.Metrics
	AdminURL string // http://127.0.0.1:port of the admin server
}

// StartProxy starts a proxy with Config(pg) changed by mutate, and shuts it
// down at cleanup.
func StartProxy(t testing.TB, pg *pgtest.Server, mutate func(*config.Config)) *Proxy {
	t.Helper()
	return StartProxyHooks(t, pg, mutate, frontend.Hooks{})
}

// StartProxyHooks is StartProxy with hooks installed before serving.
func StartProxyHooks(t testing.TB, pg *pgtest.Server, mutate func(*config.Config), hooks frontend.Hooks) *Proxy {
	t.Helper()
	return start(t, pg, mutate, func(_ *Proxy, srv *frontend.Server, _ *slog.Logger) { srv.Hooks = hooks })
}

// StartProxyMetrics is StartProxy with metrics installed (metrics_max_tenants
// from the config) and the admin HTTP server on 127.0.0.1:0, whatever
// admin_listen says; both stop at cleanup.
func StartProxyMetrics(t testing.TB, pg *pgtest.Server, mutate func(*config.Config)) *Proxy {
	t.Helper()
	return start(t, pg, mutate, func(p *Proxy, srv *frontend.Server, logger *slog.Logger) {
		p.Metrics = metrics.New(p.Config.MetricsMaxTenants)
		p.Metrics.Instrument(srv)
		hs, err := admin.StartHTTP("127.0.0.1:0", p.Metrics.Registry, srv, logger)
		if err != nil {
			t.Fatalf("proxytest: admin: %v", err)
		}
		p.AdminURL = "http://" + hs.Addr()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := hs.Shutdown(ctx); err != nil {
				t.Errorf("proxytest: admin shutdown: %v", err)
			}
		})
	})
}

// start builds the server, lets setup install hooks, then serves.
func start(t testing.TB, pg *pgtest.Server, mutate func(*config.Config), setup func(*Proxy, *frontend.Server, *slog.Logger)) *Proxy {
	t.Helper()
	cfg := Config(pg)
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("proxytest: config: %v", err)
	}
	level := slog.LevelWarn
	if os.Getenv("MULTIGRES_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := frontend.New(cfg, logger)
	if err != nil {
		t.Fatalf("proxytest: new: %v", err)
	}
	p := &Proxy{Server: srv, Config: cfg}
	setup(p, srv, logger)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; err != nil && !errors.Is(err, frontend.ErrServerClosed) {
			t.Errorf("proxytest: serve: %v", err)
		}
		for _, f := range srv.StateAuditFailures() {
			t.Errorf("proxytest: state audit: %s", f)
		}
	})
	p.Addr = l.Addr().String()
	return p
}

// Start starts a proxy and returns its address (see StartProxy).
func Start(t testing.TB, pg *pgtest.Server, mutate func(*config.Config)) string {
	t.Helper()
	return StartProxy(t, pg, mutate).Addr
}

// URL is a connection URL for user through the proxy at addr.
func URL(addr, user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: addr, Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}
