package citus

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestContextReachesTheWorkers is the problem this mode solves, checked
// both ways: behind a proxy that does not know the database is on Citus,
// the tenant context (set on the coordinator's session) never reaches the
// workers and a tenant reads no rows of a distributed table, though the
// coordinator has its context; with citus_databases it reads exactly its
// own.
func TestContextReachesTheWorkers(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	plain := proxytest.StartProxy(t, w.citus.Coordinator, func(c *config.Config) { c.PoolMode = "session" })
	conn := connectTo(t, plain, "app_user.acme", w.db)
	if got := strs(t, conn, pgx.QueryExecModeSimpleProtocol, "SELECT current_setting('app.current_tenant_id')"); fmtList(got) != "[acme]" {
		t.Fatalf("coordinator context %v", got)
	}
	if got := strs(t, conn, pgx.QueryExecModeSimpleProtocol, "SELECT name FROM contacts"); len(got) != 0 {
		t.Fatalf("without citus_databases the workers saw a context: %v", got)
	}
	eachMode(t, w, func(t *testing.T, pool string, mode pgx.QueryExecMode) {
		conn := w.connect(t, pool, "app_user.acme")
		got := strs(t, conn, mode, "SELECT name FROM contacts ORDER BY name")
		if fmtList(got) != "[acme-1 acme-2 acme-3 acme-4 acme-5]" {
			t.Fatalf("acme reads %v", got)
		}
	})
}

// TestReads: a tenant reads exactly its rows through router queries (one
// shard), multi-shard queries (every worker), joins of co-located tables,
// a reference table and a join with it; another tenant's key finds
// nothing.
func TestReads(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	eachMode(t, w, func(t *testing.T, pool string, mode pgx.QueryExecMode) {
		for _, tenant := range []string{"acme", "globex"} {
			conn := w.connect(t, pool, "app_user."+tenant)
			cases := []struct{ sql, want string }{
				{"SELECT current_setting('app.current_tenant_id')", "[" + tenant + "]"},
				{"SELECT DISTINCT tenant_id FROM contacts", "[" + tenant + "]"},
				{"SELECT count(*)::text FROM contacts", "[5]"},
				{"SELECT name FROM contacts WHERE tenant_id = '" + tenant + "' AND name LIKE '%-1'", "[" + tenant + "-1]"},
				{"SELECT name FROM contacts WHERE tenant_id = 'initech'", "[]"},
				{"SELECT DISTINCT c.tenant_id FROM contacts c JOIN orders o ON o.tenant_id = c.tenant_id AND o.contact_id = c.id", "[" + tenant + "]"},
				{"SELECT count(*)::text FROM contacts c JOIN orders o USING (tenant_id) WHERE o.contact_id = c.id", "[5]"},
				{"SELECT plan FROM plans", map[string]string{"acme": "[gold]", "globex": "[silver]"}[tenant]},
				{"SELECT DISTINCT p.plan FROM contacts c JOIN plans p USING (tenant_id)", map[string]string{"acme": "[gold]", "globex": "[silver]"}[tenant]},
				{"SELECT sum(amount)::text FROM orders", "[50]"},
			}
			for _, c := range cases {
				if got := fmtList(strs(t, conn, mode, c.sql)); got != c.want {
					t.Errorf("%s: %s gives %s, want %s", tenant, c.sql, got, c.want)
				}
			}
			if got := strs(t, conn, mode, "SELECT name FROM contacts WHERE tenant_id = $1", "initech"); mode == pgx.QueryExecModeExec && len(got) != 0 {
				t.Errorf("%s reads initech's rows by parameter: %v", tenant, got)
			}
		}
	})
}

