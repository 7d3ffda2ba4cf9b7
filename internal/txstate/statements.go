package txstate

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// statements are a client's prepared statements and the plan that makes
// them exist on whichever server the client lands on: each named
// statement has a server name salted by the client's context and settings
// (serverName), is prepared on demand (closing what the server's LRU
// evicts and any orphans first), and is answered by multigres where the
// server already has it. The unnamed statement is re-parsed where another
// client's replaced it (Server.UnnamedOwner).
type statements struct {
	m       *Machine
	byName  map[string]*stmt
	unnamed *stmt // the client's last unnamed Parse
	// portalFx are the effects of the statement bound to the unnamed
	// portal; portalKnown: the unnamed portal holds the client's unnamed
	// statement, whose effects portalFx are (a named statement's are not
	// tracked).
	portalFx    *sqlguard.Effects
	portalKnown bool
}

func (s *statements) parse(frame []byte, fx *sqlguard.Effects) error {
	m := s.m
	name, rest, ok := wire.CString(frame[5:])
	if !ok {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Parse message")
	}
	if bytes.HasPrefix(rest, []byte(RefusalPrefix)) {
		// A refusal: parse it unnamed so nothing is registered. An
		// unnamed Parse drops the unnamed statement before it fails, so
		// the client's is gone too.
		m.sv.UnnamedOwner = 0
		if name == "" {
			s.unnamed = nil
		}
		m.q.push(entry{kind: wire.Parse})
		m.send(wire.Build(byte(wire.Parse), []byte{0}, rest))
		return nil
	}
	if m.cz != nil && (name == "" || m.cfg.Pinned) {
		m.cz.parsed(name, fx)
	}
	if name == "" {
		m.st.unnamed = &stmt{parse: slices.Clone(frame), id: m.cfg.NewUnnamedID(), fx: fx}
		m.sv.UnnamedOwner = m.st.unnamed.id
		m.q.push(entry{kind: wire.Parse, unnamed: true})
		m.send(frame)
		return nil
	}
	if m.cfg.Pinned {
		// The client's own connection: its names are the server's.
		m.q.push(entry{kind: wire.Parse})
		m.send(frame)
		return nil
	}
	if _, dup := m.st.byName[name]; dup {
		s.refuse(wire.Parse, &wire.Error{Severity: wire.SeverityError, Code: wire.CodeDuplicatePreparedStatement,
			Message: fmt.Sprintf("prepared statement %q already exists", name)})
		return nil
	}
	if m.cz != nil {
		m.cz.parsed(name, fx) // a new statement: a duplicate is refused above
	}
	srv := serverName(m.salt, rest)
	st := &stmt{srv: srv, parse: wire.Build(byte(wire.Parse), []byte(srv), []byte{0}, rest)}
	if m.st.byName == nil {
		m.st.byName = map[string]*stmt{}
	}
	m.st.byName[name] = st
	// In an aborted transaction block the server refuses a Parse (25P02),
	// so multigres must not answer for it: only while the status is known
	// (no client Query or Sync still owed, whose answer could leave the
	// block aborted) and not failed.
	if m.status != wire.TxFailed && !m.q.statusPending() && m.sv.Prepared.Has(srv) {
		m.owe(entry{kind: wire.Parse, action: synth, synthBytes: parseComplete, stmt: name, srv: srv, named: true})
		return nil
	}
	s.prepareOnServer(st, entry{kind: wire.Parse, stmt: name, srv: srv, named: true})
	return nil
}

// prepareOnServer sends st's Parse, closing the statement the LRU evicts.
func (s *statements) prepareOnServer(st *stmt, e entry) {
	m := s.m
	sv := m.sv
	known := sv.Prepared.Has(st.srv) // prepared again: see the Close below
	if ev := sv.Prepared.Add(st.srv); ev != "" {
		s.closeOnServer(ev)
	}
	for _, name := range slices.Sorted(maps.Keys(sv.Orphans)) {
		if name != st.srv {
			s.closeOnServer(name)
		}
	}
	// Close first: a statement of this name may be on the server although
	// multigres forgot it (an orphan); the server name is the SQL's hash,
	// so it is the same statement, but Parse would fail with 42P05.
	// Closing a missing statement is no error.
	orphan := sv.Orphans[st.srv]
	delete(sv.Orphans, st.srv)
	m.send(closeStatement(st.srv))
	closing := entry{kind: wire.Close, action: swallow}
	if orphan || known {
		// Skipped (an earlier error in the batch), the statement stays on
		// the server: an orphan, closed by the next prepare.
		closing.srv = st.srv
	}
	m.q.push(closing, e)
	m.send(st.parse)
}

// closeOnServer queues the Close of a server statement multigres no longer
// keeps; if an error makes the server skip it, skipToSync records the
// statement as an orphan.
func (s *statements) closeOnServer(name string) {
	m := s.m
	delete(m.sv.Orphans, name)
	m.send(closeStatement(name))
	m.q.push(entry{kind: wire.Close, action: swallow, srv: name})
}

