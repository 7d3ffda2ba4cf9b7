package frontend

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/txstate"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// The transaction-mode relay (pool_mode = transaction, tenant connections
// only): the I/O driver around txstate.Machine, which makes every
// decision. The client pump reads client messages and hands each to the
// Machine; when the Machine needs a server connection the relay borrows
// one from the (database, role) pool and attaches it. The server's
// answers are read either inline by the client pump (when everything
// forwarded ends at a Sync or a simple Query) or by a server pump
// goroutine, and handed to the Machine, which says where each goes and
// when the connection goes back to the pool. What a client leaves in a
// server session is either tracked by the Machine and re-applied wherever
// it lands or refused by the guard's transaction-mode rules
// (internal/sqlguard/session.go); docs/pooling.md lists both.

// txRelay is a transaction-mode client's relay state.
//
// Lock order. mu guards the Machine and everything the client pump and
// the server pump share (the attached server and the fields below it).
// Under mu the relay may take, one at a time and never the other way
// round: the connection's c.mu (kill, isKilled), its client writer lock
// c.wmu, and inlineMu. DataRows and CopyData go to the client without mu
// (rowsForward), so a result streams while the client pump holds mu
// writing a long pipeline to the same server.
type txRelay struct {
	c    *clientConn
	pool *pool.Pool // the login's pool; rt.cur once the client follows its tenant
	rt   txRoute    // routing between transactions (txroute.go)
	// relaying is set once the client is past login and run runs (read by
	// Shutdown from another goroutine).
	relaying atomic.Bool

	mu     sync.Mutex
	m      *txstate.Machine
	server *pool.Conn // the attached connection, nil when none
	// attachedAt is the monoNow of the current attachment (see
	// unsynced_hold_timeout in txhold.go); copyWaitSince: when the client
	// pump began waiting for COPY data; blockIdleSince: when the client,
	// idle in a block, was last heard from.
	attachedAt, copyWaitSince, blockIdleSince int64
	// closeServer makes abandon close the server connection instead of
	// rolling it back.
	closeServer bool
	// unflushed: answers multigres gave the client itself wait in its
	// buffer; they are flushed once the client has nothing more buffered
	// (clientIdle, for the message being handled), since the client may
	// be waiting for them (after a Flush).
	unflushed, clientIdle bool
	// unread counts the bytes forwarded since someone last started
	// reading the server's answers (see driveServer).
	unread int
	// rowsForward: DataRows and CopyData go to the client now (set at
	// every unlock; read lock-free by the server pump).
	rowsForward atomic.Bool
	// pinned is a session-mode client's own server connection on a Citus
	// database (citus.go), pool nil; nil once closed.
	pinned pinnedConn
	// pumpDone is closed when the current attachment's server pump ends;
	// nil when no server pump goroutine runs (none yet, or the client
	// pump reads the server inline).
	pumpDone chan struct{}
	// inline is the server the client pump is reading right now, for
	// kill to interrupt; interrupted records that it did.
	inlineMu    sync.Mutex
	inline      *pool.Conn
	interrupted bool
	// cancels counts CancelRequests in flight to the attached server; it
	// is released only after they are delivered, so a late cancel cannot
	// hit the next client's query.
	cancels sync.WaitGroup
}

// run relays a transaction-mode client until it ends.
func (r *txRelay) run() {
	c := r.c
	src, err := c.relayReader()
	if src != wire.BufferedReader(c.rd) {
		c.rd = nil // the idle reader took over: do not keep its buffer
	}
	// The startup parameters served the login (txParams, observe); server
	// connections are dialled with the role and database only.
	c.params = nil
	r.relaying.Store(true)
	if c.raw != nil && r.pool != nil {
		// A client that stops reading must not pin its server connection.
		c.raw.SetStallTimeout(c.lc.cfg.ClientWriteTimeout)
	}
	if err == nil {
		frames := wire.NewFrameReader(src, c.lc.cfg.MaxMessageSize).WithBudget(&c.srv.msgBudget)
		err = r.pumpClient(frames)
		frames.Close()
	}
	if err != nil && !isClosed(err) {
		c.logger().Info("client connection ended", "err", err)
		c.fail(err)
	}
	r.abandon()
	c.kill()
}

