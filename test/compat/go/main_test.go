// Package compat checks that the Go PostgreSQL clients people already use
// (pgx v5 in every query mode, database/sql with lib/pq and with pgx's
// stdlib driver) work through a real multigres proxy unchanged, against a
// real PostgreSQL, and that tenant isolation holds whatever protocol path a
// client takes. Every test runs once per pool mode in poolModes.
package compat

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// poolModes are the pool modes every test runs in. Only session mode exists
// today (pool_mode = transaction is refused at startup); adding a mode is
// one more entry here, plus a mode switch in the few tests whose answer
// depends on it (LISTEN for the bypass user, server-side statements).
var poolModes = []string{"session", "transaction"}

// Seed rows: acme has two contacts, globex one. Each test gets a fresh
// database, so the serial ids are 1, 2 and 3 in this order.
var seedNames = map[string][]string{
	"acme":   {"Alice", "Bob"},
	"globex": {"Gina"},
}

// otherTenant is the tenant whose rows a tenant must not reach.
var otherTenant = map[string]string{"acme": "globex", "globex": "acme"}

// env is one test's database, with the seed guide's contacts table
// protected by multigres_protect, and a proxy in front of it.
type env struct {
	pg    *pgtest.Server
	db    string
	mode  string
	proxy *proxytest.Proxy
	ids   map[string][]int32 // seed row ids by tenant
}

// eachMode runs f as a parallel subtest per pool mode, each with its own
// database and proxy (configured by mutate, then given the pool mode).
func eachMode(t *testing.T, mutate func(*config.Config), f func(t *testing.T, e *env)) {
	t.Helper()
	for _, mode := range poolModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f(t, newEnv(t, mode, mutate))
		})
	}
}

func newEnv(t *testing.T, mode string, mutate func(*config.Config)) *env {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	ctx := testCtx(t)
	if err := pg.Exec(ctx, db, `
		CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id varchar(255) NOT NULL, name text NOT NULL, email text);
		SELECT multigres_protect('contacts', 'tenant_id');
		INSERT INTO contacts (tenant_id, name, email) VALUES
			('acme', 'Alice', 'alice@acme.test'), ('acme', 'Bob', 'bob@acme.test'), ('globex', 'Gina', 'gina@globex.test');`); err != nil {
		t.Fatalf("seed contacts: %v", err)
	}
	proxy := proxytest.StartProxy(t, pg, func(c *config.Config) {
		if mutate != nil {
			mutate(c)
		}
		c.PoolMode = mode
	})
	return &env{pg: pg, db: db, mode: mode, proxy: proxy,
		ids: map[string][]int32{"acme": {1, 2}, "globex": {3}}}
}

// url is a postgres:// URL for user through the proxy.
func (e *env) url(user, password string) string {
	return proxytest.URL(e.proxy.Addr, user, password, e.db)
}

// tenantURL is the URL of a tenant of app_user, e.g. app_user.acme.
func (e *env) tenantURL(tenant string) string {
	return e.url(proxytest.AppUser+"."+tenant, proxytest.AppUserPassword)
}

// bypassURL is the superuser_bypass user (postgres) through the proxy.
func (e *env) bypassURL() string { return e.url(pgtest.SuperUser, pgtest.SuperPassword) }

// super is a superuser connection straight to PostgreSQL, past the proxy:
// the ground truth tests compare against.
func (e *env) super(t *testing.T) *pgx.Conn {
	t.Helper()
	return e.pg.Connect(t, e.db)
}

// pgxConnect connects with pgx through the proxy after change adjusts the
// parsed config, and closes the connection at cleanup.
func pgxConnect(t *testing.T, url string, change func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	if change != nil {
		change(cfg)
	}
	conn, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("connect as %s: %v", cfg.User, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sqlState is the SQLSTATE of a server error from any of the drivers, or ""
// when err is not a server error.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return string(pqErr.Code)
	}
	return ""
}

// wantState fails unless err is a server error with SQLSTATE code.
func wantState(t *testing.T, err error, code, what string) {
	t.Helper()
	if got := sqlState(err); got != code {
		t.Fatalf("%s: want SQLSTATE %s, got %v", what, code, err)
	}
}

// client is what the isolation checks need from a driver: a query whose
// single text column comes back as strings, and an exec that reports the
// rows it affected. args are passed with the driver's own placeholders ($1).
type client struct {
	query func(ctx context.Context, sql string, args ...any) ([]string, error)
	exec  func(ctx context.Context, sql string, args ...any) (int64, error)
}

