package e2e

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestTenantSeesOnlyItsRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		acme := e.connect(t, "app_user.acme")
		ctx := testCtx(t)
		rows, _ := acme.Query(ctx, "SELECT name FROM contacts ORDER BY name", mode)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || !eq(got, []string{"Alice", "Bob"}) {
			t.Fatalf("mode %v: acme sees %v, %v", mode, got, err)
		}
		var user, tenant string
		if err := acme.QueryRow(ctx, "SELECT current_user, current_tenant_id()", mode).Scan(&user, &tenant); err != nil {
			t.Fatal(err)
		}
		if user != "app_user" || tenant != "acme" {
			t.Fatalf("current_user=%q tenant=%q", user, tenant)
		}
		// The client sees the session as the tenant role really is.
		if su := acme.PgConn().ParameterStatus("is_superuser"); su != "off" {
			t.Fatalf("is_superuser = %q", su)
		}
		tag, err := acme.Exec(ctx, "UPDATE contacts SET name = 'pwned' WHERE tenant_id = 'globex'", mode)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("update other tenant: %v rows, %v", tag.RowsAffected(), err)
		}
		tag, err = acme.Exec(ctx, "DELETE FROM contacts WHERE name = 'Gina'", mode)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("delete other tenant: %v rows, %v", tag.RowsAffected(), err)
		}
		_, err = acme.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Mallory')", mode)
		wantPgError(t, err, "42501", `new row violates row-level security policy for table "contacts"`)
	}
	// The bypass user, through the proxy, sees every tenant, unchanged.
	admin, err := e.tryConnect(t, "postgres", pgtest.SuperPassword)
	if err != nil {
		t.Fatal(err)
	}
	all := names(t, admin, "SELECT name FROM contacts ORDER BY name")
	if !eq(all, []string{"Alice", "Bob", "Gina"}) {
		t.Fatalf("bypass sees %v", all)
	}
}

// TestTenantCannotReachOtherTenantsRowsByID aims at globex's row by its
// primary key, the way an application bug or a forged request would, over
// both protocols, and checks with the superuser that nothing changed.
func TestTenantCannotReachOtherTenantsRowsByID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := testCtx(t)
	super := e.super(t)
	var ginaID int
	if err := super.QueryRow(ctx, "SELECT id FROM contacts WHERE name = 'Gina'").Scan(&ginaID); err != nil {
		t.Fatal(err)
	}
	acme := e.connect(t, "app_user.acme")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeDescribeExec} {
		var n int
		if err := acme.QueryRow(ctx, "SELECT count(*) FROM contacts WHERE id = $1", mode, ginaID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("mode %v: select by id: %d rows, %v", mode, n, err)
		}
		tag, err := acme.Exec(ctx, "UPDATE contacts SET email = 'x@evil.test' WHERE id = $1", mode, ginaID)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("mode %v: update by id: %d rows, %v", mode, tag.RowsAffected(), err)
		}
		tag, err = acme.Exec(ctx, "DELETE FROM contacts WHERE id = $1", mode, ginaID)
		if err != nil || tag.RowsAffected() != 0 {
			t.Fatalf("mode %v: delete by id: %d rows, %v", mode, tag.RowsAffected(), err)
		}
		// Moving an own row to another tenant is denied by WITH CHECK.
		_, err = acme.Exec(ctx, "UPDATE contacts SET tenant_id = $1 WHERE name = 'Alice'", mode, "globex")
		wantPgError(t, err, "42501", `new row violates row-level security policy for table "contacts"`)
		_, err = acme.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, 'Mallory')", mode, "globex")
		wantPgError(t, err, "42501", `new row violates row-level security policy for table "contacts"`)
		// Own rows stay fully writable.
		tag, err = acme.Exec(ctx, "UPDATE contacts SET email = $1 WHERE name = 'Bob'", mode, "bob@new.test")
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("mode %v: update own row: %d rows, %v", mode, tag.RowsAffected(), err)
		}
	}
	globex := e.connect(t, "app_user.globex")
	if got := names(t, globex, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
	var email, tenant string
	if err := super.QueryRow(ctx, "SELECT email, tenant_id FROM contacts WHERE id = $1", ginaID).Scan(&email, &tenant); err != nil {
		t.Fatal(err)
	}
	if email != "gina@globex.test" || tenant != "globex" {
		t.Fatalf("globex row changed: %q %q", email, tenant)
	}
	if got := names(t, super, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob", "Gina"}) {
		t.Fatalf("rows after attack: %v", got)
	}
}

// TestTransactionKeepsTenant: the guide's Transactions section; every
// statement of a transaction runs in the connection's tenant context.
func TestTransactionKeepsTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := testCtx(t)
	acme := e.connect(t, "app_user.acme")
	tx, err := acme.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Carol')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 3 {
		t.Fatalf("in transaction: %d rows, %v", n, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(t, e.super(t), "SELECT name FROM contacts WHERE tenant_id = 'acme' ORDER BY name"); !eq(got, []string{"Alice", "Bob", "Carol"}) {
		t.Fatalf("acme rows: %v", got)
	}
}