func (r *txRelay) pumpClient(frames *wire.FrameReader) error {
	for {
		if frames.Buffered() == 0 {
			if err := r.beforeRead(); err != nil {
				return err
			}
		}
		typ, frame, err := r.c.nextClientFrame(frames)
		if err != nil {
			return err
		}
		if wire.ClientType(typ) == wire.Terminate {
			return errSilent
		}
		idle := frames.Buffered() == 0
		if err := r.message(typ, frame, idle); err != nil {
			return err
		}
		if err := r.driveServer(idle); err != nil {
			return err
		}
	}
}

// driveServer makes sure someone reads the attached server's answers. When
// the client has nothing more buffered and everything forwarded ends at a
// Sync or a simple Query, the server needs nothing more from the client to
// answer it all, so the client pump reads the answers itself (inline): one
// goroutine, two waits per transaction, as PostgreSQL itself serves a
// client. Otherwise (more client messages to forward, an extended batch
// still open, COPY IN) a server pump goroutine reads them while the client
// pump goes on reading the client.
func (r *txRelay) driveServer(idle bool) error {
	r.mu.Lock()
	sc := r.server
	if sc == nil || r.pumpDone != nil || !idle {
		// Nothing to read, a pump reads it, or more client messages are
		// buffered: forward them first (message starts a pump past
		// inlineWindow), and decide at the last.
		r.mu.Unlock()
		return nil
	}
	r.unread = 0
	if !r.m.ServerAnswersAll() {
		r.startServerPump(sc)
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	r.setInline(sc)
	defer r.clearInline(sc)
	if r.c.isKilled() { // kill ran before inline was visible to it
		return errSilent
	}
	return r.pumpServerInline(sc)
}

// inlineWindow bounds what the client pump forwards before anyone reads
// the server's answers. Below it the server can always take the whole
// request into its socket buffer, even while its answers wait, so the
// write cannot block; past it a server pump starts reading.
const inlineWindow = 32 << 10

// serverWriteTimeout bounds one write of a client's messages to its pooled
// server connection; past it the client is ended and the connection closed.
const serverWriteTimeout = 15 * time.Second

// message hands one client message to the Machine and writes what it
// produced: answers to the client, then messages to the server.
func (r *txRelay) message(typ byte, frame []byte, flush bool) error {
	fx, frame, err := r.guard(typ, frame)
	if err != nil {
		return err
	}
	ct := wire.ClientType(frame[0]) // a refused FunctionCall became a Query
	r.mu.Lock()
	defer r.unlock()
	m := r.m
	if m.ToServer == nil {
		m.ToServer = borrowOut()
	}
	r.clientIdle = flush
	sc, err := r.messageLocked(ct, frame, fx)
	out := m.ToServer
	m.ToServer = m.ToServer[:0]
	if flush {
		// The client is idle until its next message: do not keep buffers
		// for it (out stays valid: only this goroutine borrows).
		defer returnOut(out)
		m.ToServer, m.ToClient = nil, nil
	}
	if err != nil || sc == nil {
		return err
	}
	return r.writeServer(sc, out, flush)
}

// messageLocked runs the Machine on one message (mu held) and returns the
// server connection to write ToServer to, or nil.
func (r *txRelay) messageLocked(typ wire.ClientType, frame []byte, fx *sqlguard.Effects) (*pool.Conn, error) {
	step, err := r.m.ClientMessage(typ, frame, fx)
	if err == nil && step == txstate.NeedServer {
		err = r.attach(typ, frame, fx)
	}
	if werr := r.writeAnswers(); err == nil {
		err = werr
	}
	if err != nil || !r.m.Attached() {
		return nil, err
	}
	return r.server, nil
}

// writeServer writes a message's bytes to the attached server (mu held).
// The write is bounded by serverWriteTimeout: a client that pipelines more
// than the socket buffers hold, while the server's output waits for mu,
// would otherwise wedge the connection for good (docs/pooling.md, known
// limits). Only a write that reaches the socket needs the deadline.
func (r *txRelay) writeServer(sc *pool.Conn, out []byte, flush bool) error {
	if r.pumpDone == nil && r.unread+len(out) >= inlineWindow {
		// The server may be writing answers nobody reads yet, and stop
		// reading until they drain: read them before writing this much.
		r.unread = 0
		r.startServerPump(sc)
	}
	if flush || len(out) > sc.W.Available() {
		_ = sc.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		defer sc.SetWriteDeadline(time.Time{})
	}
	if len(out) > 0 {
		r.unread += len(out)
		if _, err := sc.W.Write(out); err != nil {
			return fmt.Errorf("write to server: %w", err)
		}
	}
	if flush {
		if err := sc.W.Flush(); err != nil {
			return fmt.Errorf("write to server: %w", err)
		}
	}
	return nil
}

// writeAnswers writes the answers the Machine gave the client itself
// (mu held), with the bookkeeping of a ReadyForQuery among them.
func (r *txRelay) writeAnswers() error {
	c, m := r.c, r.m
	if len(m.ToClient) > 0 {
		c.writeRaw(m.ToClient)
		m.ToClient = m.ToClient[:0]
	}
	status, flush, unflushed := m.TakeReady()
	r.unflushed = r.unflushed || unflushed
	if status != 0 {
		c.noteServerReady(status)
		if c.sess != nil {
			c.noteReady(status)
		}
		c.setState(txState(status))
	}
	if flush || r.unflushed && r.clientIdle {
		r.unflushed = false
		if err := c.flush(); err != nil {
			return fmt.Errorf("%w: %v", errSilent, err)
		}
	}
	return nil
}

// guard runs the guard seam on a client message (transaction-mode rules)
// and, for a statement with session effects, the Machine's check that
// transaction pooling can track them.
func (r *txRelay) guard(typ byte, frame []byte) (*sqlguard.Effects, []byte, error) {
	c := r.c
	fx, frame, err := c.guardMessage(c.lc.guardFor(r.pool == nil, r.m.Config().Citus != nil), typ, frame)
	if err != nil || fx == nil {
		return fx, frame, err
	}
	r.mu.Lock()
	we := r.m.CheckEffects(wire.ClientType(typ), frame, fx)
	r.mu.Unlock()
	if we != nil {
		c.guardRefused(we)
		return nil, c.refuse(typ, frame, we), nil
	}
	return fx, frame, nil
}

// attach borrows a server connection for the client (mu held; released
// while waiting) and gives it to the Machine with the message that needs
// it. If none can be had, the client gets the error and the Machine
// discards what it must.
func (r *txRelay) attach(typ wire.ClientType, frame []byte, fx *sqlguard.Effects) error {
	c := r.c
	r.unlock()
	sc, err := r.acquireServer()
	r.mu.Lock()
	if err != nil {
		we := c.acquireError(err, false)
		if we.Severity == wire.SeverityFatal {
			return we
		}
		r.m.ToClient, _ = we.Response().Encode(r.m.ToClient)
		r.m.AttachFailed(typ)
		return nil
	}
	r.server = sc
	r.attachedAt = c.monoNow()
	sc.Holder.Store(c.id)
	return r.m.Attach(r.model(sc), typ, frame, fx)
}

// unlock publishes whether rows for the head entry go to the client, then
// releases mu. The head changes only under mu, and rows for an entry
// arrive only after it is the head.
func (r *txRelay) unlock() {
	r.rowsForward.Store(r.m.RowsForward())
	r.mu.Unlock()
}

// interruptInline makes an inline read of the server return, so that a
// killed client does not wait for its query to end.
func (r *txRelay) interruptInline() {
	r.inlineMu.Lock()
	defer r.inlineMu.Unlock()
	if r.inline != nil {
		_ = r.inline.SetReadDeadline(time.Unix(1, 0))
		r.interrupted = true
	}
}

func (r *txRelay) setInline(sc *pool.Conn) {
	r.inlineMu.Lock()
	r.inline = sc
	r.inlineMu.Unlock()
}

// clearInline ends sc's inline reading; it runs before sc can go back to
// the pool, so a kill racing with the release cannot leave its deadline
// on a connection another client gets.
func (r *txRelay) clearInline(sc *pool.Conn) {
	r.inlineMu.Lock()
	defer r.inlineMu.Unlock()
	if r.inline != sc {
		return
	}
	r.inline = nil
	if r.interrupted {
		r.interrupted = false
		_ = sc.SetReadDeadline(time.Time{})
	}
}

// isCopyError reports the COPY protocol errors that end a client.
func isCopyError(err error) bool {
	return errors.Is(err, txstate.ErrCopyPipelined) || errors.Is(err, txstate.ErrCopyUncertain)
}