// pgxClient drives conn; opts (for example a QueryExecMode) go before the
// arguments of every call.
func pgxClient(conn *pgx.Conn, opts ...any) client {
	return client{
		query: func(ctx context.Context, sql string, args ...any) ([]string, error) {
			rows, err := conn.Query(ctx, sql, append(append([]any{}, opts...), args...)...)
			if err != nil {
				return nil, fmt.Errorf("query: %w", err)
			}
			return pgx.CollectRows(rows, pgx.RowTo[string])
		},
		exec: func(ctx context.Context, sql string, args ...any) (int64, error) {
			tag, err := conn.Exec(ctx, sql, append(append([]any{}, opts...), args...)...)
			if err != nil {
				return 0, fmt.Errorf("exec: %w", err)
			}
			return tag.RowsAffected(), nil
		},
	}
}

// checkIsolation is the check every client passes, as tenant: it sees only
// its own rows, cannot update or delete the other tenant's row, cannot move
// its row to the other tenant, and cannot insert a row for the other tenant
// (42501, the policy's WITH CHECK). The ground truth is read past the proxy.
func checkIsolation(t *testing.T, e *env, c client, tenant string) {
	t.Helper()
	ctx := testCtx(t)
	other := otherTenant[tenant]
	otherID := e.ids[other][0]

	got, err := c.query(ctx, "SELECT name FROM contacts WHERE name IN ('Alice', 'Bob', 'Gina') ORDER BY name")
	if err != nil {
		t.Fatalf("%s: select: %v", tenant, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(seedNames[tenant]) {
		t.Fatalf("%s sees %v, want %v", tenant, got, seedNames[tenant])
	}
	got, err = c.query(ctx, "SELECT DISTINCT tenant_id FROM contacts")
	if err != nil {
		t.Fatalf("%s: select tenants: %v", tenant, err)
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{tenant}) {
		t.Fatalf("%s sees rows of tenants %v", tenant, got)
	}
	got, err = c.query(ctx, "SELECT name FROM contacts WHERE id = $1", otherID)
	if err != nil || len(got) != 0 {
		t.Fatalf("%s reading %s's row by id: %v, %v; want nothing", tenant, other, got, err)
	}
	got, err = c.query(ctx, "SELECT current_tenant_id()")
	if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{tenant}) {
		t.Fatalf("current_tenant_id() = %v, %v; want %s", got, err, tenant)
	}

	n, err := c.exec(ctx, "UPDATE contacts SET name = 'pwned' WHERE id = $1", otherID)
	if err != nil || n != 0 {
		t.Fatalf("%s updating %s's row: %d rows, %v; want 0 rows", tenant, other, n, err)
	}
	n, err = c.exec(ctx, "DELETE FROM contacts WHERE id = $1", otherID)
	if err != nil || n != 0 {
		t.Fatalf("%s deleting %s's row: %d rows, %v; want 0 rows", tenant, other, n, err)
	}
	_, err = c.exec(ctx, "UPDATE contacts SET tenant_id = $1 WHERE id = $2", other, e.ids[tenant][0])
	wantState(t, err, "42501", tenant+" moving its row to "+other)
	_, err = c.exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", other, "intruder")
	wantState(t, err, "42501", tenant+" inserting a row for "+other)

	// Past the proxy: the other tenant's row is untouched, nothing leaked in.
	super := e.super(t)
	var name, owner string
	if err := super.QueryRow(ctx, "SELECT name, tenant_id FROM contacts WHERE id = $1", otherID).Scan(&name, &owner); err != nil {
		t.Fatalf("ground truth: %s's row: %v", other, err)
	}
	if name != seedNames[other][0] || owner != other {
		t.Fatalf("ground truth: %s's row is now %q of %q", other, name, owner)
	}
	var bad int
	if err := super.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE name IN ('pwned', 'intruder') OR (id = $1 AND tenant_id <> $2)",
		e.ids[tenant][0], tenant).Scan(&bad); err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	if bad != 0 {
		t.Fatalf("ground truth: %d rows written across tenants", bad)
	}
}

// tenantRows are the names of tenant's rows, read past the proxy.
func tenantRows(t *testing.T, e *env, tenant string) []string {
	t.Helper()
	rows, err := e.super(t).Query(testCtx(t), "SELECT name FROM contacts WHERE tenant_id = $1 ORDER BY name", tenant)
	if err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	return names
}

// waitIdle waits (bounded by ctx) until no backend in the test database
// runs query: the server really stopped the work, not just the client.
func waitIdle(t *testing.T, ctx context.Context, e *env, query string) {
	t.Helper()
	if err := pollActivity(ctx, e.super(t), e.db, query, false); err != nil {
		t.Fatal(err)
	}
}

// pollActivity polls pg_stat_activity (bounded by ctx) until a backend in
// database db is running query (active true) or none is (active false).
// It only returns an error, so it can run in a goroutine.
func pollActivity(ctx context.Context, super *pgx.Conn, db, query string, active bool) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		if err := super.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = $2",
			db, query).Scan(&n); err != nil {
			return fmt.Errorf("pg_stat_activity for %q: %w", query, err)
		}
		if (n > 0) == active {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q to be active=%v: %w", query, active, ctx.Err())
		case <-tick.C:
		}
	}
}
