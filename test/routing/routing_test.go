package routing

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// TestRoutes: tenants reach the cluster of their exact tenant_routes item,
// of their pattern, or the default cluster, in both pool modes.
func TestRoutes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) {
				c.PoolMode = mode
				c.TenantRoutes = []string{"acme:c2", "big-*:c3"}
			})
			for tenant, want := range map[string]string{"acme": "c2", "big-corp": "c3", "globex": "default", "acme2": "default"} {
				conn := e.connect(t, "app_user."+tenant)
				// Several statements: in transaction mode each may take
				// another pooled connection, all of the same cluster.
				for range 3 {
					if got := where(t, conn); !slices.Equal(got, []string{want}) {
						t.Errorf("%s tenant %s reached %v, want [%s]", mode, tenant, got, want)
					}
				}
			}
		})
	}
}

// TestDatabaseRouteAndBypass: a database_routes item places the tenants
// no tenant_routes item places, and bypass users; each logs in with the
// secret auth_query finds on that cluster (the superuser's SCRAM salt
// differs on every cluster, so a lookup on another cluster could not log
// it in there).
func TestDatabaseRouteAndBypass(t *testing.T) {
	t.Parallel()
	var db string
	e := newEnv(t, func(c *config.Config) {
		c.TenantRoutes = []string{"acme:c2"}
		c.DatabaseRoutes = []string{c.AuthDatabase + ":c3"}
		db = c.AuthDatabase
	})
	if got := where(t, e.connect(t, "app_user.acme")); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("acme reached %v, want [c2] (tenant_routes before database_routes)", got)
	}
	if got := where(t, e.connect(t, "app_user.globex")); !slices.Equal(got, []string{"c3"}) {
		t.Errorf("globex reached %v, want [c3] (database_routes)", got)
	}
	super, err := e.tryConnect(t, pgtest.SuperUser, pgtest.SuperPassword)
	if err != nil {
		t.Fatalf("bypass user through the proxy: %v", err)
	}
	var port int
	if err := super.QueryRow(testCtx(t), "SELECT current_setting('port')::int").Scan(&port); err != nil {
		t.Fatal(err)
	}
	if port != clusters[2].Port {
		t.Errorf("the bypass user reached port %d, want c3's %d (database %s is routed there)", port, clusters[2].Port, db)
	}
}

// TestUnknownTenantRefused: without default_cluster, a tenant nothing
// places is refused with 28000 naming the tenant and the key to set, and
// the refusal is counted.
func TestUnknownTenantRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.TenantRoutes = []string{"acme:c2"}
		c.DefaultCluster = ""
	})
	if got := where(t, e.connect(t, "app_user.acme")); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("acme reached %v", got)
	}
	_, err := e.tryConnect(t, "app_user.globex", "wrong password: refused before authentication")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || pe.Severity != "FATAL" ||
		pe.Message != `tenant "globex" is not routed to any cluster: no tenant_routes item matches it and default_cluster is empty` ||
		!strings.Contains(pe.Hint, "tenant_routes = globex:CLUSTER") {
		t.Fatalf("unknown tenant: %v (%+v)", err, pe)
	}
	if n := e.metric(t, `multigres_auth_failures_total{reason="no_route"}`); n != 1 {
		t.Errorf("auth failures for no_route = %v, want 1", n)
	}
}

