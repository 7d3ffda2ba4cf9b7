package sql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

const tenantPassword = "tenant_pw"

var roleSeq atomic.Int64

// uniqueRole returns a role name no other test uses: roles are cluster-wide
// and the package's tests share one cluster.
func uniqueRole(prefix string) string {
	return fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), roleSeq.Add(1))
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type env struct {
	s    *pgtest.Server
	db   string
	conn *pgx.Conn // superuser
	role string    // tenant role, password tenantPassword
	auth string    // auth user, password authPassword
}

const authPassword = "auth pw with spaces & 'quotes'"

// setup creates a database, runs Init with a fresh tenant role and auth user,
// and gives the tenant role a password so tests can log in as it.
func setup(t *testing.T, harden bool) *env {
	t.Helper()
	s := pgtest.Shared()
	e := &env{s: s, role: uniqueRole("app_user"), auth: uniqueRole("mg_auth")}
	e.db = s.CreateDB(t)
	e.conn = s.Connect(t, e.db)
	ctx := testCtx(t)
	if err := Init(ctx, e.conn, Options{TenantRoles: []string{e.role}, AuthUser: e.auth, AuthPassword: authPassword, Harden: harden}); err != nil {
		t.Fatalf("Init: %v", err)
	}
	e.exec(t, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", ident(e.role), tenantPassword))
	return e
}

func (e *env) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := e.conn.Exec(testCtx(t), sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// tenant connects as the tenant role and sets the given context variables
// the way the proxy does (session-level set_config).
func (e *env) tenant(t *testing.T, vars map[string]string) *pgx.Conn {
	t.Helper()
	return e.connectAs(t, e.role, tenantPassword, vars)
}

func (e *env) connectAs(t *testing.T, user, pw string, vars map[string]string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	c, err := pgx.Connect(ctx, e.s.URL(user, pw, e.db))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	for k, v := range vars {
		if _, err := c.Exec(ctx, "SELECT set_config($1, $2, false)", k, v); err != nil {
			t.Fatalf("set_config %s: %v", k, err)
		}
	}
	return c
}

func queryStrings(t *testing.T, c *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := c.Query(testCtx(t), sql, args...)
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query %q: %v", sql, err)
	}
	return out
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func wantSQLState(t *testing.T, err error, code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want SQLSTATE %s", what, code)
	}
	if got := sqlState(err); got != code {
		t.Fatalf("%s: %v (SQLSTATE %q), want SQLSTATE %s", what, err, got, code)
	}
}

func affected(t *testing.T, c *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	tag, err := c.Exec(testCtx(t), sql, args...)
	if err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
	return tag.RowsAffected()
}

func TestInitIdempotentAndRoleAttributes(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared()
	db := s.CreateDB(t)
	conn := s.Connect(t, db)
	ctx := testCtx(t)
	fresh, existing, auth := uniqueRole("app_user"), uniqueRole("app_user"), uniqueRole("mg_auth")
	// An existing tenant role with dangerous attributes gets them stripped.
	if _, err := conn.Exec(ctx, "CREATE ROLE "+ident(existing)+" NOLOGIN BYPASSRLS CREATEDB CREATEROLE REPLICATION"); err != nil {
		t.Fatal(err)
	}
	opts := Options{TenantRoles: []string{fresh, existing}, AuthUser: auth, Harden: true}
	for i := 0; i < 2; i++ {
		if err := Init(ctx, conn, opts); err != nil {
			t.Fatalf("Init #%d: %v", i+1, err)
		}
	}
	for _, r := range []string{fresh, existing} {
		var login, super, bypass, createdb, createrole, repl bool
		if err := conn.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolreplication
			FROM pg_roles WHERE rolname = $1`, r).Scan(&login, &super, &bypass, &createdb, &createrole, &repl); err != nil {
			t.Fatalf("role %s: %v", r, err)
		}
		if super || bypass || createdb || createrole || repl {
			t.Errorf("role %s: super=%v bypassrls=%v createdb=%v createrole=%v replication=%v, want all false",
				r, super, bypass, createdb, createrole, repl)
		}
		if r == fresh && !login {
			t.Errorf("new tenant role %s cannot log in", r)
		}
	}
	got := queryStrings(t, conn, "SELECT rolname::text FROM multigres.tenant_roles ORDER BY 1")
	if len(got) != 2 {
		t.Errorf("multigres.tenant_roles = %v, want both roles once", got)
	}
	var canLogin, canLookup bool
	if err := conn.QueryRow(ctx, `SELECT rolcanlogin, has_function_privilege(oid, 'multigres.user_lookup(text)', 'EXECUTE')
		FROM pg_roles WHERE rolname = $1`, auth).Scan(&canLogin, &canLookup); err != nil {
		t.Fatalf("auth user: %v", err)
	}
	if !canLogin || !canLookup {
		t.Errorf("auth user: login=%v lookup=%v, want both", canLogin, canLookup)
	}
	// The functions are there exactly once.
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_proc WHERE proname IN
		('current_tenant_id', 'multigres_context', 'multigres_protect', 'multigres_unprotect', 'multigres_status', 'multigres_hardening_status')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("%d multigres functions, want 6", n)
	}
}

func TestInitRefusesSuperuserTenantRole(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared()
	db := s.CreateDB(t)
	conn := s.Connect(t, db)
	ctx := testCtx(t)
	su := uniqueRole("app_super")
	if _, err := conn.Exec(ctx, "CREATE ROLE "+ident(su)+" LOGIN SUPERUSER"); err != nil {
		t.Fatal(err)
	}
	for _, roles := range [][]string{{su}, {uniqueRole("app_user"), su}, {pgtest.SuperUser}} {
		err := Init(ctx, conn, Options{TenantRoles: roles, NoAuthUser: true})
		bad := roles[len(roles)-1]
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("Init with tenant roles %v: err = %v, want an error naming %q", roles, err, bad)
		}
	}
	// The role keeps its attributes and the failed transaction left nothing.
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = $1", su).Scan(&super); err != nil || !super {
		t.Fatalf("superuser role changed: super=%v err=%v", super, err)
	}
	var schema *string
	if err := conn.QueryRow(ctx, "SELECT to_regnamespace('multigres')::text").Scan(&schema); err != nil || schema != nil {
		t.Fatalf("schema multigres after failed Init: %v (err %v), want none", schema, err)
	}
}

func TestInitRequiresSuperuser(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	c := e.tenant(t, nil)
	err := Init(testCtx(t), c, Options{TenantRoles: []string{uniqueRole("app_user")}})
	if err == nil || !strings.Contains(err.Error(), "superuser") {
		t.Fatalf("Init as tenant role: %v, want superuser error", err)
	}
}

func TestCurrentTenantIDIsInlinableSQL(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	for _, fn := range []string{"public.current_tenant_id()", "public.multigres_context(text)"} {
		var lang string
		var vol byte
		var secdef bool
		var config []string
		if err := e.conn.QueryRow(ctx, `SELECT l.lanname, p.provolatile, p.prosecdef, p.proconfig
			FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = $1::regprocedure`, fn).
			Scan(&lang, &vol, &secdef, &config); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		// Inlining needs LANGUAGE sql, no SECURITY DEFINER and no SET clause.
		if lang != "sql" || vol != 's' || secdef || config != nil {
			t.Errorf("%s: language=%s volatility=%c secdef=%v config=%v, want sql, s, false, none", fn, lang, vol, secdef, config)
		}
	}
	cases := []struct {
		vars map[string]string
		want *string
	}{
		{nil, nil},
		{map[string]string{"app.current_tenant_id": ""}, nil},
		{map[string]string{"app.current_tenant_id": "acme"}, ptr("acme")},
	}
	for _, tc := range cases {
		c := e.tenant(t, tc.vars)
		var a, b *string
		if err := c.QueryRow(ctx, "SELECT current_tenant_id(), multigres_context('app.current_tenant_id')").Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		if !eqPtr(a, tc.want) || !eqPtr(b, tc.want) {
			t.Errorf("vars %v: current_tenant_id=%v multigres_context=%v, want %v", tc.vars, deref(a), deref(b), deref(tc.want))
		}
	}
}

func ptr(s string) *string { return &s }
func eqPtr(a, b *string) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}
func deref(p *string) string {
	if p == nil {
		return "NULL"
	}
	return fmt.Sprintf("%q", *p)
}

// TestProtectIsolation covers the column types the policy must cast to.
func TestProtectIsolation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, colType, mine, other string
	}{
		{"varchar_seed_contacts", "varchar(255)", "acme", "globex"},
		{"text", "text", "acme", "globex"},
		{"uuid", "uuid", "6f1c1c3e-8a0e-4d4e-9a51-0f6d6d7b6b01", "0b7a2a5e-52c4-4f39-a1f0-5d1a8c2e9e02"},
		{"bigint", "bigint", "42", "43"},
		{"integer", "integer", "7", "8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, false)
			// The seed's contacts table, with the tenant column's type varied.
			e.exec(t, fmt.Sprintf(`CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id %s NOT NULL, name text NOT NULL, email text);
				INSERT INTO contacts (tenant_id, name) VALUES ('%s', 'a1'), ('%s', 'a2'), ('%s', 'b1');
				SELECT multigres_protect('contacts', 'tenant_id');`, tc.colType, tc.mine, tc.mine, tc.other))

			c := e.tenant(t, map[string]string{"app.current_tenant_id": tc.mine})
			if got := queryStrings(t, c, "SELECT name FROM contacts ORDER BY name"); strings.Join(got, ",") != "a1,a2" {
				t.Fatalf("tenant sees %v, want [a1 a2]", got)
			}
			// serial works: the sequence was granted.
			if n := affected(t, c, "INSERT INTO contacts (tenant_id, name) VALUES ($1, 'a3')", tc.mine); n != 1 {
				t.Fatalf("own insert affected %d rows", n)
			}
			_, err := c.Exec(testCtx(t), "INSERT INTO contacts (tenant_id, name) VALUES ($1, 'evil')", tc.other)
			wantSQLState(t, err, "42501", "insert with another tenant's id")
			if n := affected(t, c, "UPDATE contacts SET name = 'pwned' WHERE tenant_id = $1", tc.other); n != 0 {
				t.Fatalf("update of other tenant affected %d rows", n)
			}
			if n := affected(t, c, "DELETE FROM contacts WHERE tenant_id = $1", tc.other); n != 0 {
				t.Fatalf("delete of other tenant affected %d rows", n)
			}
			_, err = c.Exec(testCtx(t), "UPDATE contacts SET tenant_id = $1 WHERE name = 'a1'", tc.other)
			wantSQLState(t, err, "42501", "moving an own row to another tenant")

			for _, vars := range []map[string]string{nil, {"app.current_tenant_id": ""}} {
				c := e.tenant(t, vars)
				if got := queryStrings(t, c, "SELECT name FROM contacts"); len(got) != 0 {
					t.Fatalf("context %v: tenant sees %v, want no rows (fail-closed)", vars, got)
				}
				if n := affected(t, c, "DELETE FROM contacts"); n != 0 {
					t.Fatalf("context %v: delete affected %d rows", vars, n)
				}
			}
			// The superuser still sees everything, untouched.
			if got := queryStrings(t, e.conn, "SELECT name FROM contacts ORDER BY name"); strings.Join(got, ",") != "a1,a2,a3,b1" {
				t.Fatalf("superuser sees %v, want [a1 a2 a3 b1]", got)
			}
		})
	}
}

func TestProtectQualifiedAndQuotedNames(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	// No GRANT USAGE on the schemas: multigres_protect gives it.
	e.exec(t, `CREATE SCHEMA app; CREATE SCHEMA "My Schema";
		CREATE TABLE app.items (id bigint GENERATED ALWAYS AS IDENTITY, tenant_id text, v text);
		CREATE TABLE "My Schema"."Items" (id serial, "Tenant Id" text, v text);
		INSERT INTO app.items (tenant_id, v) VALUES ('acme', 'a'), ('globex', 'g');
		INSERT INTO "My Schema"."Items" ("Tenant Id", v) VALUES ('acme', 'a'), ('globex', 'g');`)
	if err := Protect(ctx, e.conn, "app.items", ""); err != nil {
		t.Fatal(err)
	}
	if err := Protect(ctx, e.conn, `"My Schema"."Items"`, "Tenant Id"); err != nil {
		t.Fatal(err)
	}
	c := e.tenant(t, map[string]string{"app.current_tenant_id": "acme"})
	for _, tbl := range []string{"app.items", `"My Schema"."Items"`} {
		if got := queryStrings(t, c, "SELECT v FROM "+tbl); strings.Join(got, ",") != "a" {
			t.Errorf("%s: tenant sees %v, want [a]", tbl, got)
		}
	}
	if n := affected(t, c, "INSERT INTO app.items (tenant_id, v) VALUES ('acme', 'b')"); n != 1 {
		t.Errorf("identity insert affected %d", n)
	}
	if n := affected(t, c, `INSERT INTO "My Schema"."Items" ("Tenant Id", v) VALUES ('acme', 'b')`); n != 1 {
		t.Errorf("serial insert in quoted table affected %d", n)
	}

	err := Protect(ctx, e.conn, "app.nope", "tenant_id")
	wantSQLState(t, err, "42P01", "protect missing table")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Hint == "" || !strings.Contains(pe.Message, "app.nope")) {
		t.Errorf("missing table error %q hint %q: want the name and a hint", pe.Message, pe.Hint)
	}
	wantSQLState(t, Protect(ctx, e.conn, "app.items", "nope"), "42703", "protect missing column")
	// Unquoted names fold to lower case, as in SQL.
	if err := Protect(ctx, e.conn, "APP.ITEMS", "tenant_id"); err != nil {
		t.Errorf("unquoted upper-case name should fold to app.items: %v", err)
	}
	wantSQLState(t, Protect(ctx, e.conn, "Mixed.Items", "Tenant Id"), "42P01", "unquoted mixed-case name")
	wantSQLState(t, Protect(ctx, e.conn, "My Schema.Items", "Tenant Id"), "42602", "unquoted name with a space")
}

func TestProtectUsesIndexAndInitPlan(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	cases := []struct{ colType, expr, tenant string }{
		{"text", "'t' || (i % 200)", "t7"},
		{"varchar(255)", "'t' || (i % 200)", "t7"},
		{"uuid", "md5((i % 200)::text)::uuid", "8f14e45f-ceea-167a-5a36-dedd4bea2543"}, // md5('7')
		{"bigint", "i % 200", "7"},
	}
	for n, tc := range cases {
		tbl := fmt.Sprintf("events%d", n)
		e.exec(t, fmt.Sprintf(`CREATE TABLE %[1]s (id bigserial PRIMARY KEY, tenant_id %[2]s NOT NULL, payload text);
			INSERT INTO %[1]s (tenant_id, payload) SELECT %[3]s, repeat('x', 40) FROM generate_series(1, 6000) i;
			CREATE INDEX %[1]s_tenant_idx ON %[1]s (tenant_id);
			ANALYZE %[1]s;
			SELECT multigres_protect('%[1]s');`, tbl, tc.colType, tc.expr))
		c := e.tenant(t, map[string]string{"app.current_tenant_id": tc.tenant})
		plan := strings.Join(queryStrings(t, c, "EXPLAIN SELECT * FROM "+tbl+" WHERE true"), "\n")
		if !strings.Contains(plan, "InitPlan") {
			t.Errorf("%s: plan has no InitPlan:\n%s", tc.colType, plan)
		}
		if !strings.Contains(plan, "Index") || !strings.Contains(plan, tbl+"_tenant_idx") {
			t.Errorf("%s: plan does not use %s_tenant_idx:\n%s", tc.colType, tbl, plan)
		}
		var rows int
		if err := c.QueryRow(testCtx(t), "SELECT count(*) FROM "+tbl).Scan(&rows); err != nil || rows != 30 {
			t.Errorf("%s: count = %d (err %v), want 30", tc.colType, rows, err)
		}
	}
}

// TestTwoContextVariables is the guide's list/user example: rows scoped by
// app.current_list_id, and a user must also have access to the list.
func TestTwoContextVariables(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	e.exec(t, `CREATE TABLE list_members (list_id text, user_id text);
		INSERT INTO list_members VALUES ('l1', 'u1'), ('l2', 'u2');
		-- has_list_access reads app.current_user_id itself, as the guide says.
		CREATE FUNCTION has_list_access(list text) RETURNS boolean
			LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
			$$ SELECT EXISTS (SELECT 1 FROM public.list_members m
			   WHERE m.list_id = list AND m.user_id = public.multigres_context('app.current_user_id')) $$;
		CREATE TABLE contacts (id serial, list_id text NOT NULL, name text);
		INSERT INTO contacts (list_id, name) VALUES ('l1', 'one'), ('l2', 'two');
		SELECT multigres_protect('contacts', 'list_id', 'app.current_list_id');
		CREATE POLICY list_access ON contacts AS RESTRICTIVE FOR ALL TO PUBLIC USING (has_list_access(list_id));`)
	cases := []struct {
		list, user string
		want       string
	}{
		{"l1", "u1", "one"},
		{"l2", "u2", "two"},
		{"l1", "u2", ""}, // right list, user without access
		{"l2", "", ""},   // user unset: fail-closed
		{"", "u1", ""},   // list unset: fail-closed
	}
	for _, tc := range cases {
		c := e.tenant(t, map[string]string{"app.current_list_id": tc.list, "app.current_user_id": tc.user})
		if got := strings.Join(queryStrings(t, c, "SELECT name FROM contacts"), ","); got != tc.want {
			t.Errorf("list=%q user=%q: sees %q, want %q", tc.list, tc.user, got, tc.want)
		}
	}
}

func TestStatusCountsPerTableAcrossSchemas(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	e.exec(t, `CREATE SCHEMA crm;
		CREATE TABLE public.contacts (tenant_id text);
		CREATE TABLE crm.contacts (tenant_id text);
		CREATE TABLE crm.notes (tenant_id text);
		SELECT multigres_protect('crm.contacts');
		ALTER TABLE crm.notes ENABLE ROW LEVEL SECURITY;
		CREATE POLICY p1 ON crm.notes USING (true);
		CREATE POLICY p2 ON crm.notes USING (true);`)
	st, err := Status(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]TableStatus{}
	for _, s := range st {
		if s.Schema == "multigres" {
			t.Errorf("status lists internal table %s.%s", s.Schema, s.Table)
		}
		got[s.Schema+"."+s.Table] = s
	}
	want := map[string]TableStatus{
		"public.contacts": {Schema: "public", Table: "contacts"},
		"crm.contacts":    {Schema: "crm", Table: "contacts", RLSEnabled: true, RLSForced: true, Protected: true, Policies: 1},
		"crm.notes":       {Schema: "crm", Table: "notes", RLSEnabled: true, Policies: 2},
	}
	if len(got) != len(want) {
		t.Errorf("status has %d tables %v, want %d", len(got), st, len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
}

func TestProtectTwiceThenUnprotect(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	e.exec(t, `CREATE TABLE t (tenant_id text, v text); INSERT INTO t VALUES ('acme', 'a'), ('globex', 'g');`)
	for i := 0; i < 2; i++ {
		if err := Protect(ctx, e.conn, "t", "tenant_id"); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := e.conn.QueryRow(ctx, "SELECT count(*) FROM pg_policy WHERE polrelid = 't'::regclass").Scan(&n); err != nil || n != 1 {
		t.Fatalf("after protecting twice: %d policies (err %v), want 1", n, err)
	}
	if err := Unprotect(ctx, e.conn, "t"); err != nil {
		t.Fatal(err)
	}
	var enabled, forced bool
	if err := e.conn.QueryRow(ctx, `SELECT relrowsecurity, relforcerowsecurity,
		(SELECT count(*) FROM pg_policy WHERE polrelid = 't'::regclass) FROM pg_class WHERE oid = 't'::regclass`).
		Scan(&enabled, &forced, &n); err != nil {
		t.Fatal(err)
	}
	if enabled || forced || n != 0 {
		t.Fatalf("after unprotect: rls=%v forced=%v policies=%d, want off, off, 0", enabled, forced, n)
	}
	// Grants stay (documented): the tenant now sees every row.
	c := e.tenant(t, map[string]string{"app.current_tenant_id": "acme"})
	if got := queryStrings(t, c, "SELECT v FROM t ORDER BY v"); strings.Join(got, ",") != "a,g" {
		t.Fatalf("after unprotect tenant sees %v, want all rows", got)
	}
	// Unprotect keeps RLS when another policy remains.
	e.exec(t, `SELECT multigres_protect('t'); CREATE POLICY other ON t USING (v = 'g');`)
	if err := Unprotect(ctx, e.conn, "t"); err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, c, "SELECT v FROM t ORDER BY v"); strings.Join(got, ",") != "g" {
		t.Fatalf("with another policy left, tenant sees %v, want [g]", got)
	}
	wantSQLState(t, Unprotect(ctx, e.conn, "nope"), "42P01", "unprotect missing table")
}

func TestProtectRefusesTenantOwnedTable(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	e.exec(t, fmt.Sprintf(`CREATE TABLE owned (tenant_id text); ALTER TABLE owned OWNER TO %s;`, ident(e.role)))
	wantSQLState(t, Protect(testCtx(t), e.conn, "owned", ""), "42501", "protect a tenant-owned table")
}

func TestInitGrantsNewTenantRoleOnProtectedTables(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	e.exec(t, `CREATE TABLE t (id serial, tenant_id text); SELECT multigres_protect('t');`)
	second := uniqueRole("app_user")
	if err := Init(ctx, e.conn, Options{TenantRoles: []string{second}, AuthUser: e.auth}); err != nil {
		t.Fatal(err)
	}
	var tbl, seq bool
	if err := e.conn.QueryRow(ctx, `SELECT has_table_privilege($1, 't', 'SELECT,INSERT,UPDATE,DELETE'),
		has_sequence_privilege($1, 't_id_seq', 'USAGE')`, second).Scan(&tbl, &seq); err != nil {
		t.Fatal(err)
	}
	if !tbl || !seq {
		t.Fatalf("new tenant role: table=%v sequence=%v, want both granted", tbl, seq)
	}
}

func TestUserLookup(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	ok, nologin, expired := uniqueRole("u_ok"), uniqueRole("u_nologin"), uniqueRole("u_expired")
	e.exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'pw1';
		CREATE ROLE %s NOLOGIN PASSWORD 'pw2';
		CREATE ROLE %s LOGIN PASSWORD 'pw3' VALID UNTIL '2001-01-01';`, ident(ok), ident(nologin), ident(expired)))
	// Logging in with authPassword also proves ScramVerifier matches the server.
	a := e.connectAs(t, e.auth, authPassword, nil)
	var name, verifier string
	if err := a.QueryRow(ctx, "SELECT usename, passwd FROM multigres.user_lookup($1)", ok).Scan(&name, &verifier); err != nil {
		t.Fatalf("user_lookup(%s): %v", ok, err)
	}
	if name != ok || !strings.HasPrefix(verifier, "SCRAM-SHA-256$4096:") {
		t.Fatalf("user_lookup(%s) = %q, verifier prefix %.20q", ok, name, verifier)
	}
	for _, r := range []string{nologin, expired, "no_such_role"} {
		rows := queryStrings(t, a, "SELECT usename::text FROM multigres.user_lookup($1)", r)
		if len(rows) != 0 {
			t.Errorf("user_lookup(%s) returned %v, want nothing", r, rows)
		}
	}
	c := e.tenant(t, nil)
	_, err := c.Exec(ctx, "SELECT * FROM multigres.user_lookup($1)", ok)
	wantSQLState(t, err, "42501", "tenant role runs user_lookup")
	var secdef bool
	var config []string
	if err := e.conn.QueryRow(ctx, `SELECT prosecdef, proconfig FROM pg_proc WHERE oid = 'multigres.user_lookup(text)'::regprocedure`).
		Scan(&secdef, &config); err != nil {
		t.Fatal(err)
	}
	if !secdef || strings.Join(config, ",") != "search_path=pg_catalog, pg_temp" {
		t.Errorf("user_lookup secdef=%v config=%v", secdef, config)
	}
}

