package frontend

import (
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/txstate"
)

// Settings a previous client leaves on a pooled connection that the next
// client's switch must not run under (txstate.PreSwitchResets) are reset
// in a round trip of their own, before anything of the client's is sent.
// If the reset itself times out (a millisecond statement_timeout) it is
// retried, and past that the connection is closed and another one used.

var errPreReset = errors.New("resetting a previous client's settings before the switch failed")

// resetSettings runs txstate.ResetStatement for names on sc (held by the
// caller, nothing else in flight), tried up to three times, and records
// the result in sc's model sv.
func resetSettings(sc *pool.Conn, sv *txstate.Server, names []string, client map[string]string) error {
	sql, changes := txstate.ResetStatement(names, client)
	for range 3 {
		sv.OwnQueryRan()
		_, err := sc.SimpleQuery(sql, 5*time.Second)
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			continue // the server refused it (a short timeout): try again
		}
		if err != nil {
			return err
		}
		sv.NoteResets(changes)
		return nil
	}
	return errPreReset
}
