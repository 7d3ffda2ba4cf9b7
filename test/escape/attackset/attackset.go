// Package attackset is the escape attack set: SQL a tenant can send, over
// the simple and the extended protocol, trying to leave its tenant. The
// attacks target a table contacts (id, tenant_id, name, email) protected by
// multigres_protect, with the victim tenant globex's rows in it. test/escape
// runs them against PostgreSQL and test/citus against a Citus coordinator,
// each in both pool modes.
package attackset

// Step is one statement of an attack, with optional bind parameters
// (extended protocol only).
type Step struct {
	SQL  string
	Args []any
}

// Attack is a named sequence of statements sent on one connection.
type Attack struct {
	Name  string
	Steps []Step
}

// HasArgs reports whether a step has bind parameters (so the attack runs
// over the extended protocol only).
func (a Attack) HasArgs() bool {
	for _, st := range a.Steps {
		if len(st.Args) > 0 {
			return true
		}
	}
	return false
}

func s(sqls ...string) []Step {
	out := make([]Step, len(sqls))
	for i, q := range sqls {
		out[i] = Step{SQL: q}
	}
	return out
}

// All is every attack: the floor, not the ceiling.
func All() []Attack {
	out := append([]Attack(nil), attacks...)
	out = append(out, lexerAttacks...)
	return append(out, sharedRoleAttacks...)
}

