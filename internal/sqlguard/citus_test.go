package sqlguard

import (
	"errors"
	"testing"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// TestCitusBlockClassification: in Citus mode every statement that is not
// plain is classified (however it is spelled), what cannot run in a block
// is refused with 0A000, and plain statements skip the parse.
func TestCitusBlockClassification(t *testing.T) {
	t.Parallel()
	guards := map[string]*Guard{
		"session":         New(Config{ContextVariables: []string{"app.current_tenant_id"}, Citus: true}),
		"transaction":     New(Config{ContextVariables: []string{"app.current_tenant_id"}, TransactionMode: true, Citus: true}),
		"session off":     New(Config{PoolingOnly: true, Citus: true}),
		"transaction off": New(Config{TransactionMode: true, PoolingOnly: true, Citus: true}),
	}
	blocks := map[string]Block{
		"BEGIN": BlockBegin, "begin;": BlockBegin, "  /* c /* nested */ */ -- x\n BEGIN ISOLATION LEVEL SERIALIZABLE": BlockBegin,
		"START TRANSACTION READ ONLY": BlockBegin, "COMMIT": BlockEnd, "end": BlockEnd, "ROLLBACK;": BlockEnd, "ABORT": BlockEnd,
		"SAVEPOINT a": BlockSavepoint, "RELEASE SAVEPOINT a": BlockRelease, "ROLLBACK TO SAVEPOINT a": BlockRollbackTo,
		"SELECT 1": BlockPlain, "SELECT 1;": BlockPlain, "SELECT 1; SELECT 2": BlockPlain, "ANALYZE contacts": BlockPlain,
		"CREATE INDEX i ON contacts (name)": BlockPlain, "COPY contacts TO STDOUT": BlockPlain, "SET work_mem = '1MB'; SELECT 1": BlockPlain,
		"SELECT 'BEGIN'": BlockPlain, "UPDATE t SET done = true": BlockPlain,
	}
	refused := []string{
		"VACUUM", "vacuum analyze contacts", "CREATE INDEX CONCURRENTLY i ON contacts (name)", "DROP INDEX CONCURRENTLY i",
		"REINDEX TABLE CONCURRENTLY contacts", "REINDEX SCHEMA public", "CLUSTER", "CREATE DATABASE x", "DROP DATABASE x",
		"ALTER TABLE p DETACH PARTITION c CONCURRENTLY", "COPY contacts FROM STDIN", "COMMIT AND CHAIN", "ROLLBACK AND CHAIN",
		"BEGIN; SELECT 1; COMMIT", "SELECT 1; COMMIT", "SELECT 1; SAVEPOINT a", "SET LOCAL work_mem = '1MB'; SELECT 1",
		"SELECT 1; RESET work_mem", "SET TRANSACTION READ ONLY; SELECT 1", "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'",
	}
	for name, g := range guards {
		for sql, want := range blocks {
			fx, err := g.CheckTx([]byte(sql))
			if err != nil {
				t.Errorf("%s: %q refused: %v", name, sql, err)
				continue
			}
			got := BlockPlain
			if fx != nil {
				got = fx.Block
			}
			if got != want {
				t.Errorf("%s: %q is block %d, want %d", name, sql, got, want)
			}
		}
		for _, sql := range refused {
			_, err := g.CheckTx([]byte(sql))
			var v *Violation
			if !errors.As(err, &v) {
				t.Errorf("%s: %q not refused", name, sql)
				continue
			}
			if v.Rule != RuleCitus && v.Rule != RulePreparedTransaction {
				t.Errorf("%s: %q refused by %s", name, sql, v.Rule)
			}
			if v.Rule == RuleCitus && v.Code != wire.CodeFeatureNotSupported {
				t.Errorf("%s: %q code %s", name, sql, v.Code)
			}
		}
	}
	for _, sql := range []string{"SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "INSERT INTO t VALUES ('end; x')",
		"UPDATE t SET a = 1 WHERE b = 2;  \n", "  select 1"} {
		if sql != "INSERT INTO t VALUES ('end; x')" && citusNeedsParse(sql) {
			t.Errorf("%q: parsed in Citus mode", sql)
		}
	}
	for _, sql := range []string{"BEGIN", "/**/begin", "SELECT 1; SELECT 2", "SELECT 1;--x", "(SELECT 1)", "Ünïcode", "copy t from stdin"} {
		if !citusNeedsParse(sql) {
			t.Errorf("%q: not parsed in Citus mode", sql)
		}
	}
}

// TestCitusProtectsPropagation: a tenant cannot turn off the propagation
// of SET LOCAL to the workers, nor call the Citus functions that run SQL
// text on other nodes.
func TestCitusProtectsPropagation(t *testing.T) {
	t.Parallel()
	g := New(Config{ContextVariables: []string{"app.current_tenant_id"}, TransactionMode: true, Citus: true})
	for _, sql := range []string{
		"SET citus.propagate_set_commands = 'none'", "SET LOCAL citus.propagate_set_commands TO none",
		"RESET citus.propagate_set_commands", "SELECT set_config('citus.propagate_set_commands', 'none', true)",
		"SELECT run_command_on_workers('SELECT 1')", "SELECT pg_catalog.run_command_on_all_nodes($$SELECT 1$$)",
		"SELECT master_run_on_worker(ARRAY['h'], ARRAY[1], ARRAY['SELECT 1'], false)", "SELECT * FROM citus_stat_activity()",
		"SELECT worker_partition_query_result('x', 'SELECT 1', 0, 'hash', '{}', '{}', true)",
	} {
		if err := g.Check(sql); err == nil {
			t.Errorf("%q allowed", sql)
		}
	}
	plain := New(Config{ContextVariables: []string{"app.current_tenant_id"}, TransactionMode: true})
	if err := plain.Check("SET LOCAL citus.propagate_set_commands TO none"); err != nil {
		t.Errorf("without Citus: %v", err)
	}
}
