package frontend

import (
	"context"
	"strings"
	"time"

	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/txstate"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Fair use of a transaction-mode pool. A client holds a server connection
// from its first message to the ReadyForQuery that ends its transaction;
// two things bound how much of a pool one client or tenant can keep from
// the others:
//
//   - max_tenant_server_connections caps the connections of one pool that
//     one tenant holds at once (pool.AcquireQuota); its other clients wait
//     up to query_wait_timeout, then get 53300, while other tenants are
//     served.
//   - unsynced_hold_timeout bounds how long a client may hold a connection
//     outside a transaction block while the server waits for it (it sent
//     extended-protocol messages, was answered, and sends no Sync). Inside
//     a block, idle_in_transaction_session_timeout on the role is the
//     bound, as in PostgreSQL.

// acquireServer borrows a server connection for the client's next
// transaction, within its tenant's share of the pool.
func (r *txRelay) acquireServer() (*pool.Conn, error) {
	c := r.c
	if c.srv.inShut.Load() {
		return nil, pool.ErrClosed // no new transaction once shutdown began
	}
	if r.pool == nil {
		return r.pinned.take()
	}
	cfg := c.srv.live.Load().cfg
	ctx := c.srv.shutdownCtx()
	if cfg.MaxTenantServerConnections > 0 && cfg.QueryWaitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.QueryWaitTimeout)
		defer cancel()
	}
	p, err := r.rt.pool(r) // the tenant's cluster: one atomic load unless routes changed
	if err != nil {
		return nil, err
	}
	for {
		sc, err := p.AcquireQuota(ctx, c.tl.name, cfg.MaxTenantServerConnections)
		if err != nil {
			return nil, err
		}
		if !r.preReset(sc, false) {
			continue
		}
		return sc, nil
	}
}

// releaseServer gives sc back to the pool, after the state audit when it
// is on (a connection that fails it is closed); the pool frees the
// tenant's slot.
func (r *txRelay) releaseServer(sc *pool.Conn, reusable bool) {
	if r.pool == nil {
		r.pinned.release(sc, reusable)
		return
	}
	if reusable && r.c.lc.cfg.StateAudit {
		reusable = r.auditState(sc)
	}
	r.pool.Release(sc, reusable)
}

// loginWaitCtx bounds a login's wait for a pooled connection so that it
// ends before the handshake does, leaving time to tell the client why.
func loginWaitCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	margin := time.Until(dl) / 10
	if margin > time.Second {
		margin = time.Second
	}
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// holdState is what the hold bounds read of a client's attachment, taken
// under one lock.
type holdState struct {
	server                                    *pool.Conn
	status                                    byte
	owes, copyIn                              bool // answers still owed; COPY IN running
	attachedAt, copyWaitSince, blockIdleSince int64
}

func (r *txRelay) holdState() holdState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil { // session mode, or before the login
		return holdState{}
	}
	return holdState{server: r.server, status: r.m.Status(), owes: r.m.Owes(), copyIn: r.m.CopyIn(),
		attachedAt: r.attachedAt, copyWaitSince: r.copyWaitSince, blockIdleSince: r.blockIdleSince}
}

// outsideBlock: the client holds a server connection outside a transaction
// block.
func (h holdState) outsideBlock() bool { return h.server != nil && h.status == wire.TxIdle }

// copying: the server waits for the client's COPY data (in a block too).
func (h holdState) copying() bool { return h.server != nil && h.copyIn }

// inBlock: the client holds a server connection inside a transaction block
// (not in COPY).
func (h holdState) inBlock() bool { return h.server != nil && h.status != wire.TxIdle && !h.copyIn }

// beforeRead runs before the client pump blocks reading the client. Between
// transactions once Shutdown began, the client is ended. While the client
// holds a server connection outside a transaction block (or the server
// waits for its COPY data), unsynced_hold_timeout's deadline goes on the
// socket. Clients that Sync each request hold no connection while the pump
// waits for them, so the common case costs one lock and no timer.
func (r *txRelay) beforeRead() error {
	c := r.c
	r.mu.Lock()
	attached := r.server != nil
	held, copying, since := attached && r.m.Status() == wire.TxIdle, attached && r.m.CopyIn(), r.attachedAt
	if copying {
		r.copyWaitSince = c.monoNow()
	}
	r.mu.Unlock()
	if !attached {
		if c.srv.inShut.Load() {
			return errShuttingDown
		}
		return nil
	}
	if r.pool == nil {
		return nil // pinned: the client's own connection, no hold bounds
	}
	if !held && !copying {
		r.armBlockIdle()
		return nil
	}
	timeout := c.srv.live.Load().cfg.UnsyncedHoldTimeout
	if timeout <= 0 {
		return nil
	}
	rest := timeout
	if !copying {
		// COPY FROM STDIN (inside a block too, where idle_in_transaction_
		// session_timeout does not run) waits for data at most timeout;
		// otherwise the bound counts from the attachment.
		rest = max(timeout-time.Duration(c.monoNow()-since), time.Millisecond)
	}
	c.tl.armed.Store(true) // noteClientFrame clears it with the next message
	_ = c.nc.SetReadDeadline(time.Now().Add(rest))
	return nil
}

