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
