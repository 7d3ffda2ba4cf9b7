package e2e

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
)

// txMode is transaction pooling with a pool of size n.
func txMode(n int) func(*config.Config) {
	return func(c *config.Config) {
		c.PoolMode = "transaction"
		c.DefaultPoolSize = n
	}
}

// TestTxBasic: tenants share one server connection, each sees only its own
// rows, in every query mode.
func TestTxBasic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	acme := e.connect(t, "app_user.acme")
	globex := e.connect(t, "app_user.globex")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeCacheStatement} {
		for i := 0; i < 3; i++ {
			if got := namesMode(t, acme, mode); !eq(got, []string{"Alice", "Bob"}) {
				t.Fatalf("acme (%v) sees %v", mode, got)
			}
			if got := namesMode(t, globex, mode); !eq(got, []string{"Gina"}) {
				t.Fatalf("globex (%v) sees %v", mode, got)
			}
		}
	}
}

func namesMode(t *testing.T, conn *pgx.Conn, mode pgx.QueryExecMode) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT name FROM contacts WHERE id > $1 ORDER BY name", mode, 0)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query (%v): %v", mode, err)
	}
	return out
}