func TestScramVerifierFormat(t *testing.T) {
	t.Parallel()
	a, err := ScramVerifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ScramVerifier("secret")
	if a == b {
		t.Error("two verifiers share a salt")
	}
	parts := strings.Split(a, "$")
	if len(parts) != 3 || parts[0] != "SCRAM-SHA-256" || !strings.HasPrefix(parts[1], "4096:") || strings.Count(parts[2], ":") != 1 {
		t.Errorf("verifier %q has the wrong shape", a)
	}
}

func TestHardening(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)

	// Without hardening, the checks must be able to fail.
	plain := setup(t, false)
	items, err := HardeningStatus(ctx, plain.conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{}
	for _, it := range items {
		if !it.OK {
			missing[strings.TrimPrefix(it.Item, plain.role+": ")] = true
		}
	}
	for _, want := range []string{"temporary", "activity_query", "session_views", "signal_backend"} {
		if !missing[want] {
			t.Errorf("unhardened database: %s reported ok; items %+v", want, items)
		}
	}

	e := setup(t, true)
	items, err = HardeningStatus(ctx, e.conn, []string{e.role})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, it := range items {
		check := strings.TrimPrefix(it.Item, e.role+": ")
		seen[check] = true
		// Other databases exist in the test cluster and init does not touch them.
		if it.Advisory != (check == "other_databases" || check == "rls_views") {
			t.Errorf("%s: advisory = %v", it.Item, it.Advisory)
		}
		if check == "other_databases" {
			if it.OK {
				t.Errorf("other_databases reported ok although the role can connect to postgres: %+v", it)
			}
			continue
		}
		if !it.OK {
			t.Errorf("after Init with Harden: %s missing: %s", it.Item, it.Detail)
		}
	}
	for _, want := range []string{"attributes", "memberships", "temporary", "create_database", "create_schema",
		"owns_objects", "activity_query", "session_views", "signal_backend", "user_lookup", "table_privileges", "large_objects", "statement_stats",
		"dblink", "rls_views", "other_databases"} {
		if !seen[want] {
			t.Errorf("hardening item %s not reported", want)
		}
	}

	victim := e.tenant(t, map[string]string{"app.current_tenant_id": "globex"})
	c := e.tenant(t, map[string]string{"app.current_tenant_id": "acme"})
	victimPID := victim.PgConn().PID()
	attempts := map[string]string{
		"CREATE TEMP TABLE tt (x int)":                                              "42501",
		"CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'":        "42501",
		"CREATE TABLE public.mine (x int)":                                          "42501",
		"CREATE SCHEMA mine":                                                        "42501",
		"SELECT query FROM pg_stat_activity":                                        "42501",
		"SELECT pg_stat_get_backend_activity(b) FROM pg_stat_get_backend_idset() b": "42501",
		"SELECT lo_create(0)":                                                       "42501",
		"SELECT name, statement FROM pg_prepared_statements":                        "42501",
		"SELECT name, statement FROM pg_cursors":                                    "42501",
		"SELECT gid FROM pg_prepared_xacts":                                         "42501",
		"SELECT objid FROM pg_locks":                                                "42501",
		"SELECT lo_from_bytea(0, 'secret')":                                         "42501",
		fmt.Sprintf("SELECT pg_terminate_backend(%d)", victimPID):                   "42501",
		fmt.Sprintf("SELECT pg_cancel_backend(%d)", victimPID):                      "42501",
	}
	for q, code := range attempts {
		_, err := c.Exec(ctx, q)
		wantSQLState(t, err, code, q)
	}
	if err := victim.Ping(ctx); err != nil {
		t.Fatalf("victim connection died: %v", err)
	}
	// A second Init with Harden is still fine.
	if err := Init(ctx, e.conn, Options{TenantRoles: []string{e.role}, AuthUser: e.auth, Harden: true}); err != nil {
		t.Fatalf("second hardened Init: %v", err)
	}
}

