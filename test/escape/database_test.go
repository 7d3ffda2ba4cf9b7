package escape

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestUnhardenedDatabasesRefused: with auth_dbname pointing at a set-up
// database, authentication works for any database name, so the injection's
// own check must refuse databases where multigres init never ran (template1
// grants no TEMPORARY to PUBLIC, yet exposes pg_stat_activity).
func TestUnhardenedDatabasesRefused(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	p := proxytest.StartProxy(t, pgtest.Shared(), func(c *config.Config) { c.AuthDatabase = w.db })
	ctx := testCtx(t)
	for _, db := range []string{"template1", "postgres"} {
		conn, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db))
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("ESCAPE: tenant connected to unhardened database %s", db)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" {
			t.Fatalf("%s: %v", db, err)
		}
	}
	conn, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, w.db))
	if err != nil {
		t.Fatalf("hardened database refused: %v", err)
	}
	conn.Close(ctx)
}
