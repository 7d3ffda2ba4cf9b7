package routing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// clusterNames are the names the proxy knows the clusters by, in the
// order of clusters.
var clusterNames = [3]string{"default", "c2", "c3"}

// clusters are the package's three PostgreSQL clusters.
var clusters [3]*pgtest.Server

// The console user, a login role on the default cluster (admin console
// logins are looked up there).
const (
	adminUser     = "mg_route_admin"
	adminPassword = "mg_route_admin_password"
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Getenv("PGTEST_DATABASE_URL") != "" {
		fmt.Fprintln(os.Stderr, "routing: these tests start three clusters of their own; skipped with PGTEST_DATABASE_URL")
		return 0
	}
	var wg sync.WaitGroup
	errs := make([]error, len(clusters))
	for i := range clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clusters[i], errs[i] = pgtest.Start()
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range clusters {
			if s != nil {
				s.Stop()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "routing: start clusters:", err)
		return 1
	}
	if err := setupRoles(); err != nil {
		fmt.Fprintln(os.Stderr, "routing: roles:", err)
		return 1
	}
	return m.Run()
}

// setupRoles gives app_user the same SCRAM verifier on every cluster, as
// a tenant that moves needs (SCRAM passthrough logs in with the keys of
// the verifier the client authenticated against), and creates the
// console user on the default cluster.
func setupRoles() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first := clusters[0]
	if err := first.Exec(ctx, "postgres", "CREATE ROLE app_user LOGIN PASSWORD '"+proxytest.AppUserPassword+"'"); err != nil {
		return err
	}
	if err := first.Exec(ctx, "postgres", "CREATE ROLE "+adminUser+" LOGIN PASSWORD '"+adminPassword+"'"); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, first.SuperURL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var verifier string
	if err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'").Scan(&verifier); err != nil {
		return err
	}
	for _, pg := range clusters[1:] {
		if err := pg.Exec(ctx, "postgres", "CREATE ROLE app_user LOGIN PASSWORD '"+verifier+"'"); err != nil {
			return err
		}
	}
	return nil
}

// ledgerSQL is each test database's table: one row per write, keyed by
// tenant, writer and sequence number; note says which cluster a seeded
// row was seeded on.
const ledgerSQL = `
CREATE TABLE ledger (
	tenant_id text NOT NULL DEFAULT current_setting('app.current_tenant_id'),
	client int NOT NULL,
	seq int NOT NULL,
	note text NOT NULL,
	PRIMARY KEY (tenant_id, client, seq));
SELECT multigres_protect('ledger', 'tenant_id');
`

// seedTenants get one row on every cluster, client 0 seq 0, whose note is
// the cluster's name: what a tenant reads tells where it was routed.
var seedTenants = []string{"acme", "acme2", "big-corp", "globex"}

// env is one test's database, created with the same name on all three
// clusters and set up for tenants, and a proxy in front.
type env struct {
	db    string
	proxy *proxytest.Proxy
}

// newEnv creates the database everywhere and starts a proxy whose default
// cluster is clusters[0] and whose [cluster c2] and [cluster c3] are the
// others; mutate adjusts the config further.
func newEnv(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	return newEnvInit(t, nil, mutate)
}

// newEnvInit is newEnv with multigres init's options changed by initOpts
// on every cluster.
func newEnvInit(t *testing.T, initOpts func(*mgsql.Options), mutate func(*config.Config)) *env {
	t.Helper()
	db := uniqueName("rt")
	ctx := testCtx(t)
	for i, pg := range clusters {
		if err := pg.Exec(ctx, "postgres", "CREATE DATABASE "+db); err != nil {
			t.Fatalf("create database on %s: %v", clusterNames[i], err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = pg.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
		})
		proxytest.SetupWith(t, pg, db, initOpts)
		seed := ledgerSQL
		for _, tenant := range seedTenants {
			seed += fmt.Sprintf("INSERT INTO ledger VALUES ('%s', 0, 0, '%s');\n", tenant, clusterNames[i])
		}
		if err := pg.Exec(ctx, db, seed); err != nil {
			t.Fatalf("schema on %s: %v", clusterNames[i], err)
		}
	}
	p := proxytest.StartProxyMetrics(t, clusters[0], func(c *config.Config) {
		c.Clusters = []config.ClusterConfig{
			{Name: "c2", Host: clusters[1].Host, Port: clusters[1].Port},
			{Name: "c3", Host: clusters[2].Host, Port: clusters[2].Port},
		}
		c.AdminUsers = []string{adminUser}
		// Every lookup, the console's included, runs in the test database
		// (of the client's cluster): "postgres" has no multigres init.
		c.AuthDatabase = db
		if mutate != nil {
			mutate(c)
		}
	})
	return &env{db: db, proxy: p}
}

func uniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// connect logs in through the proxy as user ("app_user.acme").
func (e *env) connect(t *testing.T, user string) *pgx.Conn {
	t.Helper()
	conn, err := e.tryConnect(t, user, proxytest.AppUserPassword)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	return conn
}

func (e *env) tryConnect(t *testing.T, user, password string) (*pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), proxytest.URL(e.proxy.Addr, user, password, e.db))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// console opens the admin console (simple protocol).
func (e *env) console(t *testing.T) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(proxytest.URL(e.proxy.Addr, adminUser, adminPassword, admin.Database))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("admin connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// show runs a console command that returns rows, as column→value maps.
func show(t *testing.T, con *pgx.Conn, sql string) []map[string]string {
	t.Helper()
	return proxytest.Rows(t, testCtx(t), con, sql)
}

// where reads the seeded rows a tenant connection sees: the names of the
// clusters it reached.
func where(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT note FROM ledger WHERE client = 0 ORDER BY note")
	if err != nil {
		t.Fatalf("read seeded rows: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read seeded rows: %v", err)
	}
	return out
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// waitUntil polls cond every few milliseconds until it holds, failing the
// test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// metric returns the value of the exposition line that starts with
// series (name and labels as printed), or -1.
func (e *env) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get(e.proxy.AdminURL + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return -1
}
