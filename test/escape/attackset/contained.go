package attackset

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// AssertContained checks, on a connection a tenant just attacked from,
// that the tenant is still itself: role, session user and context
// unchanged, only its own rows visible in each of tables (each with a
// tenant_id column), and no write to the victim globex's contacts.
func AssertContained(t testing.TB, ctx context.Context, conn *pgx.Conn, tenant string, mode pgx.QueryExecMode, tables ...string) {
	t.Helper()
	_, _ = conn.Exec(ctx, "ROLLBACK", pgx.QueryExecModeSimpleProtocol) // leave any aborted transaction
	// row_security = off makes RLS-filtered queries fail (never bypass them)
	// for a role without BYPASSRLS; undo it so the checks can run.
	_, _ = conn.Exec(ctx, "RESET row_security", pgx.QueryExecModeSimpleProtocol)
	var user, sessUser, setting string
	if err := conn.QueryRow(ctx, "SELECT current_user, session_user, current_setting('app.current_tenant_id')", mode).
		Scan(&user, &sessUser, &setting); err != nil {
		t.Fatalf("connection unusable after attack: %v", err)
	}
	if user != "app_user" || sessUser != "app_user" || setting != tenant {
		t.Fatalf("ESCAPE: current_user=%q session_user=%q tenant=%q, want app_user/app_user/%q", user, sessUser, setting, tenant)
	}
	for _, table := range tables {
		sql := "SELECT DISTINCT tenant_id FROM " + table
		rows, err := conn.Query(ctx, sql, mode)
		if err != nil {
			t.Fatalf("%s after attack: %v", sql, err)
		}
		seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s after attack: %v", sql, err)
		}
		for _, s := range seen {
			if s != tenant {
				t.Fatalf("ESCAPE: tenant %s sees rows of %q (%s)", tenant, s, sql)
			}
		}
	}
	tag, err := conn.Exec(ctx, "UPDATE contacts SET name = name WHERE tenant_id = 'globex'", mode)
	if err == nil && tag.RowsAffected() != 0 {
		t.Fatalf("ESCAPE: tenant %s updated %d globex rows", tenant, tag.RowsAffected())
	}
}
