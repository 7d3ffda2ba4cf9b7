package escape

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestGuardRefusesAndConnectionStaysUsable(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	p := proxytest.StartProxy(t, pg, nil)
	ctx := testCtx(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		conn, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "SELECT set_config('app.current_tenant_id', 'globex', false)", mode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || pe.Message != "set_config of app.current_tenant_id is not allowed on tenant connections" {
			t.Fatalf("mode %v: %v", mode, err)
		}
		if pe.Where != "" || pe.Hint == "" {
			t.Fatalf("mode %v: refusal carries CONTEXT %q / hint %q", mode, pe.Where, pe.Hint)
		}
		var tenant string
		if err := conn.QueryRow(ctx, "SELECT current_setting('app.current_tenant_id')", mode).Scan(&tenant); err != nil || tenant != "acme" {
			t.Fatalf("mode %v: after refusal tenant=%q err=%v", mode, tenant, err)
		}
		// Inside a transaction the refusal aborts it, as a server error would.
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL app.current_tenant_id = 'globex'", mode); err == nil {
			t.Fatal("SET LOCAL accepted")
		}
		_, err = tx.Exec(ctx, "SELECT 1", mode)
		if !errors.As(err, &pe) || pe.Code != "25P02" {
			t.Fatalf("mode %v: transaction not aborted: %v", mode, err)
		}
		_ = tx.Rollback(ctx)
	}
}
