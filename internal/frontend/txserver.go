package frontend

import (
	"context"
	"errors"
	"time"

	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/txstate"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// The server side of the transaction-mode relay: reading an attachment's
// answers (inline on the client pump, or on a server pump goroutine),
// handing them to the Machine, and ending an attachment when the client
// leaves or the server fails.

// startServerPump starts a goroutine reading sc's answers until it goes
// back to the pool (mu held).
func (r *txRelay) startServerPump(sc *pool.Conn) {
	done := make(chan struct{})
	r.pumpDone = done
	go r.pumpServer(sc, done)
}

// pumpServerInline reads sc's answers on the client pump until the
// connection goes back to the pool, or nothing is owed (the client is in a
// transaction block and will send more), or the server starts COPY IN
// (which needs the client pump reading again: a server pump takes over).
func (r *txRelay) pumpServerInline(sc *pool.Conn) error {
	for {
		release, err := r.serverStep(sc)
		if err != nil {
			if r.c.isKilled() {
				cancelInFlight(sc)
			}
			r.serverLost(sc, err)
			return errSilent
		}
		if release {
			return nil
		}
		r.mu.Lock()
		if r.server != sc {
			r.mu.Unlock()
			return nil
		}
		if r.m.CopyIn() {
			r.startServerPump(sc)
		}
		more := r.m.MoreAnswers()
		r.mu.Unlock()
		if !more {
			return nil
		}
	}
}

// cancelInFlight stops the query the client was waiting for when the
// client was killed; the connection is then closed, not pooled.
func cancelInFlight(sc *pool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = sc.Cancel(ctx)
}

// pumpServer relays one attachment's server answers until the connection
// goes back to the pool.
func (r *txRelay) pumpServer(sc *pool.Conn, done chan struct{}) {
	defer close(done)
	defer r.c.recoverPanic("server pump")
	for {
		release, err := r.serverStep(sc)
		if err != nil {
			r.serverLost(sc, err)
			return
		}
		if release {
			return
		}
	}
}

// serverStep reads and handles one server message (for either reader of
// sc); release reports that the connection went back to the pool.
func (r *txRelay) serverStep(sc *pool.Conn) (release bool, err error) {
	typ, frame, err := sc.Frames.Next()
	if err != nil {
		return false, err
	}
	if st := wire.ServerType(typ); st == wire.DataRow || st == wire.CopyOutData {
		r.forwardRow(sc, frame)
		return false, nil
	}
	return r.serverMessage(sc, typ, frame)
}

// serverMessage hands one server message to the Machine, writes what goes
// to the client, and gives the connection back when the Machine says so.
func (r *txRelay) serverMessage(sc *pool.Conn, typ byte, frame []byte) (bool, error) {
	r.mu.Lock()
	if wire.ServerType(typ) == wire.ParameterStatus {
		sc.NoteParameterStatus(frame)
	}
	step, err := r.m.ServerMessage(wire.ServerType(typ), frame)
	if werr := r.deliver(sc, typ, frame, step); err == nil {
		err = werr
	}
	if len(r.m.ToServer) > 0 && err == nil {
		// An answer multigres sends the server itself (the ROLLBACK of a
		// failed Citus block): it goes at once.
		err = r.writeServer(sc, r.m.ToServer, true)
		r.m.ToServer = r.m.ToServer[:0]
	}
	if step.Release {
		if step.Reusable {
			r.pumpDone = nil // this goroutine (if a pump) ends now
		}
		r.server = nil
		if r.m.Gone() {
			_ = sc.SetDeadline(time.Time{}) // abandon's rollback deadline
		}
	}
	r.unlock()
	if step.Release {
		r.clearInline(sc)
		r.cancels.Wait()
		r.releaseServer(sc, step.Reusable)
	}
	return step.Release, err
}

// deliver writes the Machine's answers for the client and, where the
// Machine placed it, the server's frame (mu held).
func (r *txRelay) deliver(sc *pool.Conn, typ byte, frame []byte, step txstate.ServerStep) error {
	c, out := r.c, r.m.ToClient
	defer func() { r.m.ToClient = out[:0] }()
	var err error
	switch {
	case step.FrameAt < 0:
		if len(out) == 0 {
			return nil
		}
		c.writeRaw(out)
	default:
		if step.FrameAt > 0 {
			c.writeRaw(out[:step.FrameAt])
		}
		err = r.forwardToClient(sc, typ, frame, step.Flush)
		if len(out) == step.FrameAt {
			return err
		}
		c.writeRaw(out[step.FrameAt:])
	}
	// Answers multigres gave itself after the last flush: the client may
	// be waiting for them (after a Flush), so they go out unless more of
	// the server's answers are already here to carry them.
	if sc.Frames.Buffered() == 0 {
		if ferr := c.flush(); ferr != nil {
			c.kill() // the client is gone: see forwardToClient
		}
	}
	return err
}

// forwardRow passes a DataRow or CopyData to the client. Rows and COPY
// data complete nothing: they go to the client without mu, so a result
// streams even while the client pump holds mu writing a long pipeline to
// this same server (which otherwise deadlocks: the server stops reading
// until its output drains).
func (r *txRelay) forwardRow(sc *pool.Conn, frame []byte) {
	if !r.rowsForward.Load() {
		return
	}
	c := r.c
	c.wmu.Lock()
	_, err := c.w.Write(frame)
	if err == nil && sc.Frames.Buffered() == 0 {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		c.kill() // the client is gone: see forwardToClient
	}
}

// forwardToClient writes a server frame to the client, flushing when the
// server has nothing more buffered (or always, with flush).
func (r *txRelay) forwardToClient(sc *pool.Conn, typ byte, frame []byte, flush bool) error {
	c := r.c
	switch wire.ServerType(typ) {
	case wire.ReadyForQuery:
		status := frame[5]
		c.noteServerReady(status)
		if c.sess != nil {
			c.noteReady(status)
		}
		c.setState(txState(status))
	case wire.ErrorResponse:
		if c.sess != nil {
			c.sess.Error()
		}
		if c.refused.count.Load() > 0 {
			frame = c.translateRefusal(frame)
		}
	case wire.ParameterStatus:
		if c.unsafeParameter(frame) {
			return errUnsafeParameter
		}
	}
	c.wmu.Lock()
	_, err := c.w.Write(frame)
	if err == nil && (flush || sc.Frames.Buffered() == 0) {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		// The client is gone. Kill ends its pump's read (or the inline
		// read of this server, whose query is then cancelled), and the
		// connection is cleaned up there.
		c.kill()
	}
	return nil
}

// serverLost ends the client after its server connection failed or the
// proxy found it unsafe; the connection is closed, not pooled.
func (r *txRelay) serverLost(sc *pool.Conn, err error) {
	c := r.c
	r.mu.Lock()
	gone := r.m.Gone()
	if r.server == sc {
		r.server, r.pumpDone = nil, nil
	}
	r.m.Lost()
	r.unlock()
	r.cancels.Wait()
	r.releaseServer(sc, false)
	if gone {
		return
	}
	switch {
	case errors.Is(err, errUnsafeParameter):
		c.fail(wire.Fatal(wire.CodeInsufficientPrivilege, "multigres closed the connection: the server now reads SQL in a way the SQL guard cannot check").
			WithHint("Keep client_encoding UTF8 (or another ASCII-safe encoding) and standard_conforming_strings on."))
	case errors.Is(err, txstate.ErrSwitchFailed):
		c.logger().Warn("switching the tenant context failed; closing", "err", err)
		c.fail(wire.Fatal(wire.CodeConnectionFailure, "multigres could not set the tenant context on a pooled server connection").
			WithHint(contextHint(err.Error(), "Reconnect. If this persists, check the server log and the role's grants.")))
	case errors.Is(err, txstate.ErrServerClosing):
		c.logger().Info("server ended the session")
	case isCopyError(err):
		c.fail(err)
	case !isClosed(err):
		c.logger().Info("server connection ended", "err", err)
		c.fail(wire.Fatal(wire.CodeConnectionFailure, "the server connection was lost").WithHint("Reconnect."))
	}
	c.kill()
}

// abandon cleans up after the client is gone, as the Machine plans: an
// idle-in-transaction server connection is rolled back and, once idle,
// pooled again; one with a statement in flight is cancelled and closed;
// one the server may be skipping on is closed.
func (r *txRelay) abandon() {
	if r.pool == nil { // pinned (citus.go): the session ends with its client
		r.mu.Lock()
		r.m.Abandon(true)
		done := r.pumpDone
		r.unlock()
		r.pinned.close()
		if done != nil {
			<-done
		}
		return
	}
	r.mu.Lock()
	sc, done := r.server, r.pumpDone
	switch r.m.Abandon(r.closeServer || r.c.tl.unsynced.Load()) {
	case txstate.PlanNone:
	case txstate.PlanClose:
		sc.Close()
		r.server = nil
		if done == nil {
			r.unlock()
			r.releaseServer(sc, false)
			return
		}
	case txstate.PlanRollback:
		_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := sc.W.Write(r.m.ToServer); err == nil {
			_ = sc.W.Flush()
		}
		r.m.ToServer = nil
		if done == nil {
			// No server pump: read the rollback's answer here.
			r.unlock()
			r.abandonInline(sc)
			return
		}
	case txstate.PlanCancelClose:
		cancelInFlight(sc)
		sc.Close()
		// Detached: the pump must not pool it even if a last
		// ReadyForQuery was already read (the Machine's Reusable).
		r.server = nil
		if done == nil { // no pump to give it back
			r.unlock()
			r.releaseServer(sc, false)
			return
		}
	}
	r.unlock()
	if sc != nil && done != nil {
		<-done
	}
}

// abandonInline reads the answer to abandon's ROLLBACK on the client
// pump; unless that leaves the connection idle and pooled, it is closed.
func (r *txRelay) abandonInline(sc *pool.Conn) {
	_ = r.pumpServerInline(sc)
	r.mu.Lock()
	stuck := r.server == sc
	if stuck {
		r.server = nil
	}
	r.unlock()
	if stuck {
		r.releaseServer(sc, false)
	}
}

// cancel forwards a CancelRequest to the server connection running the
// client's query right now; with none attached, or nothing in flight, it
// does nothing.
func (r *txRelay) cancel() bool {
	r.mu.Lock()
	sc := r.server
	if sc == nil || !r.m.Owes() {
		r.unlock()
		return false
	}
	r.cancels.Add(1)
	r.unlock()
	defer r.cancels.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.Cancel(ctx); err != nil {
		r.c.srv.Logger.Warn("forwarding cancel request failed", "err", err)
	}
	return true
}
