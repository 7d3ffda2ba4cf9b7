package citus

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/cli"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// TestProtectReachesTheShards: multigres_protect on a distributed table
// and on a reference table puts the policy, ENABLE and FORCE ROW LEVEL
// SECURITY on every shard of every worker (Citus propagates them), and so
// does distributing a table protected before; `multigres status` shows
// which tables are distributed and which are reference tables.
func TestProtectReachesTheShards(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	ctx := testCtx(t)
	ddlMu.Lock()
	err := w.citus.Coordinator.Exec(ctx, w.db, `
		CREATE TABLE protected_first (id bigint, tenant_id text NOT NULL, PRIMARY KEY (tenant_id, id));
		SELECT multigres_protect('protected_first');
		SELECT create_distributed_table('protected_first', 'tenant_id');`)
	ddlMu.Unlock()
	if err != nil {
		t.Fatalf("protect, then distribute: %v", err)
	}
	for _, wk := range w.citus.Workers {
		conn := wk.Connect(t, w.db)
		if _, err := conn.Exec(ctx, "SET citus.override_table_visibility = off"); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, `SELECT c.relname::text, c.relrowsecurity AND c.relforcerowsecurity,
				EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'multigres_tenant_isolation')
			FROM pg_class c WHERE c.relkind = 'r' AND c.relname ~ '^(contacts|orders|plans|protected_first)_[0-9]+$'`)
		if err != nil {
			t.Fatal(err)
		}
		shards := 0
		for rows.Next() {
			var name string
			var forced, policy bool
			if err := rows.Scan(&name, &forced, &policy); err != nil {
				t.Fatal(err)
			}
			shards++
			if !forced || !policy {
				t.Errorf("worker %d: shard %s: RLS enabled and forced %v, policy %v", wk.Port, name, forced, policy)
			}
		}
		if rows.Err() != nil || shards < 4 {
			t.Fatalf("worker %d: %d shards (%v)", wk.Port, shards, rows.Err())
		}
	}

	conn := w.citus.Coordinator.Connect(t, w.db)
	tables, err := mgsql.Status(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, tb := range tables {
		kinds[tb.Table] = tb.Citus
		if (tb.Table == "contacts" || tb.Table == "plans" || tb.Table == "protected_first") && !tb.Protected {
			t.Errorf("%s not protected", tb.Table)
		}
	}
	if kinds["contacts"] != "distributed" || kinds["orders"] != "distributed" || kinds["plans"] != "reference" || kinds["protected_first"] != "distributed" {
		t.Fatalf("citus kinds %v", kinds)
	}
	var out, errOut bytes.Buffer
	code := cli.Run(ctx, "status", []string{"--database-url", w.citus.Coordinator.SuperURL(w.db)}, cli.IO{Out: &out, Err: &errOut})
	if code != 0 || !strings.Contains(out.String(), "CITUS") || !regexpLine(out.String(), "public.plans", "reference") ||
		!regexpLine(out.String(), "public.contacts", "distributed") {
		t.Fatalf("multigres status (exit %d):\n%s%s", code, out.String(), errOut.String())
	}
}

// regexpLine reports whether a line of out starts with table and ends with
// kind.
func regexpLine(out, table, kind string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == table && f[len(f)-1] == kind {
			return true
		}
	}
	return false
}

// TestHardeningOnCitus: with the guard out of the way (a tenant role
// connected straight to the coordinator), multigres init has still
// revoked the Citus functions that run SQL text on other nodes or show
// every node's sessions.
func TestHardeningOnCitus(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, w.citus.Coordinator.URL(proxytest.AppUser, proxytest.AppUserPassword, w.db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range []string{
		"SELECT run_command_on_workers($$SELECT set_config('app.current_tenant_id', 'globex', false)$$)",
		"SELECT run_command_on_all_nodes($$SELECT 1$$)",
		"SELECT count(*) FROM citus_stat_activity",
		"SELECT count(*) FROM citus_dist_stat_activity",
	} {
		_, err := conn.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s: %v, want permission denied", sql, err)
		}
	}
}