// holdReadError interprets a client read timeout while the client holds a
// server connection outside a transaction block (held is false
// otherwise). While the server still answers, or the bound is not reached
// (a reload lengthened it), the pump reads again; past it the client is
// ended and its server connection closed (abandonTx).
func (r *txRelay) holdReadError(err error) (retry bool, out error, held bool) {
	c := r.c
	h := r.holdState()
	held, owes, since := h.outsideBlock(), h.owes || h.copyIn, h.attachedAt
	if retry, o, ok := r.blockReadError(err); ok {
		return retry, o, true
	}
	timeout := c.srv.live.Load().cfg.UnsyncedHoldTimeout
	if timeout <= 0 {
		return false, nil, false
	}
	if h.copying() {
		return r.copyReadError(err, timeout, h.copyWaitSince)
	}
	if !held {
		return false, nil, false
	}
	elapsed := time.Duration(c.monoNow() - since)
	// Only a timeout on a frame header can be retried (nothing consumed).
	if strings.HasPrefix(err.Error(), "read frame header") && (owes || elapsed < timeout) {
		rest := timeout - elapsed
		if owes || rest < time.Millisecond {
			rest = timeout
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(rest))
		return true, nil, true
	}
	r.mu.Lock()
	r.closeServer = true
	r.mu.Unlock()
	c.logger().Info("ending a client that held a server connection without a Sync", "held", elapsed, "unsynced_hold_timeout", timeout)
	return false, wire.Fatal(codeIdleSessionTimeout,
		"terminating connection: it held a pooled server connection outside a transaction block for %s without sending Sync (unsynced_hold_timeout = %s)",
		elapsed.Round(time.Millisecond), timeout).
		WithHint("End every batch of extended-protocol messages with Sync; other clients are waiting for the connection."), true
}

// Shutdown in transaction mode (PgBouncer's safe shutdown): no client's
// transaction is cut. Once Shutdown begins, a client between transactions
// is ended with 57P01 (woken from its read by wakeTxClients); one inside a
// transaction, or with a statement running, goes on until the transaction
// ends, and is ended then; a message that would start a new transaction
// gets the same FATAL instead of a server connection.

var errShuttingDown = wire.Fatal(wire.CodeAdminShutdown, "terminating connection because multigres is shutting down").
	WithHint("Reconnect: another multigres process (or this one after its restart) will serve you.")