// hardeningOK returns check name -> ok for role.
func hardeningOK(t *testing.T, e *env) map[string]bool {
	t.Helper()
	items, err := HardeningStatus(testCtx(t), e.conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, it := range items {
		out[strings.TrimPrefix(it.Item, e.role+": ")] = it.OK
	}
	return out
}

// TestHardeningExtensionsAndViews: pg_stat_statements and dblink installed
// before init are locked down by it; views that bypass RLS are reported.
func TestHardeningExtensionsAndViews(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	e.exec(t, fmt.Sprintf(`CREATE EXTENSION pg_stat_statements; CREATE EXTENSION dblink;
		CREATE TABLE t (tenant_id text); SELECT multigres_protect('t');
		INSERT INTO t VALUES ('acme'), ('globex');
		GRANT TRUNCATE ON t TO %[1]s;
		CREATE VIEW all_rows AS SELECT * FROM t;
		GRANT SELECT ON all_rows TO %[1]s;`, ident(e.role)))
	before := hardeningOK(t, e)
	for _, k := range []string{"statement_stats", "dblink", "rls_views", "table_privileges"} {
		if before[k] {
			t.Errorf("before hardening: %s reported ok", k)
		}
	}
	if err := Init(ctx, e.conn, Options{TenantRoles: []string{e.role}, AuthUser: e.auth, Harden: true}); err != nil {
		t.Fatal(err)
	}
	after := hardeningOK(t, e)
	for _, k := range []string{"statement_stats", "dblink", "table_privileges"} {
		if !after[k] {
			t.Errorf("after hardening: %s not ok", k)
		}
	}
	if after["rls_views"] {
		t.Error("a superuser-owned view over a protected table is reported ok")
	}
	c := e.tenant(t, map[string]string{"app.current_tenant_id": "acme"})
	for _, q := range []string{"SELECT count(*) FROM pg_stat_statements", "SELECT dblink_connect('host=127.0.0.1')", "TRUNCATE t"} {
		_, err := c.Exec(ctx, q)
		wantSQLState(t, err, "42501", q)
	}
	e.exec(t, "ALTER VIEW all_rows SET (security_invoker = on)")
	if !hardeningOK(t, e)["rls_views"] {
		t.Error("security_invoker view still reported")
	}
}

// TestInitConcurrentSameRole: roles are cluster-wide, so Inits in several
// databases at once must not fail on each other's CREATE/ALTER ROLE.
func TestInitConcurrentSameRole(t *testing.T) {
	t.Parallel()
	s := pgtest.Shared()
	role, auth := uniqueRole("app_user"), uniqueRole("mg_auth")
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = s.Connect(t, s.CreateDB(t))
	}
	ctx := testCtx(t)
	errs := make(chan error, n)
	for _, c := range conns {
		go func(c *pgx.Conn) {
			errs <- Init(ctx, c, Options{TenantRoles: []string{role}, AuthUser: auth, AuthPassword: "pw", Harden: true})
		}(c)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Init: %v", err)
		}
	}
}

