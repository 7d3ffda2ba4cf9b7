package admin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// The server the console drives; asserted here, where importing both
// packages makes no cycle.
var _ admin.Proxy = (*frontend.Server)(nil)

// The console user is a real login role, found through auth_query in
// pg_authid like any client.
const (
	adminUser     = "mg_console_admin"
	adminPassword = "mg_console_password"
)

func TestMain(m *testing.M) {
	pgtest.Main(m, func(s *pgtest.Server) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Idempotent: the role is cluster-wide.
		return s.Exec(ctx, "postgres", fmt.Sprintf(`DO $$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%[1]s') THEN
				CREATE ROLE %[1]s LOGIN PASSWORD '%[2]s';
			END IF; END $$`, adminUser, adminPassword))
	})
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start runs a proxy with the console on, auth_query in a fresh database.
func start(t *testing.T, mutate func(*config.Config)) (*proxytest.Proxy, string) {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	p := proxytest.StartProxy(t, pg, func(c *config.Config) {
		c.AdminUsers = []string{adminUser}
		c.AuthDatabase = db // the admin database does not exist upstream
		if mutate != nil {
			mutate(c)
		}
	})
	return p, db
}

// console opens an admin connection in pgx's simple protocol mode.
func console(t *testing.T, ctx context.Context, p *proxytest.Proxy) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(proxytest.URL(p.Addr, adminUser, adminPassword, admin.Database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func tenant(t *testing.T, ctx context.Context, p *proxytest.Proxy, db, user string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, proxytest.URL(p.Addr, user, proxytest.AppUserPassword, db))
	if err != nil {
		t.Fatalf("tenant connect %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// show runs a SHOW and returns its rows as column→value maps.
func show(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) []map[string]string {
	t.Helper()
	return proxytest.Rows(t, ctx, conn, sql)
}

func find(rows []map[string]string, col, val string) map[string]string {
	for _, r := range rows {
		if r[col] == val {
			return r
		}
	}
	return nil
}

func num(t *testing.T, row map[string]string, col string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(row[col], 10, 64)
	if err != nil {
		t.Fatalf("column %s = %q: %v", col, row[col], err)
	}
	return n
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// run runs a command and returns its tag.
func run(ctx context.Context, conn *pgx.Conn, sql string) (string, error) {
	tag, err := conn.Exec(ctx, sql)
	return tag.String(), err
}

func TestShowCommands(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	acme := tenant(t, ctx, p, db, "app_user.acme")
	var pid uint32
	if err := acme.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Exec(ctx, "SELECT 1/0"); pgCode(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	con := console(t, ctx, p)

	pools := show(t, ctx, con, "SHOW POOLS")
	pool := find(pools, "database", db)
	if pool == nil || pool["user"] != "app_user" || num(t, pool, "cl_active") != 1 || num(t, pool, "sv_idle") != 1 ||
		num(t, pool, "sv_active") != 0 || num(t, pool, "cl_waiting") != 0 || pool["pool_mode"] != "session" {
		t.Errorf("SHOW POOLS = %v", pools)
	}
	if pool != nil && pool["cluster"] != "default" {
		t.Errorf("SHOW POOLS cluster = %q, want default", pool["cluster"])
	}

	clients := show(t, ctx, con, "show clients;") // case and semicolon
	cl := find(clients, "tenant", "acme")
	if cl == nil || cl["user"] != "app_user.acme" || cl["database"] != db || cl["state"] != "idle" || cl["type"] != "C" ||
		cl["role"] != "app_user" || cl["addr"] != "127.0.0.1" || cl["connect_time"] == "" {
		t.Errorf("SHOW CLIENTS tenant row = %v (all: %v)", cl, clients)
	}
	if cl != nil && cl["cluster"] != "default" {
		t.Errorf("SHOW CLIENTS cluster = %q, want default", cl["cluster"])
	}
	if self := find(clients, "user", adminUser); self == nil || self["database"] != "multigres" || self["state"] != "active" {
		t.Errorf("SHOW CLIENTS console row = %v", self)
	}

	servers := show(t, ctx, con, "SHOW SERVERS")
	sv := find(servers, "tenant", "acme")
	if sv == nil || sv["remote_pid"] != strconv.Itoa(int(pid)) || sv["user"] != "app_user" || sv["state"] != "idle" ||
		sv["link"] != cl["id"] || sv["port"] != strconv.Itoa(pgtest.Shared().Port) {
		t.Errorf("SHOW SERVERS = %v (backend pid %d)", servers, pid)
	}
	if sv != nil && sv["cluster"] != "default" {
		t.Errorf("SHOW SERVERS cluster = %q, want default", sv["cluster"])
	}

	stats := find(show(t, ctx, con, "SHOW STATS"), "database", db)
	if stats == nil || num(t, stats, "total_query_count") < 2 || num(t, stats, "total_xact_count") < 2 ||
		num(t, stats, "total_received") == 0 || num(t, stats, "total_sent") == 0 || num(t, stats, "total_logins") != 1 {
		t.Errorf("SHOW STATS = %v", stats)
	}

	ten := find(show(t, ctx, con, "SHOW TENANTS"), "tenant", "acme")
	if ten == nil || ten["role"] != "app_user" || ten["database"] != db || num(t, ten, "connections") != 1 ||
		num(t, ten, "queries") < 2 || num(t, ten, "errors") != 1 || num(t, ten, "total_connections") != 1 {
		t.Errorf("SHOW TENANTS = %v", ten)
	}
	if ten != nil && ten["cluster"] != "default" {
		t.Errorf("SHOW TENANTS cluster = %q, want default", ten["cluster"])
	}
	if routes := show(t, ctx, con, "SHOW ROUTES"); len(routes) != 1 || routes[0]["match"] != "*" ||
		routes[0]["source"] != "default_cluster" || routes[0]["cluster"] != "default" {
		t.Errorf("SHOW ROUTES = %v", routes)
	}

	cfg := show(t, ctx, con, "Show Config")
	if r := find(cfg, "key", "admin_users"); r == nil || r["value"] != adminUser || r["default"] != "" || r["changeable"] != "yes" {
		t.Errorf("SHOW CONFIG admin_users = %v", r)
	}
	if r := find(cfg, "key", "auth_password"); r == nil || r["value"] != config.Redacted || strings.Contains(fmt.Sprint(cfg), proxytest.AuthPassword) {
		t.Errorf("SHOW CONFIG leaks auth_password: %v", r)
	}
	if r := find(cfg, "key", "port"); r == nil || r["changeable"] != "no" {
		t.Errorf("SHOW CONFIG port = %v", r)
	}

	ver := show(t, ctx, con, "  SHOW   VERSION ;  ")
	if len(ver) != 1 || !strings.HasPrefix(ver[0]["version"], "multigres ") {
		t.Errorf("SHOW VERSION = %v", ver)
	}

	// After the tenant leaves, its connection count drops, totals stay.
	acme.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ten = find(show(t, ctx, con, "SHOW TENANTS"), "tenant", "acme")
		if ten != nil && num(t, ten, "connections") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant still counted as connected: %v", ten)
		}
	}
	if num(t, ten, "total_connections") != 1 {
		t.Errorf("SHOW TENANTS after close = %v", ten)
	}
}

func TestConsoleErrors(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	con := console(t, ctx, p)
	for _, q := range []string{"SELECT 1", "SHOW nothing", "SHOW", "SHOW POOLS extra", "KILL", "PAUSE a b", "RELOAD now"} {
		if _, err := run(ctx, con, q); pgCode(err) != "42601" {
			t.Errorf("%q: got %v, want 42601", q, err)
		}
	}
	var pe *pgconn.PgError
	if _, err := run(ctx, con, "FROBNICATE"); !errors.As(err, &pe) || !strings.Contains(pe.Hint, "SHOW POOLS") {
		t.Errorf("unknown command: %v (hint should list commands)", err)
	}
	if _, err := run(ctx, con, "RESUME"); pgCode(err) != "55000" {
		t.Errorf("RESUME unpaused: %v", err)
	}
	if _, err := run(ctx, con, "RESUME "+db); pgCode(err) != "55000" {
		t.Errorf("RESUME db unpaused: %v", err)
	}
	for _, q := range []string{"MOVE", "MOVE TENANT acme", "MOVE TENANT acme INTO default", "MOVE TENANT acme TO default NOW", "SHOW ROUTES extra",
		"REFRESH", "REFRESH TENANT", "REFRESH TENANTS acme", "REFRESH ROUTES"} {
		if _, err := run(ctx, con, q); pgCode(err) != "42601" {
			t.Errorf("%q: got %v, want 42601", q, err)
		}
	}
	if _, err := run(ctx, con, "MOVE TENANT acme TO nowhere"); pgCode(err) != "42704" {
		t.Errorf("MOVE to an unknown cluster: %v", err)
	}
	if _, err := run(ctx, con, "MOVE TENANT acme TO default"); pgCode(err) != "55000" {
		t.Errorf("MOVE to the cluster the tenant is on: %v", err)
	}
	if _, err := run(ctx, con, "RESUME TENANT acme"); pgCode(err) != "55000" {
		t.Errorf("RESUME TENANT unpaused: %v", err)
	}
	if _, err := run(ctx, con, "REFRESH TENANT acme"); pgCode(err) != "55000" || !strings.Contains(err.Error(), "there is no tenant directory to refresh") {
		t.Errorf("REFRESH TENANT without a tenant directory: %v, want 55000", err)
	}
	// Without a configuration source, RELOAD reports an error.
	if _, err := run(ctx, con, "RELOAD"); pgCode(err) != "55000" {
		t.Errorf("RELOAD without source: %v", err)
	}
	// The connection still works after errors.
	if got := show(t, ctx, con, "SHOW VERSION"); len(got) != 1 {
		t.Errorf("after errors: %v", got)
	}
}

func TestAdminLoginRefused(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	// A tenant user, and a real role not in admin_users.
	for _, user := range []string{"app_user.acme", "app_user", "postgres"} {
		_, err := pgx.Connect(ctx, proxytest.URL(p.Addr, user, proxytest.AppUserPassword, admin.Database))
		if pgCode(err) != "28000" {
			t.Errorf("%s to the console: %v, want 28000", user, err)
		}
	}
	_, err := pgx.Connect(ctx, proxytest.URL(p.Addr, adminUser, "wrong", admin.Database))
	if pgCode(err) != "28P01" {
		t.Errorf("admin with a wrong password: %v, want 28P01", err)
	}
	// The admin user is not a tenant user: it cannot reach a real database.
	_, err = pgx.Connect(ctx, proxytest.URL(p.Addr, adminUser, adminPassword, db))
	if err == nil {
		t.Error("the admin user logged in to a tenant database")
	}

	off := proxytest.StartProxy(t, pgtest.Shared(), nil) // admin_users empty
	_, err = pgx.Connect(ctx, proxytest.URL(off.Addr, adminUser, adminPassword, admin.Database))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "admin console is off") {
		t.Errorf("console off: %v", err)
	}
}

func TestExtendedProtocolRefused(t *testing.T) {
	t.Parallel()
	p, _ := start(t, nil)
	ctx := ctxT(t)
	con := console(t, ctx, p)
	_, err := con.PgConn().Prepare(ctx, "", "SHOW POOLS", nil)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || pe.Message != "the admin console supports the simple query protocol only" {
		t.Fatalf("Parse: %v", err)
	}
	// Extended-protocol Query in pgx's default mode.
	cfg, err := pgx.ParseConfig(proxytest.URL(p.Addr, adminUser, adminPassword, admin.Database))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close(ctx)
	if _, err := ext.Exec(ctx, "SHOW VERSION", 1); pgCode(err) != "0A000" {
		t.Errorf("extended exec: %v", err)
	}
	// Both connections recovered at Sync.
	if got := show(t, ctx, con, "SHOW VERSION"); len(got) != 1 {
		t.Errorf("after refusal: %v", got)
	}
	if _, err := ext.Exec(ctx, "RESUME", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "55000" {
		t.Errorf("simple query after refusal: %v", err)
	}
}

func TestKillTenant(t *testing.T) {
	t.Parallel()
	p, db := start(t, nil)
	ctx := ctxT(t)
	a1 := tenant(t, ctx, p, db, "app_user.acme")
	a2 := tenant(t, ctx, p, db, "app_user.acme")
	g := tenant(t, ctx, p, db, "app_user.globex")
	con := console(t, ctx, p)
	tag, err := run(ctx, con, "kill acme")
	if err != nil || tag != "KILL 2" {
		t.Fatalf("KILL acme: %q %v", tag, err)
	}
	for i, c := range []*pgx.Conn{a1, a2} {
		if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
			t.Errorf("acme connection %d survived KILL", i)
		}
	}
	if _, err := g.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("globex connection was closed: %v", err)
	}
	if tag, err := run(ctx, con, "KILL nobody"); err != nil || tag != "KILL 0" {
		t.Errorf("KILL nobody: %q %v", tag, err)
	}
}

func TestReloadAndShutdown(t *testing.T) {
	t.Parallel()
	p, _ := start(t, nil)
	ctx := ctxT(t)
	// Atomics: the functions run on the console's connection goroutine.
	var reloads atomic.Int32
	var reloadErr atomic.Pointer[error]
	down := make(chan struct{})
	p.Server.SetControl(func() error {
		reloads.Add(1)
		if e := reloadErr.Load(); e != nil {
			return *e
		}
		return nil
	}, func() { close(down) })
	con := console(t, ctx, p)
	if tag, err := run(ctx, con, "RELOAD"); err != nil || tag != "RELOAD" || reloads.Load() != 1 {
		t.Fatalf("RELOAD: %q %v (reloads %d)", tag, err, reloads.Load())
	}
	fail := errors.New("tls_cert: no such file")
	reloadErr.Store(&fail)
	var pe *pgconn.PgError
	if _, err := run(ctx, con, "reload"); !errors.As(err, &pe) || !strings.Contains(pe.Message, "tls_cert: no such file") {
		t.Fatalf("failing RELOAD: %v", err)
	}
	if tag, err := run(ctx, con, "SHUTDOWN"); err != nil || tag != "SHUTDOWN" {
		t.Fatalf("SHUTDOWN: %q %v", tag, err)
	}
	select {
	case <-down:
	case <-ctx.Done():
		t.Fatal("SHUTDOWN did not call the shutdown function")
	}
}

// TestShutdownWithoutControl: with no function from main, SHUTDOWN drains
// the server itself, and the console connection is closed.
func TestShutdownWithoutControl(t *testing.T) {
	t.Parallel()
	p, _ := start(t, nil)
	ctx := ctxT(t)
	con := console(t, ctx, p)
	if tag, err := run(ctx, con, "SHUTDOWN"); err != nil || tag != "SHUTDOWN" {
		t.Fatalf("SHUTDOWN: %q %v", tag, err)
	}
	for !p.Server.Draining() || p.Server.ConnCount() > 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("server not drained: draining %v, conns %d", p.Server.Draining(), p.Server.ConnCount())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := pgx.Connect(ctx, proxytest.URL(p.Addr, adminUser, adminPassword, admin.Database)); err == nil {
		t.Error("connected after SHUTDOWN")
	}
}

// TestAdminAuthFile: a console user may come from auth_file; a user listed
// in admin_users with no secret anywhere cannot log in.
func TestAdminAuthFile(t *testing.T) {
	t.Parallel()
	userlist := filepath.Join(t.TempDir(), "userlist.txt")
	if err := os.WriteFile(userlist, []byte(`"ops" "ops_password"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := start(t, func(c *config.Config) {
		c.AuthFile = userlist
		c.AdminUsers = []string{"ops", "ghost"}
	})
	ctx := ctxT(t)
	cfg, err := pgx.ParseConfig(proxytest.URL(p.Addr, "ops", "ops_password", admin.Database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	con, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("auth_file console user: %v", err)
	}
	defer con.Close(ctx)
	if got := show(t, ctx, con, "SHOW VERSION"); len(got) != 1 {
		t.Errorf("SHOW VERSION = %v", got)
	}
	// Listed in admin_users but in neither auth_file nor pg_authid.
	if _, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "ghost", "ghost", admin.Database)); pgCode(err) != "28P01" {
		t.Errorf("admin user with no secret: %v, want 28P01", err)
	}
}

// TestConsoleTLSRequired: with client_tls_mode = require, the console
// refuses plaintext logins and serves TLS ones.
func TestConsoleTLSRequired(t *testing.T) {
	t.Parallel()
	_, pair, err := pgtest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pair.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pair.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := start(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey, c.ClientTLSMode = certFile, keyFile, "require"
	})
	ctx := ctxT(t)
	_, err = pgx.Connect(ctx, proxytest.URL(p.Addr, adminUser, adminPassword, admin.Database))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "requires TLS") {
		t.Fatalf("plaintext console login: %v, want 28000", err)
	}
	url := strings.Replace(proxytest.URL(p.Addr, adminUser, adminPassword, admin.Database), "sslmode=disable", "sslmode=require", 1)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	con, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("TLS console login: %v", err)
	}
	defer con.Close(ctx)
	self := find(show(t, ctx, con, "SHOW CLIENTS"), "user", adminUser)
	if self == nil || self["tls"] != "true" {
		t.Errorf("SHOW CLIENTS console row = %v, want tls true", self)
	}
}

// TestShowServersTransactionPool: in transaction mode SHOW SERVERS lists
// the pooled server connections: the one a client holds inside a
// transaction is active with that client as link and its tenant, and it is
// idle with no link once the transaction ends.
func TestShowServersTransactionPool(t *testing.T) {
	t.Parallel()
	p, db := start(t, func(c *config.Config) { c.PoolMode, c.DefaultPoolSize = "transaction", 2 })
	ctx := ctxT(t)
	acme := tenant(t, ctx, p, db, "app_user.acme")
	con := console(t, ctx, p)
	tx, err := acme.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	cl := find(show(t, ctx, con, "SHOW CLIENTS"), "tenant", "acme")
	if cl == nil {
		t.Fatal("SHOW CLIENTS has no acme client")
	}
	servers := show(t, ctx, con, "SHOW SERVERS")
	sv := find(servers, "remote_pid", strconv.Itoa(int(pid)))
	if sv == nil || sv["state"] != "active" || sv["link"] != cl["id"] || sv["tenant"] != "acme" || sv["user"] != "app_user" ||
		sv["database"] != db || sv["port"] != strconv.Itoa(pgtest.Shared().Port) || sv["connect_time"] == "" {
		t.Fatalf("in a transaction, SHOW SERVERS = %v (backend pid %d, client %v)", servers, pid, cl["id"])
	}
	if sv["cluster"] != "default" {
		t.Errorf("pooled SHOW SERVERS cluster = %q, want default", sv["cluster"])
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The client sees the commit's ReadyForQuery just before its server
	// goes back to the pool, so poll (bounded by ctx).
	for {
		servers = show(t, ctx, con, "SHOW SERVERS")
		sv = find(servers, "remote_pid", strconv.Itoa(int(pid)))
		if sv != nil && sv["state"] == "idle" && sv["link"] == "0" && sv["tenant"] == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after the commit, SHOW SERVERS = %v (backend pid %d): %v", servers, pid, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