// shutdownReadError interprets a client read timeout once Shutdown began:
// between transactions the client is ended; otherwise its read goes on
// without a deadline (handled=false leaves other deadlines to the caller).
func (r *txRelay) shutdownReadError(err error) (retry bool, out error, handled bool) {
	c := r.c
	if !c.srv.inShut.Load() || !r.relaying.Load() {
		return false, nil, false
	}
	h := r.holdState()
	if h.server == nil { // between transactions
		return false, errShuttingDown, true
	}
	if !strings.HasPrefix(err.Error(), "read frame header") {
		return false, nil, false
	}
	if h.outsideBlock() {
		return false, nil, false // unsynced_hold_timeout still applies
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return true, nil, true
}

// wakeTxClients makes every transaction-mode client's blocked read return
// at once, so that those between transactions end now (Shutdown).
func (s *Server) wakeTxClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.tx.relaying.Load() {
			c.tl.armed.Store(true)
			_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
}

// preReset resets what sc's previous client left that this client's
// switch must not run under (preSwitchResets). A connection where that
// fails is closed (false), and the caller takes another.
func (r *txRelay) preReset(sc *pool.Conn, login bool) bool {
	sv := r.model(sc)
	names := txstate.PreSwitchResets(sv.Settings, r.m.Settings(), login)
	if len(names) == 0 {
		return true
	}
	if err := resetSettings(sc, sv, names, r.m.Settings()); err != nil {
		r.c.logger().Info("closing a pooled connection whose previous client's settings could not be reset", "err", err)
		r.pool.Release(sc, false)
		return false
	}
	return true
}

// copyReadError: the client sent no COPY data for unsynced_hold_timeout
// while the server waited for it; it is ended and the connection closed.
func (r *txRelay) copyReadError(err error, timeout time.Duration, since int64) (bool, error, bool) {
	c := r.c
	waited := time.Duration(c.monoNow() - since)
	if strings.HasPrefix(err.Error(), "read frame header") && waited < timeout {
		_ = c.nc.SetReadDeadline(time.Now().Add(timeout - waited))
		return true, nil, true
	}
	r.mu.Lock()
	r.closeServer = true
	r.mu.Unlock()
	c.logger().Info("ending a client that sent no COPY data", "waited", waited, "unsynced_hold_timeout", timeout)
	return false, wire.Fatal(codeIdleSessionTimeout,
		"terminating connection: COPY FROM STDIN received no data for %s (unsynced_hold_timeout = %s)", waited.Round(time.Millisecond), timeout).
		WithHint("Send COPY data without long pauses, then CopyDone; other clients are waiting for the connection."), true
}

// Inside a transaction block. A client idle in a block holds its server
// connection, as with PgBouncer; three things bound it. The server's
// idle_in_transaction_session_timeout ends the backend, but nobody reads
// an idle client's server connection, so its FATAL would sit unread (and
// the connection count as held) until the client spoke: while a client is
// idle in a block its read wakes every blockPoll to look. A client that
// sent extended-protocol messages without a Sync is not idle for the
// server (which never starts that timer): unsynced_hold_timeout ends it
// after that long without a message. And idle_transaction_timeout, when
// set, ends any client idle in a block that long (a tenant can lower its
// own idle_in_transaction_session_timeout; it cannot lower this).

// blockPoll is how often the read of a client idle in a block wakes to see
// whether the server ended the session.
const blockPoll = time.Second

// blockBound is the bound on the current idleness in a block and the name
// of its key (0: none).
func (c *clientConn) blockBound() (time.Duration, string) {
	cfg := c.srv.live.Load().cfg
	if c.tl.unsynced.Load() && cfg.UnsyncedHoldTimeout > 0 {
		return cfg.UnsyncedHoldTimeout, "unsynced_hold_timeout"
	}
	if cfg.IdleTransactionTimeout > 0 {
		return cfg.IdleTransactionTimeout, "idle_transaction_timeout"
	}
	return 0, ""
}

// armBlockIdle puts the poll (or the bound, if sooner) on the client read
// of a client idle in a block.
func (r *txRelay) armBlockIdle() {
	c := r.c
	if !r.holdState().inBlock() {
		return
	}
	r.mu.Lock()
	r.blockIdleSince = c.monoNow()
	r.mu.Unlock()
	wait := blockPoll
	if bound, _ := c.blockBound(); bound > 0 {
		wait = min(wait, bound)
	}
	c.tl.armed.Store(true)
	_ = c.nc.SetReadDeadline(time.Now().Add(wait))
}

// blockReadError handles a read timeout of a client idle in a block: a
// server that spoke (a FATAL) gets its server pump, which relays it and
// ends the client; past its bound the client is ended; otherwise the read
// goes on.
func (r *txRelay) blockReadError(err error) (bool, error, bool) {
	c := r.c
	h := r.holdState()
	sc, owes := h.server, h.owes
	if !h.inBlock() {
		return false, nil, false
	}
	header := strings.HasPrefix(err.Error(), "read frame header")
	if owes {
		// Answers are still coming: the client is not idle yet.
		if !header {
			return false, nil, false
		}
		r.mu.Lock()
		r.blockIdleSince = c.monoNow()
		r.mu.Unlock()
		_ = c.nc.SetReadDeadline(time.Now().Add(blockPoll))
		return true, nil, true
	}
	if !sc.Quiet() {
		r.mu.Lock()
		if r.server == sc && r.pumpDone == nil {
			r.startServerPump(sc)
		}
		r.mu.Unlock()
		if header {
			_ = c.nc.SetReadDeadline(time.Time{})
			return true, nil, true
		}
	}
	elapsed := time.Duration(c.monoNow() - h.blockIdleSince)
	bound, key := c.blockBound()
	if header && (bound == 0 || elapsed < bound) {
		wait := blockPoll
		if bound > 0 {
			wait = min(wait, bound-elapsed)
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(max(wait, time.Millisecond)))
		return true, nil, true
	}
	if key == "" {
		return false, nil, false // a timeout mid-message: the caller's error
	}
	c.logger().Info("ending a client idle in a transaction block", "idle", elapsed, key, bound)
	code := "25P03" // idle_in_transaction_session_timeout
	if key == "unsynced_hold_timeout" {
		r.mu.Lock()
		r.closeServer = true
		r.mu.Unlock()
		code = codeIdleSessionTimeout
	}
	return false, wire.Fatal(code, "terminating connection: idle in a transaction block for %s holding a pooled server connection (%s = %s)",
		elapsed.Round(time.Millisecond), key, bound).
		WithHint("Finish transactions promptly (and end extended-protocol batches with Sync); other clients are waiting for the connection."), true
}