// prepareInternal prepares one of multigres' own statements
// (Server.Internal) where the server lacks it: the answer is swallowed,
// an error is fatal, and a Parse skipped after an error earlier in the
// batch leaves it unprepared (skipToSync).
func (s *statements) prepareInternal(name, sql string) {
	m := s.m
	if !m.sv.Internal[name] {
		m.sv.Internal[name] = true
		m.send(wire.Build(byte(wire.Parse), []byte(name), []byte{0}, []byte(sql), []byte{0}, []byte{0, 0}))
		m.q.push(entry{kind: wire.Parse, action: swallow, injected: true, internal: name})
	}
}

func closeStatement(name string) []byte {
	return wire.Build(byte(wire.Close), []byte{wire.TargetStatement}, []byte(name), []byte{0})
}

// ensurePrepared makes a statement the client refers to exist on the
// attached server, injecting its Parse (answer swallowed) if needed. It
// returns the server name, or ok=false when the client has no such
// statement.
func (s *statements) ensurePrepared(name string) (string, bool) {
	m := s.m
	if name != "" && m.cfg.Pinned {
		return name, true // the client's own connection: the server knows
	}
	if name == "" {
		if m.st.unnamed == nil {
			return "", false
		}
		if m.sv.UnnamedOwner != m.st.unnamed.id {
			m.sv.UnnamedOwner = m.st.unnamed.id
			m.q.push(entry{kind: wire.Parse, action: swallow, unnamed: true})
			m.send(m.st.unnamed.parse)
		}
		return "", true
	}
	st := m.st.byName[name]
	if st == nil {
		return "", false
	}
	if !m.sv.Prepared.Has(st.srv) {
		s.prepareOnServer(st, entry{kind: wire.Parse, action: swallow, srv: st.srv})
	}
	return st.srv, true
}

func (s *statements) bind(frame []byte) error {
	m := s.m
	portal, rest, ok := wire.CString(frame[5:])
	name, tail, ok2 := wire.CString(rest)
	if !ok || !ok2 {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Bind message")
	}
	srv, found := s.ensurePrepared(name)
	if !found {
		s.refuse(wire.Bind, noSuchStatement(name))
		return nil
	}
	if name == "" && portal != "" && m.st.unnamed.fx != nil {
		// Effects are tracked on the unnamed portal only.
		s.refuse(wire.Bind, Refusal("a session-level SET must be executed through the unnamed portal in transaction pooling"))
		return nil
	}
	if m.cz != nil {
		m.cz.bound(portal, name)
	}
	m.q.push(entry{kind: wire.Bind})
	if portal == "" {
		m.st.portalFx, m.st.portalKnown = nil, name == ""
		if name == "" {
			m.st.portalFx = m.st.unnamed.fx
		}
	}
	if srv == name {
		m.send(frame)
		return nil
	}
	m.send(wire.Build(byte(wire.Bind), []byte(portal), []byte{0}, []byte(srv), []byte{0}, tail))
	return nil
}

func (s *statements) describe(frame []byte) error {
	m := s.m
	body := frame[5:]
	if len(body) < 2 {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Describe message")
	}
	if body[0] != wire.TargetStatement {
		m.q.push(entry{kind: wire.Describe})
		m.send(frame)
		return nil
	}
	name, _, ok := wire.CString(body[1:])
	if !ok {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Describe message")
	}
	srv, found := s.ensurePrepared(name)
	if !found {
		s.refuse(wire.Describe, noSuchStatement(name))
		return nil
	}
	m.q.push(entry{kind: wire.Describe})
	m.send(wire.Build(byte(wire.Describe), []byte{wire.TargetStatement}, []byte(srv), []byte{0}))
	return nil
}

func (s *statements) close(frame []byte) error {
	m := s.m
	kind, name, ok := closeTarget(frame)
	if !ok {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Close message")
	}
	if kind == wire.TargetStatement && name != "" && !m.cfg.Pinned {
		// The server statement may serve other clients: keep it.
		delete(m.st.byName, name)
		m.owe(entry{kind: wire.Close, action: synth, synthBytes: closeComplete})
		return nil
	}
	if kind == wire.TargetStatement {
		m.st.unnamed = nil
		m.sv.UnnamedOwner = 0
	}
	m.q.push(entry{kind: wire.Close})
	m.send(frame)
	return nil
}

// refuse makes the server fail in the client's message's place, so the
// transaction and skip-to-Sync semantics stay PostgreSQL's.
func (s *statements) refuse(kind wire.ClientType, we *wire.Error) {
	m := s.m
	m.sv.UnnamedOwner = 0
	m.q.push(entry{kind: kind})
	m.send(m.cfg.Refuse(wire.Parse, wire.Build(byte(wire.Parse), []byte{0}, []byte("x"), []byte{0}, []byte{0, 0}), we))
}

func noSuchStatement(name string) *wire.Error {
	msg := fmt.Sprintf("prepared statement %q does not exist", name)
	if name == "" {
		msg = "unnamed prepared statement does not exist"
	}
	return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeInvalidSQLStatementName, Message: msg}
}

func closeTarget(frame []byte) (byte, string, bool) {
	body := frame[5:]
	if len(body) < 2 || (body[0] != wire.TargetStatement && body[0] != wire.TargetPortal) {
		return 0, "", false
	}
	name, _, ok := wire.CString(body[1:])
	return body[0], name, ok
}
