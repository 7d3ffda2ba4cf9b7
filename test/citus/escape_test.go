package citus

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/test/escape/attackset"
)

// citusAttacks reach for what Citus adds: SQL text run on the workers as
// the tenant role, turning the propagation of SET LOCAL off, other
// sessions' statements on every node, moving or undistributing tables,
// and ending multigres' block in the middle of a pipeline or a query.
var citusAttacks = []attackset.Attack{
	{Name: "run_command_on_workers", Steps: steps("SELECT run_command_on_workers($$SELECT set_config('app.current_tenant_id', 'globex', false)$$)")},
	{Name: "run_command_on_workers reads", Steps: steps("SELECT run_command_on_workers($$SELECT count(*) FROM contacts$$)")},
	{Name: "run_command_on_all_nodes", Steps: steps("SELECT pg_catalog.run_command_on_all_nodes($$UPDATE contacts SET name = 'pwned'$$)")},
	{Name: "run_command_on_shards", Steps: steps("SELECT run_command_on_shards('contacts', $$DELETE FROM %s$$)")},
	{Name: "master_run_on_worker", Steps: steps("SELECT master_run_on_worker(ARRAY['127.0.0.1'], ARRAY[5432], ARRAY['SELECT 1'], false)")},
	{Name: "propagation off", Steps: steps("SET citus.propagate_set_commands = 'none'", "SELECT * FROM contacts")},
	{Name: "propagation off locally", Steps: steps("BEGIN", "SET LOCAL citus.propagate_set_commands = 'none'", "SET LOCAL app.current_tenant_id = 'globex'", "SELECT * FROM contacts")},
	{Name: "propagation off by set_config", Steps: steps("SELECT set_config('citus.propagate_set_commands', 'none', false)")},
	{Name: "reset propagation", Steps: steps("RESET citus.propagate_set_commands")},
	{Name: "citus_stat_activity", Steps: steps("SELECT query FROM citus_stat_activity")},
	{Name: "citus_dist_stat_activity", Steps: steps("SELECT query FROM citus_dist_stat_activity")},
	{Name: "worker_partition_query_result", Steps: steps("SELECT * FROM worker_partition_query_result('x', 'SELECT * FROM contacts', 0, 'hash', '{}'::text[], '{}'::text[], true)")},
	{Name: "isolate another tenant", Steps: steps("SELECT isolate_tenant_to_new_shard('contacts', 'globex', 'CASCADE')")},
	{Name: "undistribute", Steps: steps("SELECT undistribute_table('contacts')")},
	{Name: "shard table", Steps: steps("SET citus.override_table_visibility = off", "SELECT * FROM contacts_102008")},
	{Name: "commit in a query", Steps: steps("SELECT 1; COMMIT; SELECT set_config('app.current_tenant_id', 'globex', true); SELECT * FROM contacts")},
	{Name: "end the block and set locally", Steps: steps("COMMIT", "SELECT set_config('app.current_tenant_id', 'globex', true)", "SELECT * FROM contacts")},
	{Name: "set local transaction snapshot", Steps: steps("BEGIN", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SELECT * FROM contacts WHERE tenant_id = 'globex'")},
}

func steps(sqls ...string) []attackset.Step {
	out := make([]attackset.Step, len(sqls))
	for i, q := range sqls {
		out[i] = attackset.Step{SQL: q}
	}
	return out
}

var attackSeq atomic.Int64

// TestAttacks runs the escape attack set (test/escape's, shared through
// attackset) and the Citus attacks against the Citus world, in both pool
// modes over both protocols, each in a fresh tenant: the tenant must stay
// itself, see only its rows on every node, and leave globex's rows alone.
func TestAttacks(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	w.checkAudit(t)
	attacks := append(attackset.All(), citusAttacks...)
	attempts := 0
	for _, pool := range poolModes {
		for _, a := range attacks {
			for _, p := range protocols {
				if p.mode == pgx.QueryExecModeSimpleProtocol && a.HasArgs() {
					continue // bind parameters exist only in the extended protocol
				}
				attempts++
				t.Run(pool+"/"+p.name+"/"+a.Name, func(t *testing.T) {
					t.Parallel()
					tenant := fmt.Sprintf("t%d", attackSeq.Add(1))
					conn := w.connect(t, pool, "app_user."+tenant)
					ctx := testCtx(t)
					for _, st := range a.Steps {
						_, _ = conn.Exec(ctx, st.SQL, append([]any{p.mode}, st.Args...)...)
					}
					assertContained(t, conn, tenant, p.mode)
				})
			}
		}
	}
	t.Cleanup(func() {
		got := w.superStrs(t, "SELECT name FROM contacts WHERE tenant_id = 'globex' ORDER BY name")
		if fmtList(got) != "[globex-1 globex-2 globex-3 globex-4 globex-5]" {
			t.Errorf("ESCAPE: globex's rows are now %v", got)
		}
		if got := w.superStrs(t, "SELECT plan FROM plans WHERE tenant_id = 'globex'"); fmtList(got) != "[silver]" {
			t.Errorf("ESCAPE: globex's plan is now %v", got)
		}
		// Transaction pooling: whatever the attacks left on the shared
		// server connections, fresh clients are still contained.
		for i := range 4 {
			tenant := fmt.Sprintf("t%d", attackSeq.Add(1))
			assertContained(t, w.connect(t, "transaction", "app_user."+tenant), tenant, protocols[i%2].mode)
		}
		t.Logf("%d attack attempts (%d attacks, %d of them Citus', over both protocols in both pool modes)", attempts, len(attacks), len(citusAttacks))
	})
}

// assertContained checks, on the attacked connection, that the tenant is
// still itself: role, session user and context unchanged, only its own
// assertContained is attackset.AssertContained on the Citus world's tenant
// tables.
func assertContained(t *testing.T, conn *pgx.Conn, tenant string, mode pgx.QueryExecMode) {
	t.Helper()
	attackset.AssertContained(t, testCtx(t), conn, tenant, mode, "contacts", "plans", "orders")
}