// TestPoolsPerCluster: in transaction mode each cluster has its own pool,
// and SHOW POOLS, SHOW SERVERS, SHOW TENANTS, SHOW CLIENTS, SHOW ROUTES
// and the pool metrics name it.
func TestPoolsPerCluster(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantRoutes = []string{"acme:c2", "big-*:c3"}
	})
	for _, tenant := range []string{"acme", "big-corp", "globex"} {
		where(t, e.connect(t, "app_user."+tenant))
	}
	con := e.console(t)
	pools := map[string]map[string]string{}
	// A connection goes back to its pool (after the state audit) just
	// after the client has its answer: wait for all three.
	waitUntil(t, 10*time.Second, "an idle server connection in each pool", func() bool {
		clear(pools)
		for _, r := range show(t, con, "SHOW POOLS") {
			if r["database"] == e.db && r["sv_idle"] != "0" {
				pools[r["cluster"]] = r
			}
		}
		return len(pools) == 3
	})
	if len(pools) != 3 {
		t.Fatalf("SHOW POOLS rows of %s by cluster: %v", e.db, pools)
	}
	for _, name := range clusterNames {
		p := pools[name]
		if p == nil || p["user"] != "app_user" || p["pool_mode"] != "transaction" || p["cl_active"] != "1" || p["sv_idle"] == "0" {
			t.Errorf("SHOW POOLS %s: %v", name, p)
		}
	}
	ports := map[string]string{}
	for _, r := range show(t, con, "SHOW SERVERS") {
		if r["database"] == e.db {
			ports[r["cluster"]] = r["port"]
		}
	}
	for i, name := range clusterNames {
		if ports[name] != strconv.Itoa(clusters[i].Port) {
			t.Errorf("SHOW SERVERS: cluster %s at port %q, want %d (all: %v)", name, ports[name], clusters[i].Port, ports)
		}
	}
	tenants := map[string]string{}
	for _, r := range show(t, con, "SHOW TENANTS") {
		if r["database"] == e.db {
			tenants[r["tenant"]] = r["cluster"]
		}
	}
	if want := map[string]string{"acme": "c2", "big-corp": "c3", "globex": "default"}; fmt.Sprint(tenants) != fmt.Sprint(want) {
		t.Errorf("SHOW TENANTS clusters = %v, want %v", tenants, want)
	}
	for _, r := range show(t, con, "SHOW CLIENTS") {
		if r["database"] == e.db && r["tenant"] == "acme" && r["cluster"] != "c2" {
			t.Errorf("SHOW CLIENTS acme: %v", r)
		}
	}
	routes := show(t, con, "SHOW ROUTES")
	var got []string
	for _, r := range routes {
		got = append(got, r["match"]+"/"+r["source"]+"/"+r["cluster"])
	}
	if want := []string{"acme/tenant_routes/c2", "big-*/tenant_routes/c3", "*/default_cluster/default"}; !slices.Equal(got, want) {
		t.Errorf("SHOW ROUTES = %v, want %v", got, want)
	}
	for _, name := range clusterNames {
		series := fmt.Sprintf(`multigres_pooled_server_connections{cluster=%q,pool="%s/app_user",state="idle"}`, name, e.db)
		if v := e.metric(t, series); v < 1 {
			t.Errorf("%s = %v, want ≥ 1", series, v)
		}
	}
}

// TestIsolationWithinCluster: two tenants on one cluster see only their
// own rows there (RLS still filters), and neither sees the rows of its
// label kept on another cluster.
func TestIsolationWithinCluster(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) {
				c.PoolMode = mode
				c.TenantRoutes = []string{"acme*:c2"}
			})
			acme, acme2 := e.connect(t, "app_user.acme"), e.connect(t, "app_user.acme2")
			ctx := testCtx(t)
			for i, conn := range []named{{acme, "acme"}, {acme2, "acme2"}} {
				if _, err := conn.c.Exec(ctx, "INSERT INTO ledger (client, seq, note) VALUES (1, $1, $2)", i+1, conn.name); err != nil {
					t.Fatalf("%s insert: %v", conn.name, err)
				}
			}
			for _, conn := range []named{{acme, "acme"}, {acme2, "acme2"}} {
				rows, err := conn.c.Query(ctx, "SELECT tenant_id || ':' || note FROM ledger ORDER BY client, seq")
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for rows.Next() {
					var s string
					if err := rows.Scan(&s); err != nil {
						t.Fatal(err)
					}
					got = append(got, s)
				}
				if want := []string{conn.name + ":c2", conn.name + ":" + conn.name}; !slices.Equal(got, want) {
					t.Errorf("%s %s sees %v, want %v", mode, conn.name, got, want)
				}
			}
			// The rows were written on c2 only.
			for i, pg := range clusters {
				var n int
				c := pg.Connect(t, e.db)
				if err := c.QueryRow(ctx, "SELECT count(*) FROM ledger WHERE client = 1").Scan(&n); err != nil {
					t.Fatal(err)
				}
				want := 0
				if clusterNames[i] == "c2" {
					want = 2
				}
				if n != want {
					t.Errorf("cluster %s holds %d written rows, want %d", clusterNames[i], n, want)
				}
			}
		})
	}
}

type named struct {
	c    *pgx.Conn
	name string
}