// attacks is the floor, not the ceiling: each is something a tenant with SQL
// access might try to leave its tenant.
var attacks = []Attack{
	// Changing the context variable directly.
	{"set", s("SET app.current_tenant_id = 'globex'")},
	{"set upper case", s("SET APP.CURRENT_TENANT_ID TO 'globex'")},
	{"set quoted", s(`SET "app"."current_tenant_id" = 'globex'`)},
	{"set quoted mixed case", s(`SET "App.Current_Tenant_Id" = 'globex'`)},
	{"set session", s("SET SESSION app.current_tenant_id = 'globex'")},
	{"set local in tx", s("BEGIN", "SET LOCAL app.current_tenant_id = 'globex'", "SELECT * FROM contacts")},
	{"set with comments", s("SET /* x */ app.current_tenant_id -- y\n = 'globex'")},
	{"set to default", s("SET app.current_tenant_id TO DEFAULT")},
	{"set from current", s("SET app.current_tenant_id FROM CURRENT")},
	{"reset", s("RESET app.current_tenant_id")},
	{"reset all", s("RESET ALL")},
	{"discard all", s("DISCARD ALL")},
	{"set e-string value", s("SET app.current_tenant_id = E'glo\\x62ex'")},
	// set_config in every position.
	{"set_config", s("SELECT set_config('app.current_tenant_id', 'globex', false)")},
	{"set_config is_local", s("BEGIN", "SELECT set_config('app.current_tenant_id', 'globex', true)", "SELECT * FROM contacts")},
	{"pg_catalog.set_config", s("SELECT pg_catalog.set_config('app.current_tenant_id', 'globex', false)")},
	{"quoted set_config", s(`SELECT "set_config"('app.current_tenant_id', 'globex', false)`)},
	{"unicode-escaped set_config", s(`SELECT U&"\0073et_config"('app.current_tenant_id', 'globex', false)`)},
	{"upper case name", s("SELECT set_config('APP.CURRENT_TENANT_ID', 'globex', false)")},
	{"E-string name", s(`SELECT set_config(E'app.current\x5ftenant_id', 'globex', false)`)},
	{"unicode-escaped name", s(`SELECT set_config(U&'app.current\005ftenant_id', 'globex', false)`)},
	{"dollar-quoted name", s("SELECT set_config($$app.current_tenant_id$$, 'globex', false)")},
	{"tagged dollar-quoted name", s("SELECT set_config($x$app.current_tenant_id$x$, 'globex', false)")},
	{"cast name", s("SELECT set_config('app.current_tenant_id'::varchar, 'globex', false)")},
	{"concatenated name", s("SELECT set_config('app.' || 'current_tenant_id', 'globex', false)")},
	{"chr() name", s("SELECT set_config(chr(97) || 'pp.current_tenant_id', 'globex', false)")},
	{"format() name", s("SELECT set_config(format('%s', 'app.current_tenant_id'), 'globex', false)")},
	{"subquery name", s("SELECT set_config((SELECT 'app.current_tenant_id'), 'globex', false)")},
	{"VALUES list name", s("SELECT set_config(n, 'globex', false) FROM (VALUES ('app.current_tenant_id')) v(n)")},
	{"unnest name", s("SELECT set_config(x, 'globex', false) FROM unnest(ARRAY['app.current_tenant_id']) x")},
	{"pg_settings name", s("SELECT set_config(name, 'globex', false) FROM pg_settings WHERE name LIKE 'app.%'")},
	{"bind parameter name", []Step{{SQL: "SELECT set_config($1, $2, false)", Args: []any{"app.current_tenant_id", "globex"}}}},
	{"in FROM", s("SELECT * FROM set_config('app.current_tenant_id', 'globex', false)")},
	{"in CTE", s("WITH x AS (SELECT set_config('app.current_tenant_id', 'globex', false)) SELECT * FROM x")},
	{"in subquery", s("SELECT (SELECT set_config('app.current_tenant_id', 'globex', false))")},
	{"in function argument", s("SELECT length(set_config('app.current_tenant_id', 'globex', false))")},
	{"in WHERE", s("SELECT * FROM contacts WHERE set_config('app.current_tenant_id', 'globex', false) IS NOT NULL")},
	{"in ORDER BY", s("SELECT * FROM contacts ORDER BY set_config('app.current_tenant_id', 'globex', false)")},
	{"in VALUES", s("VALUES (set_config('app.current_tenant_id', 'globex', false))")},
	{"in INSERT SELECT", s("INSERT INTO contacts (tenant_id, name) SELECT 'globex', set_config('app.current_tenant_id', 'globex', false)")},
	{"EXPLAIN ANALYZE", s("EXPLAIN ANALYZE SELECT set_config('app.current_tenant_id', 'globex', false)")},
	{"SQL PREPARE", s("PREPARE p AS SELECT set_config('app.current_tenant_id', 'globex', false)", "EXECUTE p")},
	{"SQL PREPARE with parameter", s("PREPARE q(text) AS SELECT set_config($1, 'globex', false)", "EXECUTE q('app.current_tenant_id')")},
	{"COPY query", s("COPY (SELECT set_config('app.current_tenant_id', 'globex', false)) TO STDOUT")},
	{"cursor", s("BEGIN", "DECLARE c CURSOR FOR SELECT set_config('app.current_tenant_id', 'globex', false)", "FETCH c")},
	{"CREATE TABLE AS", s("CREATE TABLE t_x AS SELECT set_config('app.current_tenant_id', 'globex', false)")},
	{"multi-statement", s("SELECT 1; SELECT set_config('app.current_tenant_id', 'globex', false); SELECT * FROM contacts")},
	{"query_to_xml", s("SELECT query_to_xml('SELECT set_config(''app.current_tenant_id'', ''globex'', false)', true, true, '')")},
	{"ts_stat", s("SELECT * FROM ts_stat('SELECT to_tsvector(set_config(''app.current_tenant_id'', ''globex'', false))')")},
	{"update pg_settings", s("UPDATE pg_settings SET setting = 'globex' WHERE name = 'app.current_tenant_id'")},
	{"update pg_settings in CTE", s("WITH u AS (UPDATE pg_settings SET setting = 'globex' WHERE name = 'app.current_tenant_id' RETURNING 1) SELECT * FROM u")},
	{"DO block", s("DO $$ BEGIN PERFORM set_config('app.current_tenant_id', 'globex', false); END $$")},
	{"DO with EXECUTE", s("DO $$ BEGIN EXECUTE 'SET app.current_tenant_id = ''globex'''; END $$")},
	// Role changes.
	{"set role", s("SET ROLE postgres")},
	{"set role none", s("SET ROLE NONE")},
	{"reset role", s("RESET ROLE")},
	{"set session authorization", s("SET SESSION AUTHORIZATION postgres")},
	{"set_config role", s("SELECT set_config('role', 'postgres', false)")},
	{"set_config session_authorization", s("SELECT set_config('session_authorization', 'postgres', false)")},
	{"alter role set", s("ALTER ROLE app_user SET app.current_tenant_id = 'globex'")},
	{"alter role bypassrls", s("ALTER ROLE app_user BYPASSRLS")},
	{"alter database set", s("ALTER DATABASE postgres SET app.current_tenant_id = 'globex'")},
	{"alter system", s("ALTER SYSTEM SET row_security = off")},
	// Turning RLS off or around it.
	{"row_security off", s("SET row_security = off", "SELECT * FROM contacts")},
	{"disable RLS", s("ALTER TABLE contacts DISABLE ROW LEVEL SECURITY")},
	{"no force RLS", s("ALTER TABLE contacts NO FORCE ROW LEVEL SECURITY")},
	{"drop policy", s("DROP POLICY multigres_tenant_isolation ON contacts")},
	{"create permissive policy", s("CREATE POLICY open ON contacts USING (true)")},
	{"truncate", s("TRUNCATE contacts")},
	{"pg_temp function", s("CREATE FUNCTION pg_temp.f() RETURNS text LANGUAGE sql AS $$ SELECT set_config('app.current_tenant_id', 'globex', false) $$", "SELECT pg_temp.f()")},
	{"temp view", s("CREATE TEMP VIEW v AS SELECT * FROM contacts", "SELECT * FROM v")},
	{"public function", s("CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$")},
	{"new schema", s("CREATE SCHEMA evil")},
	{"security definer view", s("CREATE VIEW public.allc AS SELECT * FROM contacts")},
	// Writing another tenant's rows.
	{"insert other tenant", s("INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'mallory')")},
	{"move own row to other tenant", s("UPDATE contacts SET tenant_id = 'globex'")},
	{"update other tenant", s("UPDATE contacts SET name = 'pwned' WHERE tenant_id = 'globex'")},
	{"delete other tenant", s("DELETE FROM contacts WHERE tenant_id = 'globex'")},
	{"upsert over other tenant's key", s("INSERT INTO contacts (id, tenant_id, name) SELECT id, 'globex', 'pwned' FROM contacts ON CONFLICT (id) DO UPDATE SET name = 'pwned'")},
	{"upsert on guessed id", s("INSERT INTO contacts (id, tenant_id, name) VALUES (1, 'globex', 'x') ON CONFLICT (id) DO UPDATE SET name = 'pwned'")},
	{"leaky division", s("SELECT 1 / (CASE WHEN tenant_id = 'globex' THEN 0 ELSE 1 END) FROM contacts")},
	{"COPY FROM into other tenant", s("COPY contacts (tenant_id, name) FROM STDIN")},
	// Other sessions and objects shared by all tenants.
	{"terminate all backends", s("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()")},
	{"cancel by pid range", s("SELECT pg_cancel_backend(g) FROM generate_series(1, 100) g")},
	{"read pg_stat_activity", s("SELECT query FROM pg_stat_activity")},
	{"large object read", s("SELECT lo_get(oid) FROM pg_largeobject_metadata")},
	{"pg_largeobject", s("SELECT data FROM pg_largeobject")},
	{"lo_import", s("SELECT lo_import('/etc/passwd')")},
	{"read file", s("SELECT pg_read_file('postgresql.conf')")},
	{"listen", s("LISTEN orders")},
	{"notify", s("NOTIFY orders, 'x'")},
	{"pg_notify", s("SELECT pg_notify('orders', 'x')")},
	// Signed context: reuse the connection's own MAC or fingerprint for
	// another value, prime a forged value, or drop the seed behind the
	// fingerprint (multigres.context_prime in sql/setup.sql).
	{"reuse MAC", s("SELECT set_config('app.current_tenant_id', 'globex', false), set_config('multigres_mac.v' || md5('app.current_tenant_id'), current_setting('multigres_mac.v' || md5('app.current_tenant_id'), true), false)")},
	{"reuse fingerprint", s("SELECT set_config('multigres_fp.app.current_tenant_id', current_setting('multigres_fp.app.current_tenant_id', true), false), set_config('app.current_tenant_id', 'globex', false)")},
	{"prime forged value", s("SELECT set_config('app.current_tenant_id', 'globex', false), multigres.context_prime('app.current_tenant_id')")},
	{"fingerprint with guessed seed", s("SELECT set_config('app.current_tenant_id', 'globex', false), set_config('multigres_fp.app.current_tenant_id', md5('1:1|app.current_tenant_id|globex'), false)")},
	{"discard sequences", s("DISCARD SEQUENCES", "SELECT set_config('app.current_tenant_id', 'globex', false)")},
}

