package txstate

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// ServerStep is what the driver does with a server message.
type ServerStep struct {
	// FrameAt is where the server's frame goes among the bytes ToClient
	// holds (before ToClient[FrameAt:]); -1: the frame is swallowed.
	FrameAt int
	// Flush: flush the client once written (otherwise when the server has
	// nothing more buffered).
	Flush bool
	// Release: the attachment ended; give the connection back to the pool
	// if Reusable, else close it.
	Release, Reusable bool
}

// Errors that end the client; the connection is closed, not pooled.
var (
	// ErrSwitchFailed: the server refused part of the context switch.
	ErrSwitchFailed = errors.New("context switch failed")
	// ErrServerClosing: the server sent an unsolicited error (a FATAL),
	// which the client has been given (FrameAt).
	ErrServerClosing = errors.New("server ended the session")
	// ErrCopyUncertain: a COPY failed with a Sync pending (see copyState.failed).
	ErrCopyUncertain = wire.Fatal(wire.CodeProtocolViolation, "a COPY failed while a Sync sent with it was pending, so multigres cannot tell which answers follow; the connection is closed").
				WithHint("Start COPY FROM STDIN with a simple query, or send Sync only after CopyDone or CopyFail.")
)

// ServerMessage handles one server message other than DataRow and
// CopyData (which the driver forwards by RowsForward). Answers multigres
// gives itself come out exactly in protocol order around the frame.
func (m *Machine) ServerMessage(typ wire.ServerType, frame []byte) (ServerStep, error) {
	step := ServerStep{FrameAt: -1}
	m.emitSynth()
	if m.q.len() == 0 {
		return m.unowned(typ, frame)
	}
	head := m.q.head()
	fwd := head.action == forward && !m.gone
	pop := false
	switch typ {
	case wire.ParameterStatus, wire.NotificationResponse:
		fwd = !m.gone
	case wire.NoticeResponse:
		fwd = !m.gone && !head.injected
	case wire.CopyInResponse:
		if err := m.copy.enter(&m.q); err != nil {
			return step, err
		}
	case wire.ErrorResponse:
		if head.injected {
			return step, fmt.Errorf("%w: %s", ErrSwitchFailed, errorMessage(frame))
		}
		fwd = !m.gone
		var copyErr error
		if m.copy.open {
			copyErr = m.copy.failed(frame)
		}
		m.copy.in, m.copy.open = false, false
		if copyErr != nil { // the copy's own error first
			step.FrameAt, step.Flush = frameAt(m.ToClient, fwd), true
			return step, copyErr
		}
	case wire.ReadyForQuery:
		if head.kind != wire.Sync && head.kind != wire.Query {
			return step, fmt.Errorf("ReadyForQuery where %q was owed", head.kind)
		}
		return m.ready(frame, fwd), nil
	case wire.ParseComplete, wire.BindComplete, wire.CloseComplete:
		// Anything else than the answer owed means the relay's queue and
		// the server disagree, and the connection cannot be trusted.
		if want := completes[typ]; head.kind != want {
			return step, fmt.Errorf("server sent %q where %q was owed", typ, head.kind)
		}
		pop = true
	case wire.RowDescription, wire.NoData:
		pop = head.kind == wire.Describe
	case wire.CommandComplete, wire.EmptyQueryResponse, wire.PortalSuspended:
		pop = m.executeDone(typ, frame, head)
	}
	if head.cz != czNone && typ != wire.ErrorResponse {
		fwd = m.cz.answer(typ, frame, head, fwd)
	}
	step.FrameAt = frameAt(m.ToClient, fwd)
	if typ == wire.ErrorResponse {
		m.failed(head)
		return step, nil
	}
	if pop {
		m.popHead()
	}
	return step, nil
}

// completes maps each completion message to the client message it answers.
var completes = map[wire.ServerType]wire.ClientType{
	wire.ParseComplete: wire.Parse, wire.BindComplete: wire.Bind, wire.CloseComplete: wire.Close}

// frameAt is where a forwarded frame goes among the answers so far.
func frameAt(out []byte, fwd bool) int {
	if !fwd {
		return -1
	}
	return len(out)
}

// executeDone handles the end of a statement's execution and reports
// whether it completes the head entry.
func (m *Machine) executeDone(typ wire.ServerType, frame []byte, head *entry) bool {
	if typ == wire.CommandComplete && m.copy.open {
		// The COPY succeeded: Syncs sent in its window were read and
		// ignored in copy mode.
		m.copy = copyState{}
	}
	if typ == wire.CommandComplete && head.kind == wire.Query && head.fx != nil && head.fx.DeallocateAll &&
		bytes.HasPrefix(frame[5:], []byte("DEALLOCATE ALL\x00")) {
		// Not transactional: the server and the client have no
		// statements left. Until then the model stays, since the server
		// may skip or refuse it.
		m.sv.deallocatedAll()
		clear(m.st.byName)
	}
	if head.kind != wire.Execute {
		return false
	}
	if head.fx != nil && typ == wire.CommandComplete {
		m.batchFx = append(m.batchFx, head.fx)
	}
	m.batchTx = m.batchTx || head.txc
	return true
}

// failed handles an ErrorResponse answering head.
func (m *Machine) failed(head *entry) {
	if len(m.batchFx) > 0 || head.kind == wire.Query && head.fx != nil && len(head.fx.Settings) > 0 {
		// Settings ran before this error in the same batch. Whether they
		// rolled back depends on what else ran in between (a COMMIT, a
		// simple Query, a procedure): multigres cannot know, so the
		// connection's settings are unknown and the next switch resets
		// them all. The client's own settings stay as they were.
		m.sv.Settings = Unknown()
	}
	if head.kind == wire.Query {
		head.failed = true
		return
	}
	m.batchFx = nil
	m.skipToSync()
}

