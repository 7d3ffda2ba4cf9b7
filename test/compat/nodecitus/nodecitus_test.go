// Package nodecitus runs the Node.js client compatibility suite of
// test/compat/node (the seed guide's Drizzle ORM and node-postgres
// examples, same TypeScript tests, same src) through multigres in front of
// a Citus cluster (a coordinator and two workers, see internal/pgtest)
// instead of a plain PostgreSQL, once per pool mode.
//
// The database is created and seeded as compatenv does it (the same
// SeedSQL), then citusSQL distributes the guide's tenant tables by their
// tenant column and makes the shared one a reference table; the proxies
// serve it with citus_databases set to it. Every adaptation Citus needs is
// made here, on the database side only, and listed in docs/scaling.md
// ("The seed guide on Citus"), with the two answers of Citus' own that
// differ from PostgreSQL's (which the suite's helpers accept only when
// MG_UPSTREAM says citus). Without Citus installed the test skips, saying
// how to install it.
package nodecitus

import (
	"path/filepath"
	"testing"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/test/compat/internal/compatenv"
)

func TestMain(m *testing.M) { pgtest.MainCitus(m) }

// poolModes are the pool modes the suite runs in.
var poolModes = []string{"session", "transaction"}

// nodeDir is the suite's directory: its tests, src and node_modules.
const nodeDir = "../node"

// citusSQL runs after compatenv.SeedSQL, one statement at a time, as the
// superuser on the coordinator. The adaptations:
//
//   - Citus requires the distribution column in every primary key and
//     unique constraint, so each tenant table's "id serial PRIMARY KEY"
//     becomes PRIMARY KEY (tenant column, id); the serial ids and the
//     rows stay as the seed made them, and the guide's Drizzle schema
//     (which says id is the primary key) is unchanged.
//   - contacts, audit_log and notes are distributed by tenant_id,
//     list_contacts by list_id; list_members, read by every list's policy,
//     is a reference table (a copy on every node).
//   - has_list_access runs inside the shard query of list_contacts on a
//     worker and reads list_members, another distributed (reference)
//     table, which Citus refuses there unless the function sets
//     citus.allow_nested_distributed_execution = on: it is replaced with
//     the same body plus that setting, before list_contacts is
//     distributed (Citus sends the policy, hence the function, to the
//     shards).
var citusSQL = []string{
	`ALTER TABLE contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (tenant_id, id)`,
	`ALTER TABLE audit_log DROP CONSTRAINT audit_log_pkey, ADD PRIMARY KEY (tenant_id, id)`,
	`ALTER TABLE notes DROP CONSTRAINT notes_pkey, ADD PRIMARY KEY (tenant_id, id)`,
	`ALTER TABLE list_contacts DROP CONSTRAINT list_contacts_pkey, ADD PRIMARY KEY (list_id, id)`,
	`SELECT create_reference_table('list_members')`,
	`CREATE OR REPLACE FUNCTION has_list_access(list text) RETURNS boolean
		LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
		SET citus.allow_nested_distributed_execution = on
		AS $$ SELECT EXISTS (SELECT 1 FROM list_members m
			WHERE m.list_id = list AND m.user_id = current_setting('app.current_user_id', true)) $$`,
	`SELECT create_distributed_table('contacts', 'tenant_id')`,
	`SELECT create_distributed_table('audit_log', 'tenant_id', colocate_with => 'contacts')`,
	`SELECT create_distributed_table('notes', 'tenant_id')`,
	`SELECT create_distributed_table('list_contacts', 'list_id')`,
}

func TestNodeCitus(t *testing.T) {
	t.Parallel()
	c := pgtest.SharedCitus(t)
	compatenv.RequireFile(t, filepath.Join(nodeDir, "node_modules", ".package-lock.json"),
		"run `scripts/ensure-deps.sh node-modules` (make test does)")
	o := compatenv.Options{Citus: c, AfterSeed: citusSQL}
	compatenv.EachModeWith(t, poolModes, o, func(t *testing.T, e *compatenv.Env) {
		compatenv.RunNodeSuite(t, nodeDir, e)
	})
}