// lexerAttacks change how the server lexes later statements, or call
// functions in notations the guard must still see.
var lexerAttacks = []Attack{
	{"ts_rewrite runs SQL text", s("SELECT ts_rewrite('a'::tsquery, 'SELECT set_config(''app.current_tenant_id'',''globex'',false)::tsquery, ''b''::tsquery')")},
	{"attribute-notation ts_stat", s("SELECT ('SELECT set_config(''app.current_tenant_id'',''globex'',false)::tsvector'::text).ts_stat")},
	{"attribute-notation query_to_xml", s("SELECT ('SELECT 1'::text).query_to_xml")},
	{"standard_conforming_strings off", s("SET standard_conforming_strings = off",
		`SELECT '\' || $q$ ' || set_config('app.current_tenant_id','globex',false) || ' $q$ --'`)},
	{"set_config standard_conforming_strings", s("SELECT set_config('standard_conforming_strings', 'off', false)",
		`SELECT '\' || $q$ ' || set_config('app.current_tenant_id','globex',false) || ' $q$ --'`)},
	{"backslash_quote", s("SET backslash_quote = on")},
	{"client_encoding SJIS", s("SET client_encoding = 'SJIS'",
		"SELECT E'\xE3\x81\x81\x5C' || set_config($a$app.current_tenant_id$a$,$a$globex$a$,false) --'")},
	{"SET NAMES BIG5", s("SET NAMES 'BIG5'", "SELECT 1")},
	{"set_config client_encoding GBK", s("SELECT set_config('client_encoding', 'GBK', false)", "SELECT 1")},
	{"refusal breakout", s("SELECT set \"\\'; EXCEPTION WHEN OTHERS THEN PERFORM set_config($a$app.current_tenant_id$a$,$a$globex$a$,false); END $multigres$; --")},
	{"dollar tag in refusal", s("SELECT 1 $multigres$ set")},
}

// sharedRoleAttacks act on what belongs to the role all tenants share:
// prepared transactions, table locks and default privileges.
var sharedRoleAttacks = []Attack{
	{"prepare transaction", s("BEGIN", "SELECT 1", "PREPARE TRANSACTION 'mg_escape_tx'")},
	{"commit prepared", s("COMMIT PREPARED 'globex_tx1'")},
	{"rollback prepared", s("ROLLBACK PREPARED 'globex_tx1'")},
	{"lock table", s("BEGIN", "LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")},
	{"alter default privileges", s("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO PUBLIC")},
}