// unowned handles a server message when nothing is owed: notices and
// parameter changes, a FATAL the server sends on its own, or a
// ReadyForQuery for a Sync multigres took for ignored.
func (m *Machine) unowned(typ wire.ServerType, frame []byte) (ServerStep, error) {
	step := ServerStep{FrameAt: -1, Flush: true}
	switch typ {
	case wire.NoticeResponse, wire.NotificationResponse, wire.ParameterStatus:
		step.FrameAt = len(m.ToClient)
		return step, nil
	case wire.ErrorResponse:
		// A FATAL the server sends on its own (idle-in-transaction
		// timeout, terminated by an administrator) is the client's to see;
		// the connection ends with it.
		step.FrameAt = len(m.ToClient)
		return step, ErrServerClosing
	case wire.ReadyForQuery:
		// A Sync sent during COPY that the server answered after all
		// (after an error ended the copy): the client is owed it.
		m.q.push(entry{kind: wire.Sync})
		return m.ready(frame, !m.gone), nil
	}
	return step, fmt.Errorf("unexpected %q from server with nothing owed", typ)
}

// enter: the server is reading COPY data, and until the copy ends it
// ignores Sync and Flush. Syncs the client already pipelined behind the
// COPY (before its CopyDone) will get no ReadyForQuery, so they are owed
// nothing; neither are Syncs it sends before CopyDone.
//
// Whether the server answers such a Sync depends on whether the copy
// fails before the server reads it (copy.syncs counts them; see
// copyFailed). Anything else the client sent between the COPY and its
// CopyDone the server would read as COPY data or fail on: PostgreSQL
// clients never do it, and multigres cannot tell what the server will
// then do, so it ends the client (ErrCopyPipelined) rather than guess.
func (c *copyState) enter(q *queue) error {
	*c = copyState{in: true, open: true}
	rest := q.items[1:]
	kept := q.items[:1]
	for k, e := range rest {
		if e.kind == wire.CopyInDone { // the client's CopyDone/CopyFail: copy data ended there
			c.in = false
			kept = append(kept, rest[k+1:]...)
			break
		}
		if e.kind != wire.Sync {
			return ErrCopyPipelined
		}
		c.syncs++
	}
	q.items = kept
	return nil
}

// failed: the server failed a COPY IN. A Sync the client sent in the
// COPY's window was read and ignored in copy mode if the server read it
// before it failed, and is answered now if not: a COPY can fail before
// reading anything (COPY FREEZE's checks come after CopyInResponse), or
// after the data that followed the Sync. With any such Sync multigres
// cannot know which answers come, so it ends the client and closes the
// connection. Clients that COPY with a simple query send no Sync then.
//
// One failure is certain: the client's own CopyFail (57014), which the
// server reads after everything the client sent before it, in copy mode.
func (c *copyState) failed(errFrame []byte) error {
	n, failSent := c.syncs, c.failSent
	c.syncs, c.failSent = 0, false
	if n == 0 {
		return nil
	}
	var e pgproto3.ErrorResponse
	if failSent && e.Decode(errFrame[5:]) == nil && e.Code == wire.CodeQueryCanceled {
		return nil
	}
	return ErrCopyUncertain
}

// skipToSync mirrors the server after an extended-protocol error: every
// entry up to the next Sync gets no answer, simple Queries included (the
// server discards them too). A failed Parse registers nothing; a
// statement whose injected Close never ran stays on the server as an
// orphan (closed by the next prepare).
func (m *Machine) skipToSync() {
	for m.q.len() > 0 && m.q.head().kind != wire.Sync {
		e := m.q.pop()
		if e.kind == wire.Close && e.srv != "" {
			m.sv.Orphans[e.srv] = true
		}
		if e.unnamed {
			// The server never replaced its unnamed statement (or dropped
			// it, when this Parse is the one that failed): whoever's it
			// is, it is not this client's.
			m.sv.UnnamedOwner = 0
		}
		if e.kind == wire.Parse && e.named && m.st.byName[e.stmt] != nil && m.st.byName[e.stmt].srv == e.srv {
			delete(m.st.byName, e.stmt) // the server would not have created it
		}
		if e.kind == wire.Parse && e.srv != "" && e.action != synth {
			m.sv.Prepared.Remove(e.srv)
		}
		if e.internal != "" {
			delete(m.sv.Internal, e.internal)
		}
	}
	// No Sync owed: the server skips whatever the client sends until its
	// next Sync (see ClientMessage).
	m.serverSkipping = m.q.len() == 0
}

// ready handles ReadyForQuery: the end of a request, and of the
// attachment when the server is idle and nothing more is owed.
func (m *Machine) ready(frame []byte, fwd bool) ServerStep {
	if m.q.head().cz != czNone {
		if step, done := m.cz.ready(frame); done {
			return step
		}
	}
	head := m.q.pop()
	status := frame[5]
	m.sv.TxStatus = status
	m.noteEffects(head, status)
	if !m.gone {
		m.status = status
	}
	step := ServerStep{FrameAt: frameAt(m.ToClient, fwd), Flush: true}
	m.emitSynth()
	if m.q.len() == 0 && status == wire.TxIdle {
		step.Release, step.Reusable = true, m.attached
		m.detach()
	}
	return step
}

// detach forgets the attached server (its model goes back with it).
func (m *Machine) detach() {
	m.sv, m.attached = nil, false
	m.q.reset()
	m.copy = copyState{}
}

func errorMessage(frame []byte) string {
	var e pgproto3.ErrorResponse
	if err := e.Decode(frame[5:]); err != nil {
		return err.Error()
	}
	return e.Message
}
