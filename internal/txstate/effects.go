package txstate

import (
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// noteEffects records, at a ReadyForQuery, what the query or batch it ends
// did to the session.
func (m *Machine) noteEffects(head entry, status byte) {
	txc := m.batchTx || head.kind == wire.Query && head.fx != nil && head.fx.TxControl
	m.batchTx = false
	if txc && len(m.batchFx) > 0 {
		// A ROLLBACK (or COMMIT, or a statement multigres cannot see
		// into) ran in the same batch as SETs: they may have been undone
		// or committed. The connection's settings are unknown; the
		// client's stay as they were.
		m.sv.Settings = Unknown()
		m.batchFx = nil
	}
	if head.kind == wire.Query && head.fx != nil && !head.failed {
		m.commitEffects(head.fx, status)
	}
	if head.kind == wire.Query && m.unconfirmed {
		// The query that carried a short switch ended: committed with it,
		// or rolled back with it (the context is then the previous one).
		m.unconfirmed = false
		if head.failed {
			m.sv.forgetState()
		}
	}
	// An unnamed-statement SET counts once its implicit transaction ends
	// well: at the next Sync, or at a simple Query that commits it.
	if !head.failed {
		for _, fx := range m.batchFx {
			m.commitEffects(fx, status)
		}
	}
	m.batchFx = nil
}

// commitEffects records what a successful statement did to the session.
// A SET that ran inside a transaction block that is still open may yet
// roll back, so the connection's settings become unknown.
func (m *Machine) commitEffects(fx *sqlguard.Effects, status byte) {
	if len(fx.Settings) == 0 {
		return
	}
	sv := m.sv
	if status != wire.TxIdle {
		sv.Settings = Unknown()
		return
	}
	m.settings = WithSettings(m.settings, fx.Settings)
	if _, ok := m.settings["datestyle"]; ok && sv.Param != nil {
		// A partial DateStyle ("SQL") keeps the other half in effect:
		// keep the whole value the server reported, which means the same
		// wherever it is applied.
		if v, ok := sv.Param("DateStyle"); ok {
			m.settings["datestyle"] = v
		}
	}
	m.salt = stmtSalt(m.cfg.Key, m.settings)
	if IsUnknown(sv.Settings) {
		// Something earlier in this attachment left the server's settings
		// unknown (a SET in a block that a later COMMIT kept, a failed
		// batch): this SET tells nothing of the others, so the server
		// stays unknown and the next switch resets them all.
		return
	}
	// The server ran the client's SETs on top of the client's settings
	// (the switch made them equal), so both now hold the same new set.
	sv.Settings = m.settings
}
