package txstate

import "github.com/multigres-proxy/multigres/internal/wire"

// Plan is what becomes of a departed client's server connection.
type Plan int

const (
	// PlanNone: the client held no server connection.
	PlanNone Plan = iota
	// PlanClose: close the connection (nothing owed, but the server may
	// be skipping to a Sync, or hold what the client never synced).
	PlanClose
	// PlanRollback: ToServer holds a ROLLBACK; read its answer (swallowed),
	// after which the connection goes back to the pool if idle.
	PlanRollback
	// PlanCancelClose: a statement is in flight: cancel it and close the
	// connection.
	PlanCancelClose
)

// Abandon is called once the client is gone: from now on nothing goes to
// the client. unsynced reports that the client left extended-protocol
// messages without their Sync (or overstayed a hold bound): after an
// error the server skips a ROLLBACK until a Sync, and a Sync would commit
// what the client never synced, so the connection is closed, which aborts
// it.
func (m *Machine) Abandon(unsynced bool) Plan {
	m.gone = true
	switch {
	case !m.attached:
		return PlanNone
	case m.q.len() == 0 && unsynced:
		m.attached = false
		return PlanClose
	case m.q.len() == 0:
		m.sv.UnnamedOwner = 0
		m.q.push(entry{kind: wire.Query, action: swallow})
		m.send(rollbackQuery)
		return PlanRollback
	}
	// Detached: answers already read are still matched (the model stays),
	// but the connection is never pooled again (ready's Reusable).
	m.attached = false
	return PlanCancelClose
}

// Lost: the attached server connection failed or was found unsafe, and is
// closed; the client ends too.
func (m *Machine) Lost() { m.detach() }
