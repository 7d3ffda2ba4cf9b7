package escape

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/test/escape/attackset"
)

// attacks is the shared escape attack set (attackset.All).
var attacks = attackset.All()

func TestAttacks(t *testing.T) {
	t.Parallel()
	w := getWorld(t)
	modes := []struct {
		name string
		mode pgx.QueryExecMode
	}{{"simple", pgx.QueryExecModeSimpleProtocol}, {"extended", pgx.QueryExecModeExec}}
	attempts := 0
	for _, pm := range poolModes {
		for _, a := range attacks {
			for _, m := range modes {
				if m.mode == pgx.QueryExecModeSimpleProtocol && a.HasArgs() {
					continue // bind parameters exist only in the extended protocol
				}
				attempts++
				runAttack(t, w, pm, m.name, m.mode, a)
			}
		}
	}
	t.Cleanup(func() {
		w.assertVictimIntact(t)
		// Transaction pooling: whatever the attacks left on the shared
		// server connections, fresh clients are still contained.
		for i := range 8 {
			tenant := w.tenant()
			assertContained(t, w.connectMode(t, "transaction", "app_user."+tenant), tenant, modes[i%2].mode)
		}
		t.Logf("%d attack attempts (%d attacks over the simple and extended protocols, in %d pool modes)", attempts, len(attacks), len(poolModes))
	})
}

func runAttack(t *testing.T, w *world, poolMode, protocol string, mode pgx.QueryExecMode, a attackset.Attack) {
	t.Run(poolMode+"/"+protocol+"/"+a.Name, func(t *testing.T) {
		t.Parallel()
		tenant := w.tenant()
		conn := w.connectMode(t, poolMode, "app_user."+tenant)
		ctx := testCtx(t)
		for _, st := range a.Steps {
			args := append([]any{mode}, st.Args...)
			_, _ = conn.Exec(ctx, st.SQL, args...)
		}
		assertContained(t, conn, tenant, mode)
	})
}