func TestProtectPartitionedTable(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	e.exec(t, `CREATE TABLE parted (id serial, tenant_id text NOT NULL, v text) PARTITION BY LIST (tenant_id);
		CREATE TABLE parted_a PARTITION OF parted FOR VALUES IN ('acme');
		CREATE TABLE parted_g PARTITION OF parted FOR VALUES IN ('globex');
		INSERT INTO parted (tenant_id, v) VALUES ('acme', 'a'), ('globex', 'g');
		SELECT multigres_protect('parted');`)
	// A second Init (new role) must not grant on partitions.
	if err := Init(ctx, e.conn, Options{TenantRoles: []string{e.role}, AuthUser: e.auth}); err != nil {
		t.Fatal(err)
	}
	st, err := Status(ctx, e.conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if !s.Protected || s.Policies != 1 {
			t.Errorf("%s.%s: %+v, want protected with 1 policy", s.Schema, s.Table, s)
		}
	}
	c := e.tenant(t, map[string]string{"app.current_tenant_id": "acme"})
	if got := queryStrings(t, c, "SELECT v FROM parted"); strings.Join(got, ",") != "a" {
		t.Errorf("through parent tenant sees %v, want [a]", got)
	}
	_, err = c.Exec(ctx, "SELECT * FROM parted_g")
	wantSQLState(t, err, "42501", "direct read of another tenant's partition")
	if err := Unprotect(ctx, e.conn, "parted"); err != nil {
		t.Fatal(err)
	}
	st, _ = Status(ctx, e.conn)
	for _, s := range st {
		if s.RLSEnabled || s.Policies != 0 {
			t.Errorf("after unprotect %s.%s: %+v", s.Schema, s.Table, s)
		}
	}
}

