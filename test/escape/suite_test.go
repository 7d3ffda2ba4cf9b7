package escape

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	"github.com/multigres-proxy/multigres/test/escape/attackset"
)

// world is the shared target: a database with the contacts table holding
// one row for each attacking tenant (t1, t2, ...) and the victim tenant
// globex's rows, behind one proxy.
type world struct {
	pg    *pgtest.Server
	db    string
	proxy *proxytest.Proxy
	// txProxy is the same database behind transaction pooling: attackers
	// share its few server connections with each other and the victim.
	txProxy *proxytest.Proxy
	next    atomic.Int64
}

// poolModes are the pool modes every attack runs in.
var poolModes = []string{"session", "transaction"}

// proxyFor returns the world's proxy for a pool mode.
func (w *world) proxyFor(mode string) *proxytest.Proxy {
	if mode == "transaction" {
		return w.txProxy
	}
	return w.proxy
}

var (
	worldOnce sync.Once
	shared    *world
	worldErr  error
)

// victimRows are globex's rows; no attack may change them.
var victimRows = []string{"globex-1", "globex-2"}

func getWorld(t *testing.T) *world {
	t.Helper()
	worldOnce.Do(func() {
		// The world outlives any one test: it is cleaned up with the cluster.
		pg := pgtest.Shared()
		w := &world{pg: pg}
		ft := &fakeT{}
		w.db = pg.CreateDB(ft)
		proxytest.Setup(ft, pg, w.db)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		worldErr = pg.Exec(ctx, w.db, `
			CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id varchar(255) NOT NULL, name text NOT NULL, email text);
			CREATE INDEX ON contacts (tenant_id);
			SELECT multigres_protect('contacts', 'tenant_id');
			INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'globex-1'), ('globex', 'globex-2');
			INSERT INTO contacts (tenant_id, name) SELECT 't' || g, 'own-' || g FROM generate_series(1, 1000) g;`)
		w.proxy = proxytest.StartProxy(ft, pg, nil)
		w.txProxy = proxytest.StartProxy(ft, pg, func(c *config.Config) {
			c.PoolMode = "transaction"
			c.DefaultPoolSize = 4
		})
		if ft.failed != "" {
			worldErr = fmt.Errorf("%s", ft.failed)
		}
		shared = w
	})
	if worldErr != nil {
		t.Fatalf("world: %v", worldErr)
	}
	return shared
}

// tenant hands out a fresh tenant name per attempt, so an attempt that
// damages its own rows cannot disturb another.
func (w *world) tenant() string { return fmt.Sprintf("t%d", w.next.Add(1)) }

func (w *world) connectMode(t *testing.T, mode, user string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), proxytest.URL(w.proxyFor(mode).Addr, user, proxytest.AppUserPassword, w.db))
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// assertContained checks, on the attacked connection, that the tenant is
// still tenant: it sees only its own rows, cannot write the victim's, and
// assertContained is attackset.AssertContained on the contacts table.
func assertContained(t *testing.T, conn *pgx.Conn, tenant string, mode pgx.QueryExecMode) {
	t.Helper()
	attackset.AssertContained(t, testCtx(t), conn, tenant, mode, "contacts")
}

// assertVictimIntact checks, as the superuser, that globex's rows are all
// there and unchanged.
func (w *world) assertVictimIntact(t *testing.T) {
	t.Helper()
	conn := w.pg.Connect(t, w.db)
	rows, err := conn.Query(testCtx(t), "SELECT name FROM contacts WHERE tenant_id = 'globex' ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(victimRows) {
		t.Fatalf("ESCAPE: victim rows are now %v", got)
	}
}

// fakeT lets the once-only world setup reuse the t-based helpers; the
// world is never cleaned up before the cluster is.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper()                   {}
func (f *fakeT) Cleanup(func())            {}
func (f *fakeT) Fatalf(s string, a ...any) { f.failed = fmt.Sprintf(s, a...); panic(f) }
func (f *fakeT) Errorf(s string, a ...any) { f.failed = fmt.Sprintf(s, a...) }
