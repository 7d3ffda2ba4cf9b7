package txstate

import (
	"maps"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Step is what the driver does after ClientMessage.
type Step int

const (
	// Done: write ToServer to the attached server and ToClient to the
	// client.
	Done Step = iota
	// NeedServer: the client has no server connection and its message
	// needs one: borrow one, then call Attach (or AttachFailed).
	NeedServer
)

// ErrCopyPipelined ends a client that sent something other than COPY
// data, its end, Flush or Sync while the server reads COPY data.
var ErrCopyPipelined = wire.Fatal(wire.CodeProtocolViolation, "only COPY data, CopyDone, CopyFail, Flush and Sync may be sent during COPY FROM STDIN")

// ClientMessage handles one client message (after the guard; fx are the
// statement's session effects for a Query or Parse). Terminate is the
// driver's.
func (m *Machine) ClientMessage(typ wire.ClientType, frame []byte, fx *sqlguard.Effects) (Step, error) {
	if m.skip {
		if typ == wire.Sync {
			m.skip = false
			m.answerLocally(m.readyFrame())
		}
		return Done, nil
	}
	if m.attached && m.serverSkipping {
		// The server ignores everything until a Sync after an
		// extended-protocol error: so does the relay, owing nothing.
		if typ != wire.Sync {
			return Done, nil
		}
		m.serverSkipping = false
	}
	if !m.attached {
		if m.withoutServer(typ, frame) {
			return Done, nil
		}
		return NeedServer, nil
	}
	if m.unconfirmed && startsCommand(typ) {
		// The short switch in front of this attachment's first query is
		// not known to have committed: if that query fails, the server is
		// back on the previous context, whatever it was. Switch again,
		// durably, from an unknown state: every variable, the role and
		// every tracked setting set or reset.
		m.sv.forgetState()
		m.queueSwitch(false)
	}
	return Done, m.forward(typ, frame, fx)
}

// withoutServer answers the messages that need no server connection when
// the client has none: a lone Sync, a Flush, closing a named statement.
func (m *Machine) withoutServer(typ wire.ClientType, frame []byte) bool {
	switch typ {
	case wire.Sync:
		m.answerLocally(m.readyFrame())
		return true
	case wire.Flush, wire.CopyInData, wire.CopyInDone, wire.CopyInFail:
		// PostgreSQL ignores COPY messages outside COPY; borrowing a
		// server connection for them would hold it with nothing owed.
		return true
	case wire.Close:
		if kind, name, ok := closeTarget(frame); ok && kind == wire.TargetStatement && name != "" && !m.cfg.Pinned {
			delete(m.st.byName, name)
			m.answerLocally(closeComplete)
			return true
		}
	}
	return false
}

// Attach gives the client the server connection modelled by sv for the
// message ClientMessage asked it for, and handles that message: the
// context switch goes in front of it when sv's context or settings are
// not the client's.
func (m *Machine) Attach(sv *Server, typ wire.ClientType, frame []byte, fx *sqlguard.Effects) error {
	m.sv, m.attached = sv, true
	m.serverSkipping, m.unconfirmed = false, false
	if m.cz != nil {
		m.cz.attached()
	}
	if sv.Context != m.cfg.Key || !maps.Equal(sv.Settings, m.settings) {
		// A query that SETs gets the full form: under the short form, a
		// command pipelined behind it is re-switched from the client's
		// settings before that SET is known, which would undo it on the
		// server while multigres records it. On Citus the client's query
		// runs in a block of its own after the switch (citus.go), so the
		// switch is always committed on its own.
		short := m.cz == nil && typ == wire.Query && !mayControlTransaction(frame) && sameShaping(sv.Settings, m.settings) &&
			(fx == nil || len(fx.Settings) == 0)
		m.queueSwitch(short)
	}
	return m.forward(typ, frame, fx)
}

// AttachFailed: no server connection could be had for the message, and
// the driver has put the error in ToClient. A Query or Sync gets its
// ReadyForQuery; extended-protocol messages up to the Sync are discarded.
func (m *Machine) AttachFailed(typ wire.ClientType) {
	if typ == wire.Query || typ == wire.Sync {
		m.answerLocally(m.readyFrame())
		return
	}
	m.skip = true
	m.flush = true
}

// startsCommand reports whether a client message can run SQL (or set up
// what runs it); COPY data, Flush and Sync cannot.
func startsCommand(typ wire.ClientType) bool {
	switch typ {
	case wire.Query, wire.Parse, wire.Bind, wire.Execute, wire.Describe, wire.Close, wire.FunctionCall:
		return true
	}
	return false
}

// CheckEffects refuses session settings that could not be tracked
// exactly: in the extended protocol (where a statement may run any number
// of times, or never) and inside a transaction block (which may roll back).
//
// In the extended protocol a SET is tracked when it is an unnamed
// statement (pgJDBC sends its startup SETs so): its effects ride on the
// Execute of the unnamed portal and count once the Sync ends the implicit
// transaction without error.
func (m *Machine) CheckEffects(typ wire.ClientType, frame []byte, fx *sqlguard.Effects) *wire.Error {
	if len(fx.Settings) == 0 && !fx.DeallocateAll {
		return nil
	}
	what := "session-level SET"
	if len(fx.Settings) == 0 {
		what = "DEALLOCATE ALL"
	}
	switch {
	case typ == wire.Parse && (fx.DeallocateAll || !unnamedParse(frame)):
		return Refusal(what + " must be sent as a simple query or an unnamed statement in transaction pooling")
	case len(fx.Settings) > 0 && (m.status != wire.TxIdle || fx.TxControl):
		return Refusal("session-level SET inside a transaction block is not supported in transaction pooling")
	}
	return nil
}

func unnamedParse(frame []byte) bool { return len(frame) > 5 && frame[5] == 0 }

// Refusal is the error of a session change transaction pooling cannot
// track.
func Refusal(msg string) *wire.Error {
	return &wire.Error{Severity: wire.SeverityError, Code: sqlguard.RuleSessionSet.Code(), Message: msg, Rule: string(sqlguard.RuleSessionSet),
		Hint: "Send SET on its own, outside BEGIN ... COMMIT, with the simple query protocol; or use SET LOCAL inside the transaction. See docs/pooling.md."}
}

// forward sends one client message to the attached server, renaming
// prepared statements and preparing them on demand.
func (m *Machine) forward(typ wire.ClientType, frame []byte, fx *sqlguard.Effects) error {
	if m.copy.in && typ != wire.CopyInData && typ != wire.CopyInDone && typ != wire.CopyInFail && typ != wire.Flush && typ != wire.Sync {
		return ErrCopyPipelined
	}
	switch typ {
	case wire.Parse:
		return m.st.parse(frame, fx)
	case wire.Bind:
		return m.st.bind(frame)
	case wire.Describe:
		return m.st.describe(frame)
	case wire.Close:
		return m.st.close(frame)
	case wire.Query:
		// A simple query drops the server's unnamed statement, and with
		// it the client's: a later Bind of "" must fail as PostgreSQL's
		// would, not run the old statement again.
		m.sv.UnnamedOwner = 0
		m.st.unnamed = nil
		if m.cz != nil {
			m.cz.query(frame, fx)
			return nil
		}
		m.q.push(entry{kind: wire.Query, fx: fx})
	case wire.Execute:
		mark, setAfter := czNone, false
		if m.cz != nil {
			portal, _, ok := wire.CString(frame[5:])
			if !ok {
				return wire.Fatal(wire.CodeProtocolViolation, "invalid Execute message")
			}
			var refused bool
			if mark, setAfter, refused = m.cz.execute(portal); refused {
				return nil
			}
		}
		e := entry{kind: wire.Execute, txc: true, cz: mark}
		if len(frame) > 5 && frame[5] == 0 && m.st.portalKnown { // the unnamed portal, the client's unnamed statement
			e.fx = m.st.portalFx
			e.txc = e.fx != nil && e.fx.TxControl || mark != czNone
		}
		m.q.push(e)
		m.send(frame)
		if setAfter {
			m.cz.setLocals() // after the client's BEGIN
		}
		return nil
	case wire.Sync:
		if !m.copy.in { // during COPY IN the server ignores Sync
			mark := czNone
			if m.cz != nil {
				mark = m.cz.sync()
			}
			m.q.push(entry{kind: wire.Sync, cz: mark})
		} else {
			m.copy.syncs++ // see copyFailed
		}
	case wire.CopyInDone, wire.CopyInFail:
		if m.copy.in {
			m.copy.in = false // syncs stays until the COPY's outcome is known
			m.copy.failSent = typ == wire.CopyInFail
		} else {
			// The copy may not have started yet: mark where its data
			// ends (see copyState.enter).
			m.q.push(entry{kind: wire.CopyInDone})
		}
	case wire.Flush, wire.CopyInData:
	default:
		return wire.Fatal(wire.CodeProtocolViolation, "invalid frontend message type %d", typ)
	}
	m.send(frame)
	return nil
}

// RefusalPrefix starts the SQL of every refused statement's replacement
// (a token the server fails to parse; see the frontend's refusals).
const RefusalPrefix = "mg_refused_"
