package authpg_test

import (
	"database/sql"
	"errors"
	"sync"
	"testing"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestMigrations(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	ctx := testCtx(t)
	db := pg.CreateDB(t)
	sqldb, err := sql.Open("pgx", pg.SuperURL(db))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()

	// Up from empty, two migrators at once (the session lock serialises
	// them; each module is applied exactly once).
	var wg sync.WaitGroup
	results := make([][]authpg.MigrationResult, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = authpg.Migrate(ctx, sqldb)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent migrate: %v / %v", errs[0], errs[1])
	}
	// Auth has two migrations, every other module one.
	if n := len(results[0]) + len(results[1]); n != len(authpg.AllModules)+1 {
		t.Fatalf("%d migrations applied in total, want %d: %v %v", n, len(authpg.AllModules)+1, results[0], results[1])
	}
	// Re-run: idempotent, nothing applied.
	again, err := authpg.Migrate(ctx, sqldb)
	if err != nil || len(again) != 0 {
		t.Fatalf("re-run = %v, %v", again, err)
	}
	st, err := authpg.Status(ctx, sqldb)
	if err != nil || len(st) != 5 {
		t.Fatalf("Status = %v, %v", st, err)
	}
	for _, m := range st {
		if m.Current == 0 || m.Current != m.Latest || !m.Migrations[0].Applied {
			t.Errorf("module %s: %+v", m.Module, m)
		}
	}

	check := func(name, q string) {
		t.Helper()
		rows, err := sqldb.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer rows.Close()
		for rows.Next() {
			var bad string
			_ = rows.Scan(&bad)
			t.Errorf("%s: %s", name, bad)
		}
	}
	const ours = `c.relkind = 'r' AND n.nspname IN ('auth', 'public') AND c.relname NOT LIKE 'authpg\_%'`
	var tables int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE `+ours).Scan(&tables); err != nil || tables != 21 {
		t.Fatalf("%d tables, want 21 (7 auth, 5 content, 5 booking + schedule_claims, 2 giftcert, 1 intake): %v", tables, err)
	}
	check("tenant_id uuid NOT NULL on every table", `
		SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+ours+` AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
			AND a.attname = 'tenant_id' AND a.atttypid = 'uuid'::regtype AND a.attnotnull)`)
	check("RLS enabled and forced", `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+ours+` AND NOT (c.relrowsecurity AND c.relforcerowsecurity)`)
	check("multigres_tenant_isolation policy, for all, to public, USING = WITH CHECK", `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+ours+` AND NOT EXISTS (SELECT 1 FROM pg_policies p WHERE p.schemaname = n.nspname
			AND p.tablename = c.relname AND p.policyname = 'multigres_tenant_isolation' AND p.permissive = 'PERMISSIVE'
			AND p.cmd = 'ALL' AND p.roles = '{public}' AND p.qual = p.with_check
			AND p.qual LIKE '%tenant_id = ( SELECT (NULLIF(current_setting(''app.current_tenant_id''::text, true), ''''::text))::uuid%')`)
	check("no other policies", `SELECT tablename || '.' || policyname FROM pg_policies
		WHERE schemaname IN ('auth', 'public') AND policyname <> 'multigres_tenant_isolation'`)
	check("every foreign key includes tenant_id", `
		SELECT conrelid::regclass || ' ' || conname FROM pg_constraint c
		JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname IN ('auth', 'public') AND contype = 'f' AND NOT (
			(SELECT attnum FROM pg_attribute WHERE attrelid = conrelid AND attname = 'tenant_id') = ANY (conkey)
			AND (SELECT attnum FROM pg_attribute WHERE attrelid = confrelid AND attname = 'tenant_id') = ANY (confkey))`)
	check("every unique index is per tenant", `
		SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE `+ours+` AND i.indisunique AND NOT
			(SELECT attnum FROM pg_attribute WHERE attrelid = c.oid AND attname = 'tenant_id') = ANY (i.indkey::int2[])`)
	check("timestamptz everywhere", `
		SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema IN ('auth', 'public') AND table_name NOT LIKE 'authpg\_%' AND data_type = 'timestamp without time zone'`)
	check("role is a checked set", `
		SELECT 'missing role check on ' || t FROM unnest(ARRAY['auth.users', 'auth.invitations']) t
		WHERE NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = t::regclass AND contype = 'c'
			AND pg_get_constraintdef(oid) LIKE '%viewer%editor%business_owner%developer%')`)
}

func TestMigrateModulesIndependently(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	ctx := testCtx(t)
	url := pg.SuperURL(pg.CreateDB(t))
	res, err := authpg.MigrateURL(ctx, url, authpg.ModuleAuth)
	if err != nil || len(res) != 2 || res[0].Module != authpg.ModuleAuth || res[1].Module != authpg.ModuleAuth {
		t.Fatalf("auth only = %v, %v", res, err)
	}
	st, err := authpg.StatusURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st {
		if applied := m.Current > 0; applied != (m.Module == authpg.ModuleAuth) {
			t.Errorf("after auth only: %s current=%d", m.Module, m.Current)
		}
	}
	// Booking pulls in content, its dependency, and nothing else.
	res, err = authpg.MigrateURL(ctx, url, authpg.ModuleBooking)
	if err != nil || len(res) != 2 || res[0].Module != authpg.ModuleContent || res[1].Module != authpg.ModuleBooking {
		t.Fatalf("booking = %v, %v", res, err)
	}
	// The composite brings the rest of the business modules.
	res, err = authpg.MigrateURL(ctx, url, authpg.ModuleBusiness)
	if err != nil || len(res) != 2 || res[0].Module != authpg.ModuleGiftCert || res[1].Module != authpg.ModuleIntake {
		t.Fatalf("business = %v, %v", res, err)
	}
	if _, err := authpg.MigrateURL(ctx, url, "billing"); !errors.Is(err, authpg.ErrInvalidInput) {
		t.Fatalf("unknown module: %v", err)
	}
	if _, err := authpg.MigrateURL(ctx, ""); err == nil {
		t.Fatal("empty URL accepted")
	}
	if _, err := authpg.Migrate(ctx, nil); err == nil {
		t.Fatal("nil db accepted")
	}
}

// TestMigrateGrantsAppUser: when the multigres tenant role app_user exists
// at migration time, the migrations grant it DML on every table, so the
// database works through multigres without further steps.
func TestMigrateGrantsAppUser(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	ctx := testCtx(t)
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db) // creates app_user (cluster-wide)
	if _, err := authpg.MigrateURL(ctx, pg.SuperURL(db)); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t, db)
	rows, err := conn.Query(ctx, `
		SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname IN ('auth', 'public') AND c.relname NOT LIKE 'authpg\_%'
		  AND NOT (has_table_privilege('app_user', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
		           AND has_schema_privilege('app_user', n.oid, 'USAGE'))`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		t.Errorf("app_user lacks DML on %s", name)
	}
}