func TestScramMatches(t *testing.T) {
	t.Parallel()
	v, err := ScramVerifier("s3cret pass")
	if err != nil {
		t.Fatal(err)
	}
	if !scramMatches(v, "s3cret pass") {
		t.Error("verifier does not match its own password")
	}
	for _, bad := range []string{"s3cret pasS", "", "s3cret pass "} {
		if scramMatches(v, bad) {
			t.Errorf("verifier matches %q", bad)
		}
	}
	for _, garbage := range []string{"", "md5abc", "SCRAM-SHA-256$", "SCRAM-SHA-256$x:y$z:w", "SCRAM-SHA-256$99999999999:AAAA$AAAA:AAAA"} {
		if scramMatches(garbage, "s3cret pass") {
			t.Errorf("garbage verifier %q matches", garbage)
		}
	}
}

// TestInitKeepsUnchangedAuthPassword: re-running Init with the same password
// must not draw a new salt; a new password must take effect.
func TestInitKeepsUnchangedAuthPassword(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	ctx := testCtx(t)
	verifier := func() string {
		var v string
		if err := e.conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", e.auth).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := verifier()
	opts := Options{TenantRoles: []string{e.role}, AuthUser: e.auth, AuthPassword: authPassword}
	if err := Init(ctx, e.conn, opts); err != nil {
		t.Fatal(err)
	}
	if after := verifier(); after != before {
		t.Error("Init with the same password changed the verifier")
	}
	opts.AuthPassword = "a new one"
	if err := Init(ctx, e.conn, opts); err != nil {
		t.Fatal(err)
	}
	if verifier() == before {
		t.Fatal("new password not applied")
	}
	e.connectAs(t, e.auth, "a new one", nil)
	// Non-ASCII passwords go through the server's SASLprep path.
	opts.AuthPassword = "pässwörd ☃"
	if err := Init(ctx, e.conn, opts); err != nil {
		t.Fatal(err)
	}
	e.connectAs(t, e.auth, "pässwörd ☃", nil)
}

// TestInitReplacesLegacyOverloads: a two-argument multigres_protect left by
// an earlier install must not make the guide's call ambiguous.
func TestInitReplacesLegacyOverloads(t *testing.T) {
	t.Parallel()
	e := setup(t, false)
	e.exec(t, `CREATE OR REPLACE FUNCTION public.multigres_protect(tbl text, col text) RETURNS void
		LANGUAGE sql AS 'SELECT NULL'`)
	if err := Init(testCtx(t), e.conn, Options{TenantRoles: []string{e.role}, AuthUser: e.auth}); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `CREATE TABLE contacts (id serial, tenant_id varchar(255) NOT NULL);
		SELECT multigres_protect('contacts', 'tenant_id');`)
	st, err := Status(testCtx(t), e.conn)
	if err != nil || len(st) != 1 || !st[0].Protected {
		t.Fatalf("status %+v err %v, want contacts protected", st, err)
	}
}
