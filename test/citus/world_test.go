package citus

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// world is a Citus database behind two proxies (session and transaction
// pooling), with:
//
//   - contacts: distributed by tenant_id, protected;
//   - orders: distributed by tenant_id, co-located with contacts, protected;
//   - plans: a reference table (a copy on every node), protected;
//
// holding rows of tenants acme, globex and initech (and the attack
// tenants' own rows, added by the attacks).
type world struct {
	citus *pgtest.Citus
	db    string
	// proxies by pool mode.
	proxies map[string]*proxytest.Proxy
}

var (
	worldMu sync.Mutex
	shared  *world
	// ddlMu serialises the tests' setup DDL: Citus propagates it to every
	// node, and concurrent propagation of grants on the shared roles can
	// fail with "tuple concurrently updated".
	ddlMu sync.Mutex
)

// newDB creates a database on every node, sets it up for multigres and
// runs sqls in it (as the superuser, on the coordinator), one by one.
func newDB(t *testing.T, c *pgtest.Citus, sqls ...string) string {
	t.Helper()
	ddlMu.Lock()
	defer ddlMu.Unlock()
	db := c.CreateDB(t)
	proxytest.Setup(t, c.Coordinator, db)
	for _, sql := range sqls {
		if err := c.Coordinator.Exec(testCtx(t), db, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return db
}

// poolModes are the pool modes every test runs in.
var poolModes = []string{"session", "transaction"}

// protocols are the query modes every test runs in.
var protocols = []struct {
	name string
	mode pgx.QueryExecMode
}{{"simple", pgx.QueryExecModeSimpleProtocol}, {"extended", pgx.QueryExecModeExec}}

// worldSQL creates and fills the tables (as the superuser, on the
// coordinator).
const worldSQL = `
CREATE TABLE contacts (id bigserial, tenant_id text NOT NULL, name text NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('contacts', 'tenant_id');
CREATE TABLE orders (id bigserial, tenant_id text NOT NULL, contact_id bigint NOT NULL, amount int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT create_distributed_table('orders', 'tenant_id', colocate_with => 'contacts');
CREATE TABLE plans (tenant_id text NOT NULL, plan text NOT NULL, PRIMARY KEY (tenant_id));
SELECT create_reference_table('plans');
SELECT multigres_protect('contacts');
SELECT multigres_protect('orders');
SELECT multigres_protect('plans');
INSERT INTO contacts (tenant_id, name) SELECT t, t || '-' || g FROM unnest(ARRAY['acme', 'globex', 'initech']) t, generate_series(1, 5) g;
INSERT INTO orders (tenant_id, contact_id, amount) SELECT c.tenant_id, c.id, 10 FROM contacts c;
INSERT INTO plans VALUES ('acme', 'gold'), ('globex', 'silver'), ('initech', 'bronze');`

// getWorld builds the world once per test binary.
func getWorld(t *testing.T) *world {
	t.Helper()
	c := pgtest.SharedCitus(t)
	worldMu.Lock()
	defer worldMu.Unlock()
	if shared != nil {
		return shared
	}
	ft := &onceT{TB: t}
	w := &world{citus: c, proxies: map[string]*proxytest.Proxy{}}
	ddlMu.Lock()
	w.db = c.CreateDB(ft)
	proxytest.Setup(ft, c.Coordinator, w.db)
	err := c.Coordinator.Exec(testCtx(t), w.db, worldSQL)
	ddlMu.Unlock()
	if err != nil {
		t.Fatalf("world: %v", err)
	}
	for _, mode := range poolModes {
		w.proxies[mode] = proxytest.StartProxy(ft, c.Coordinator, func(cfg *config.Config) {
			cfg.PoolMode = mode
			cfg.DefaultPoolSize = 4
			cfg.CitusDatabases = []string{w.db}
		})
	}
	shared = w
	return w
}

// onceT lets the once-only world use t-based helpers without tying its
// cleanup to the first test: the world lives as long as the cluster.
type onceT struct{ testing.TB }

func (o *onceT) Cleanup(func()) {}

// connect opens a tenant connection through the proxy of a pool mode.
func (w *world) connect(t *testing.T, mode, user string) *pgx.Conn {
	t.Helper()
	return connectTo(t, w.proxies[mode], user, w.db)
}

func connectTo(t *testing.T, p *proxytest.Proxy, user, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), proxytest.URL(p.Addr, user, proxytest.AppUserPassword, db))
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// strs runs a query returning one text column.
func strs(t *testing.T, conn *pgx.Conn, mode pgx.QueryExecMode, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql, append([]any{mode}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

// superStrs runs a query returning one text column as the superuser on
// the coordinator (the ground truth).
func (w *world) superStrs(t *testing.T, sql string) []string {
	t.Helper()
	conn := w.citus.Coordinator.Connect(t, w.db)
	rows, err := conn.Query(testCtx(t), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

// checkAudit fails t if the state audit (on in every proxy) found a
// pooled connection whose session differs from multigres' model; the
// world's proxies outlive the tests, so each test checks at its end.
func (w *world) checkAudit(t *testing.T) {
	t.Cleanup(func() {
		for _, p := range w.proxies {
			for _, f := range p.Server.StateAuditFailures() {
				t.Errorf("state audit: %s", f)
			}
		}
	})
}

func eachMode(t *testing.T, w *world, run func(t *testing.T, pool string, mode pgx.QueryExecMode)) {
	w.checkAudit(t)
	for _, pool := range poolModes {
		for _, p := range protocols {
			t.Run(pool+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				run(t, pool, p.mode)
			})
		}
	}
}

func fmtList(s []string) string { return fmt.Sprint(s) }
