package citus

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestTwoContextVariables is the seed guide's "Multiple Context
// Variables" example on Citus: context_variables =
// app.current_list_id,app.current_user_id, usernames
// app_user.<list>:<user>, items distributed by list_id and a policy that
// reads both variables, the second through has_list_access() over a
// reference table. Both variables must reach the workers, in both pool
// modes and both protocols.
func TestTwoContextVariables(t *testing.T) {
	t.Parallel()
	c := getWorld(t).citus
	db := newDB(t, c,
		`CREATE TABLE list_access (list_id text NOT NULL, user_id text NOT NULL, PRIMARY KEY (list_id, user_id))`,
		`SELECT create_reference_table('list_access')`,
		`INSERT INTO list_access VALUES ('list123', 'user456'), ('list999', 'user777')`,
		// SECURITY DEFINER: the tenant role cannot read list_access itself.
		// On a worker the function runs inside a shard's query, where Citus
		// refuses another distributed query (a reference table's) unless
		// nested execution is allowed (docs/scaling.md).
		`CREATE FUNCTION has_list_access(l text) RETURNS boolean
			LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
			SET citus.allow_nested_distributed_execution = on
			AS $$ SELECT EXISTS (SELECT 1 FROM public.list_access a
				WHERE a.list_id = l AND a.user_id = multigres_context('app.current_user_id')) $$`,
		`CREATE TABLE items (id bigserial, list_id text NOT NULL, title text NOT NULL, PRIMARY KEY (list_id, id))`,
		`SELECT create_distributed_table('items', 'list_id')`,
		`INSERT INTO items (list_id, title) VALUES ('list123', 'milk'), ('list123', 'eggs'), ('list999', 'secret')`,
		`ALTER TABLE items ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE items FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY tenant_isolation ON items FOR ALL TO app_user
			USING (list_id = multigres_context('app.current_list_id') AND has_list_access(list_id))`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app_user`,
		`GRANT USAGE ON SEQUENCE items_id_seq TO app_user`,
	)
	proxies := map[string]*proxytest.Proxy{}
	for _, pool := range poolModes {
		proxies[pool] = proxytest.StartProxy(t, c.Coordinator, func(cfg *config.Config) {
			cfg.PoolMode = pool
			cfg.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
			cfg.CitusDatabases = []string{db}
		})
	}
	eachMode(t, &world{citus: c, db: db, proxies: proxies}, func(t *testing.T, pool string, mode pgx.QueryExecMode) {
		conn := connectTo(t, proxies[pool], "app_user.list123:user456", db)
		if got := fmtList(strs(t, conn, mode, "SELECT title FROM items ORDER BY title")); got != "[eggs milk]" {
			t.Fatalf("list123/user456 sees %s", got)
		}
		if got := fmtList(strs(t, conn, mode, "SELECT current_setting('app.current_list_id') || ':' || current_setting('app.current_user_id')")); got != "[list123:user456]" {
			t.Fatalf("context %s", got)
		}
		// The right list but a user without access, and the reverse: nothing.
		for _, u := range []string{"app_user.list123:user777", "app_user.list999:user456"} {
			if got := strs(t, connectTo(t, proxies[pool], u, db), mode, "SELECT title FROM items"); len(got) != 0 {
				t.Fatalf("%s sees %v", u, got)
			}
		}
		other := connectTo(t, proxies[pool], "app_user.list999:user777", db)
		if got := fmtList(strs(t, other, mode, "SELECT title FROM items")); got != "[secret]" {
			t.Fatalf("list999/user777 sees %s", got)
		}
	})
}

// TestIsolateTenantWhileServing: an operator isolates a tenant to a shard
// of its own (isolate_tenant_to_new_shard) and moves that shard to the
// other worker (citus_move_shard_placement) while the tenant's
// connections stay open in both pool modes; before, between and after,
// each reads and writes exactly its own rows.
func TestIsolateTenantWhileServing(t *testing.T) {
	t.Parallel()
	c := getWorld(t).citus
	db := newDB(t, c, `
		CREATE TABLE contacts (id bigserial, tenant_id text NOT NULL, name text NOT NULL, PRIMARY KEY (tenant_id, id));
		SELECT create_distributed_table('contacts', 'tenant_id');
		SELECT multigres_protect('contacts');
		INSERT INTO contacts (tenant_id, name) SELECT t, t || '-' || g FROM unnest(ARRAY['big', 'small']) t, generate_series(1, 3) g;`)
	ctx := testCtx(t)
	conns := map[string]*pgx.Conn{}
	for _, pool := range poolModes {
		p := proxytest.StartProxy(t, c.Coordinator, func(cfg *config.Config) {
			cfg.PoolMode = pool
			cfg.CitusDatabases = []string{db}
		})
		conns[pool] = connectTo(t, p, "app_user.big", db)
	}
	rows := 3
	check := func(stage string) {
		t.Helper()
		for pool, conn := range conns {
			for _, p := range protocols {
				if got := strs(t, conn, p.mode, "SELECT DISTINCT tenant_id FROM contacts"); fmtList(got) != "[big]" {
					t.Fatalf("%s, %s/%s: big sees tenants %v", stage, pool, p.name, got)
				}
				if _, err := conn.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('big', $1)", p.mode, stage); err != nil {
					t.Fatalf("%s, %s/%s: insert: %v", stage, pool, p.name, err)
				}
				rows++
				if got := strs(t, conn, p.mode, "SELECT count(*)::text FROM contacts"); fmtList(got) != fmt.Sprintf("[%d]", rows) {
					t.Fatalf("%s, %s/%s: big counts %v, want %d", stage, pool, p.name, got, rows)
				}
			}
		}
	}
	check("before")
	super := c.Coordinator.Connect(t, db)
	var shard int64
	if err := super.QueryRow(ctx, "SELECT isolate_tenant_to_new_shard('contacts', 'big', 'CASCADE', shard_transfer_mode => 'block_writes')").Scan(&shard); err != nil {
		t.Fatalf("isolate: %v", err)
	}
	check("isolated")
	var from, to int
	if err := super.QueryRow(ctx, `SELECT p.nodeport, (SELECT n.nodeport FROM pg_dist_node n WHERE n.noderole = 'primary' AND n.groupid <> 0 AND n.nodeport <> p.nodeport LIMIT 1)
		FROM pg_dist_shard_placement p WHERE p.shardid = $1`, shard).Scan(&from, &to); err != nil {
		t.Fatal(err)
	}
	if _, err := super.Exec(ctx, "SELECT citus_move_shard_placement($1, '127.0.0.1', $2, '127.0.0.1', $3, shard_transfer_mode => 'block_writes')", shard, from, to); err != nil {
		t.Fatalf("move: %v", err)
	}
	check("moved")
	if got := strs(t, super, pgx.QueryExecModeSimpleProtocol, "SELECT count(*)::text FROM contacts WHERE tenant_id = 'small'"); fmtList(got) != "[3]" {
		t.Fatalf("small's rows: %v", got)
	}
}