// TestWrites: a tenant inserts, updates and deletes its own rows (in
// implicit and explicit transactions, committed and rolled back); writing
// another tenant's row fails on the worker with the RLS error, and
// another tenant's rows cannot be touched.
func TestWrites(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	eachMode(t, w, func(t *testing.T, pool string, mode pgx.QueryExecMode) {
		tenant := "w_" + pool + "_" + map[pgx.QueryExecMode]string{pgx.QueryExecModeSimpleProtocol: "s", pgx.QueryExecModeExec: "e"}[mode]
		conn := w.connect(t, pool, "app_user."+tenant)
		ctx := testCtx(t)
		exec := func(sql string, args ...any) (pgconn.CommandTag, error) {
			return conn.Exec(ctx, sql, append([]any{mode}, args...)...)
		}
		mustAffect := func(n int64, sql string, args ...any) {
			t.Helper()
			tag, err := exec(sql, args...)
			if err != nil || tag.RowsAffected() != n {
				t.Fatalf("%s: %v, %v rows (want %d)", sql, err, tag, n)
			}
		}
		mustAffect(1, "INSERT INTO contacts (tenant_id, name) VALUES ('"+tenant+"', 'a')")
		mustAffect(1, "INSERT INTO plans VALUES ('"+tenant+"', 'tin')")
		mustAffect(1, "UPDATE contacts SET name = 'b' WHERE name = 'a'")
		mustAffect(1, "UPDATE plans SET plan = 'iron'")
		if got := fmtList(strs(t, conn, mode, "SELECT name FROM contacts")); got != "[b]" {
			t.Fatalf("after update: %s", got)
		}
		for _, sql := range []string{
			"INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'mallory')",
			"UPDATE plans SET tenant_id = 'globex2'",
			"INSERT INTO plans VALUES ('globex2', 'x')",
		} {
			_, err := exec(sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "row-level security") {
				t.Fatalf("%s: %v, want the RLS error", sql, err)
			}
		}
		// Citus runs INSERT ... SELECT into a distributed table through
		// COPY into the shards, which PostgreSQL refuses under RLS
		// (docs/scaling.md lists it): it fails for every tenant.
		if _, err := exec("INSERT INTO orders (tenant_id, contact_id, amount) SELECT 'globex', id, 1 FROM contacts"); err == nil {
			t.Fatal("inserted orders of another tenant")
		}
		if _, err := exec("UPDATE contacts SET tenant_id = 'globex'"); err == nil {
			t.Fatal("moved a row to another tenant") // Citus refuses to change the distribution column
		}
		mustAffect(0, "UPDATE contacts SET name = 'pwned' WHERE tenant_id = 'globex'")
		mustAffect(0, "DELETE FROM contacts WHERE tenant_id = 'globex'")
		mustAffect(0, "DELETE FROM plans WHERE tenant_id = 'globex'")

		// Explicit transactions: rolled back, then committed.
		for _, end := range []string{"ROLLBACK", "COMMIT"} {
			mustAffect(0, "BEGIN")
			mustAffect(1, "INSERT INTO contacts (tenant_id, name) VALUES ('"+tenant+"', '"+end+"')")
			if got := strs(t, conn, mode, "SELECT name FROM contacts WHERE name = '"+end+"'"); len(got) != 1 {
				t.Fatalf("inside the block: %v", got)
			}
			if st := conn.PgConn().TxStatus(); st != 'T' {
				t.Fatalf("status inside the block %q", st)
			}
			mustAffect(0, end)
		}
		if got := fmtList(strs(t, conn, mode, "SELECT name FROM contacts ORDER BY name")); got != "[COMMIT b]" {
			t.Fatalf("after the transactions: %s", got)
		}
		// An error ends an implicit transaction; in a block it aborts it.
		if _, err := exec("SELECT 1/0"); err == nil || conn.PgConn().TxStatus() != 'I' {
			t.Fatalf("division by zero: %v, status %q", err, conn.PgConn().TxStatus())
		}
		mustAffect(0, "BEGIN")
		if _, err := exec("INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'x')"); err == nil || conn.PgConn().TxStatus() != 'E' {
			t.Fatalf("error in a block: %v, status %q", err, conn.PgConn().TxStatus())
		}
		if tag, err := exec("COMMIT"); err != nil || tag.String() != "ROLLBACK" || conn.PgConn().TxStatus() != 'I' {
			t.Fatalf("COMMIT of a failed block: %v %v %q", tag, err, conn.PgConn().TxStatus())
		}
		mustAffect(2, "DELETE FROM contacts")
		mustAffect(1, "DELETE FROM plans")
	})
	got := w.superStrs(t, "SELECT name FROM contacts WHERE tenant_id = 'globex' ORDER BY name")
	if fmtList(got) != "[globex-1 globex-2 globex-3 globex-4 globex-5]" {
		t.Fatalf("globex's rows are now %v", got)
	}
}
