package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// The transaction-mode relay. The client pump reads client messages, and
// when the client has no server connection it borrows one from the pool
// (switching the context first if the connection's differs) and starts a
// server pump for that attachment. Every message forwarded that the server
// answers adds an owed entry; the server pump matches the server's answers
// to the entries in order, swallows the answers to what the proxy
// injected, emits the answers the proxy gives itself (a ParseComplete for
// a statement the server already has), and gives the connection back at
// ReadyForQuery 'I' once nothing is owed.

// relayTx runs a transaction-mode client until it ends.
func (c *clientConn) relayTx() {
	src, err := c.relayReader()
	if src != wire.BufferedReader(c.rd) {
		c.rd = nil // the idle reader took over: do not keep its buffer
	}
	// The startup parameters served the login (txParams, observe); server
	// connections are dialled with the role and database only.
	c.params = nil
	c.tx.relaying.Store(true)
	if c.raw != nil {
		// A client that stops reading must not pin its server connection.
		c.raw.SetStallTimeout(c.lc.cfg.ClientWriteTimeout)
	}
	if err == nil {
		frames := wire.NewFrameReader(src, c.lc.cfg.MaxMessageSize).WithBudget(&c.srv.msgBudget)
		err = c.pumpClientTx(frames)
		frames.Close()
	}
	if err != nil && !isClosed(err) {
		c.logger().Info("client connection ended", "err", err)
		c.fail(err)
	}
	c.abandonTx()
	c.kill()
}

func (c *clientConn) pumpClientTx(frames *wire.FrameReader) error {
	for {
		if frames.Buffered() == 0 {
			if err := c.beforeRead(); err != nil {
				return err
			}
		}
		typ, frame, err := c.nextClientFrame(frames)
		if err != nil {
			return err
		}
		if typ == 'X' {
			return errSilent
		}
		idle := frames.Buffered() == 0
		if err := c.txMessage(typ, frame, idle); err != nil {
			return err
		}
		if err := c.driveServer(idle); err != nil {
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
func (c *clientConn) driveServer(idle bool) error {
	t := &c.tx
	t.mu.Lock()
	sc := t.server
	if sc == nil || t.pumpDone != nil || !idle {
		// Nothing to read, a pump reads it, or more client messages are
		// buffered: forward them first (txMessage starts a pump past
		// inlineWindow), and decide at the last.
		t.mu.Unlock()
		return nil
	}
	t.unread = 0
	if t.copyIn || t.skip || len(t.q) == 0 || !endsRequest(t.q[len(t.q)-1].kind) {
		c.startServerPump(sc)
		t.mu.Unlock()
		return nil
	}
	t.mu.Unlock()
	t.setInline(sc)
	defer t.clearInline(sc)
	if c.isKilled() { // kill ran before inline was visible to it
		return errSilent
	}
	return c.pumpServerInline(sc)
}

// inlineWindow bounds what the client pump forwards before anyone reads
// the server's answers. Below it the server can always take the whole
// request into its socket buffer, even while its answers wait, so the
// write cannot block; past it a server pump starts reading.
const inlineWindow = 32 << 10

// endsRequest: after this message the server answers everything up to a
// ReadyForQuery without waiting for more input.
func endsRequest(kind byte) bool { return kind == 'S' || kind == 'Q' }

// startServerPump starts a goroutine reading sc's answers until it goes
// back to the pool (t.mu held).
func (c *clientConn) startServerPump(sc *pool.Conn) {
	done := make(chan struct{})
	c.tx.pumpDone = done
	go c.pumpServerTx(sc, done)
}

// pumpServerInline reads sc's answers on the client pump until the
// connection goes back to the pool, or nothing is owed (the client is in a
// transaction block and will send more), or the server starts COPY IN
// (which needs the client pump reading again: a server pump takes over).
func (c *clientConn) pumpServerInline(sc *pool.Conn) error {
	t := &c.tx
	for {
		release, err := c.serverStep(sc)
		if err != nil {
			if c.isKilled() {
				c.cancelInFlight(sc)
			}
			c.serverLost(sc, err)
			return errSilent
		}
		if release {
			return nil
		}
		t.mu.Lock()
		if t.server != sc {
			t.mu.Unlock()
			return nil
		}
		if t.copyIn {
			c.startServerPump(sc)
		}
		more := !t.copyIn && len(t.q) > 0
		t.mu.Unlock()
		if !more {
			return nil
		}
	}
}

// cancelInFlight stops the query the client was waiting for when the
// client was killed; the connection is then closed, not pooled.
func (c *clientConn) cancelInFlight(sc *pool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = sc.Cancel(ctx)
}

// interruptInline makes an inline read of the server return, so that a
// killed client does not wait for its query to end.
func (t *txConn) interruptInline() {
	t.inlineMu.Lock()
	defer t.inlineMu.Unlock()
	if t.inline != nil {
		_ = t.inline.SetReadDeadline(time.Unix(1, 0))
		t.interrupted = true
	}
}

func (t *txConn) setInline(sc *pool.Conn) {
	t.inlineMu.Lock()
	t.inline = sc
	t.inlineMu.Unlock()
}

// clearInline ends sc's inline reading; it runs before sc can go back to
// the pool, so a kill racing with the release cannot leave its deadline
// on a connection another client gets.
func (t *txConn) clearInline(sc *pool.Conn) {
	t.inlineMu.Lock()
	defer t.inlineMu.Unlock()
	if t.inline != sc {
		return
	}
	t.inline = nil
	if t.interrupted {
		t.interrupted = false
		_ = sc.SetReadDeadline(time.Time{})
	}
}

// txMessage handles one client message.
func (c *clientConn) txMessage(typ byte, frame []byte, flush bool) error {
	fx, frame, err := c.guardTx(typ, frame)
	if err != nil {
		return err
	}
	typ = frame[0] // a refused FunctionCall became a Query
	t := &c.tx
	t.mu.Lock()
	defer t.unlock()
	if t.out == nil {
		t.out = borrowOut()
	}
	sc, err := c.txMessageLocked(typ, frame, fx)
	out := t.out
	t.out = t.out[:0]
	if flush {
		// The client is idle until its next message: do not keep a
		// buffer for it (out stays valid: only this goroutine borrows).
		defer returnOut(out)
		t.out = nil
	}
	if err != nil || sc == nil {
		return err
	}
	if t.pumpDone == nil && t.unread+len(out) >= inlineWindow {
		// The server may be writing answers nobody reads yet, and stop
		// reading until they drain: read them before writing this much.
		t.unread = 0
		c.startServerPump(sc)
	}
	// Written under t.mu, bounded by serverWriteTimeout: a client that
	// pipelines more than the socket buffers hold, while the server's
	// output waits for t.mu, would otherwise wedge the connection for good
	// (docs/pooling.md, known limits). Rows stream without t.mu, so that
	// takes a pipeline of large statements behind a result. Only a write
	// that reaches the socket needs the deadline.
	if flush || len(out) > sc.W.Available() {
		_ = sc.SetWriteDeadline(time.Now().Add(serverWriteTimeout))
		defer sc.SetWriteDeadline(time.Time{})
	}
	if len(out) > 0 {
		t.unread += len(out)
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

// serverWriteTimeout bounds one write of a client's messages to its pooled
// server connection; past it the client is ended and the connection closed.
const serverWriteTimeout = 15 * time.Second

// txMessageLocked decides what one client message becomes (t.mu held) and
// returns the server connection to write t.out to, or nil.
func (c *clientConn) txMessageLocked(typ byte, frame []byte, fx *sqlguard.Effects) (*pool.Conn, error) {
	t := &c.tx
	if t.skip {
		if typ == 'S' {
			t.skip = false
			return nil, c.answerLocally(&pgproto3.ReadyForQuery{TxStatus: t.status})
		}
		return nil, nil
	}
	if t.server != nil && t.serverSkipping {
		// The server ignores everything until a Sync after an
		// extended-protocol error: so does the relay, owing nothing.
		if typ != 'S' {
			return nil, nil
		}
		t.serverSkipping = false
	}
	if t.server == nil {
		if done, err := c.withoutServer(typ, frame); done || err != nil {
			return nil, err
		}
		if err := c.attach(typ, frame, fx); err != nil {
			return nil, err
		}
		if t.server == nil { // no server: the error was sent
			return nil, nil
		}
	} else if t.unconfirmed && startsCommand(typ) {
		// The short switch in front of this attachment's first query is
		// not known to have committed: if that query fails, the server is
		// back on the previous context, whatever it was. Switch again,
		// durably, from an unknown state: every variable, the role and
		// every tracked setting set or reset.
		t.server.Context, t.server.Settings = "", unknownSettings()
		c.queueSwitch(t.server, false)
	}
	if err := c.forwardTx(typ, frame, fx); err != nil {
		return nil, err
	}
	return t.server, nil
}

// guardTx runs the guard (with the transaction-mode rules) on Query and
// Parse, and refuses what transaction pooling cannot track.
func (c *clientConn) guardTx(typ byte, frame []byte) (*sqlguard.Effects, []byte, error) {
	if typ == 'F' {
		f, err := c.guard(typ, frame)
		return nil, f, err
	}
	if typ != 'Q' && typ != 'P' {
		return nil, frame, nil
	}
	g := c.lc.txGuard
	sql, err := sqlOf(typ, frame)
	if err != nil {
		return nil, nil, wire.Fatal(wire.CodeProtocolViolation, "invalid message format: %v", err)
	}
	fx, err := g.CheckTx(typ, sql)
	if err == nil && fx != nil {
		err = c.checkEffects(typ, frame, fx)
	}
	if err != nil {
		c.logger().Info("statement refused by the SQL guard", "reason", err.Error())
		var we *wire.Error
		if hook := c.srv.Hooks.GuardReject; hook != nil && errors.As(err, &we) {
			hook(we.Rule)
		}
		return nil, c.refuse(typ, frame, err), nil
	}
	return fx, frame, nil
}

// checkEffects refuses session settings that could not be tracked
// exactly: in the extended protocol (where a statement may run any number
// of times, or never) and inside a transaction block (which may roll back).
//
// In the extended protocol a SET is tracked when it is an unnamed
// statement (pgJDBC sends its startup SETs so): its effects ride on the
// Execute of the unnamed portal and count once the Sync ends the implicit
// transaction without error.
func (c *clientConn) checkEffects(typ byte, frame []byte, fx *sqlguard.Effects) error {
	if len(fx.Settings) == 0 && !fx.DeallocateAll {
		return nil
	}
	what := "session-level SET"
	if len(fx.Settings) == 0 {
		what = "DEALLOCATE ALL"
	}
	c.tx.mu.Lock()
	status := c.tx.status
	c.tx.mu.Unlock()
	switch {
	case typ == 'P' && (fx.DeallocateAll || !unnamedParse(frame)):
		return txRefusal(what + " must be sent as a simple query or an unnamed statement in transaction pooling")
	case len(fx.Settings) > 0 && (status != 'I' || fx.TxControl):
		return txRefusal("session-level SET inside a transaction block is not supported in transaction pooling")
	}
	return nil
}

func unnamedParse(frame []byte) bool { return len(frame) > 5 && frame[5] == 0 }

func txRefusal(msg string) *wire.Error {
	return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeFeatureNotSupported, Message: msg, Rule: "session_set",
		Hint: "Send SET on its own, outside BEGIN ... COMMIT, with the simple query protocol; or use SET LOCAL inside the transaction. See docs/pooling.md."}
}

// withoutServer answers the messages that need no server connection when
// the client has none: a lone Sync, a Flush, closing a named statement.
func (c *clientConn) withoutServer(typ byte, frame []byte) (bool, error) {
	t := &c.tx
	switch typ {
	case 'S':
		return true, c.answerLocally(&pgproto3.ReadyForQuery{TxStatus: t.status})
	case 'H', 'd', 'c', 'f':
		// PostgreSQL ignores COPY messages outside COPY; borrowing a
		// server connection for them would hold it with nothing owed.
		return true, nil
	case 'C':
		if kind, name, ok := closeTarget(frame); ok && kind == 'S' && name != "" {
			delete(t.stmts, name)
			return true, c.answerLocally(&pgproto3.CloseComplete{})
		}
	}
	return false, nil
}

func (c *clientConn) answerLocally(m pgproto3.BackendMessage) error {
	c.writeMsg(m)
	if m, ok := m.(*pgproto3.ReadyForQuery); ok {
		c.noteServerReady(m.TxStatus)
		if c.sess != nil {
			c.noteReady(m.TxStatus)
		}
		c.setState(txState(m.TxStatus))
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("%w: %v", errSilent, err)
	}
	return nil
}

// attach borrows a server connection for the client (t.mu held; released
// while waiting). If none can be had, the client gets the error and, for
// extended-protocol messages, the rest up to Sync is discarded.
func (c *clientConn) attach(typ byte, frame []byte, fx *sqlguard.Effects) error {
	t := &c.tx
	t.unlock()
	sc, err := c.acquireServer()
	t.mu.Lock()
	if err != nil {
		we := c.acquireError(err, false)
		if we.Severity == wire.SeverityFatal {
			return we
		}
		c.writeMsg(we.Response())
		if typ == 'Q' || typ == 'S' {
			return c.answerLocally(&pgproto3.ReadyForQuery{TxStatus: t.status})
		}
		t.skip = true
		if err := c.flush(); err != nil {
			return fmt.Errorf("%w: %v", errSilent, err)
		}
		return nil
	}
	t.server = sc
	t.serverSkipping = false
	t.attachedAt = c.monoNow()
	sc.Holder.Store(c.id)
	t.unconfirmed = false
	if t.q == nil {
		t.q = make([]owed, 0, 8) // a switch and a short batch fit
	}
	if sc.Context != t.ctxKey || !maps.Equal(sc.Settings, t.settings) {
		// A query that SETs gets the full form: under the short form, a
		// command pipelined behind it is re-switched from the client's
		// settings before that SET is known, which would undo it on the
		// server while multigres records it.
		short := typ == 'Q' && !mayControlTransaction(frame) && sameShaping(sc.Settings, t.settings) &&
			(fx == nil || len(fx.Settings) == 0)
		c.queueSwitch(sc, short)
	}
	return nil
}

// shapingSettings shape the transaction a statement starts, or bound the
// statements in it: under the short switch the client's query runs in the
// transaction the switch began, under the connection's previous values
// (read-only, serializable, another client's statement_timeout timer).
var shapingSettings = []string{"default_transaction_isolation", "default_transaction_read_only",
	"default_transaction_deferrable", "statement_timeout", "lock_timeout"}

// sameShaping reports whether a connection's settings and a client's agree
// on every shaping setting, so the short switch may share the client's
// transaction.
func sameShaping(server, client map[string]string) bool {
	for _, name := range shapingSettings {
		sv, sok := server[name]
		cv, cok := client[name]
		if sok != cok || sv != cv {
			return false
		}
	}
	return true
}

// shapesTransactions reports whether a connection may carry another
// client's transaction defaults (or unknown ones): the full switch then
// opens its own transaction with explicit characteristics, so that it
// never runs read-only, serializable or deferrable because of them.
func shapesTransactions(server map[string]string) bool {
	for _, name := range shapingSettings[:3] {
		if _, ok := server[name]; ok {
			return true
		}
	}
	return false
}

// queueSwitch writes the context switch in front of the client's message,
// without a Sync, and owes the client nothing for it:
//
//	Bind/Execute mg_switch_N  SELECT set_config($1,$2,false), … (role too)
//	Bind/Execute mg_commit    COMMIT          (not in the short form)
//
// Both statements are prepared once per server connection (a Parse goes
// first the first time). Because no Sync follows, an error anywhere makes
// the server skip every client message up to the client's Sync (a simple
// Query too), so no client statement can run under the previous context;
// the error is fatal for the client (errSwitchFailed). The COMMIT ends the
// implicit transaction the SELECT opened, so the switch is durable before
// the client's statements run (their rollback cannot undo it) and the
// client starts a fresh transaction (BEGIN ISOLATION LEVEL still works).
// The COMMIT outside a block draws a WARNING, swallowed with the rest.
//
// The short form, for a simple Query with no transaction control in its
// text, leaves the SELECT in the query's implicit transaction: if the
// query fails, the switch rolls back with it and none of the query's
// later statements run; the connection's context is then unknown (see
// readyTx), and any further command from the client before that query's
// ReadyForQuery gets the full form first (t.unconfirmed).
func (c *clientConn) queueSwitch(sc *pool.Conn, short bool) {
	t := &c.tx
	bctx := t.ctx
	bctx.MACs = c.macs(sc.PID)
	names := slices.Sorted(maps.Keys(t.settings))
	bctx.Variables = append(slices.Clone(bctx.Variables), names...)
	bctx.Values = slices.Clone(bctx.Values)
	for _, n := range names {
		bctx.Values = append(bctx.Values, t.settings[n])
	}
	bctx.Resets = resetsFor(sc.Settings, t.settings)
	bctx.PreResets = preResets(t.settings)
	params := backend.SetConfigParams(bctx, true)
	n := strconv.Itoa(len(params) / 2)
	if bctx.Primed > 0 {
		n += "p" + strconv.Itoa(bctx.Primed)
	}
	sql := backend.SetConfigSQL(len(params)/2, bctx.Primed)
	t.unconfirmed = short
	if short {
		c.injectPrepared(sc, "mg_switch_"+n, sql, params)
	} else {
		if shapesTransactions(sc.Settings) {
			c.injectPrepared(sc, "mg_begin", switchBegin, nil)
		}
		c.injectPrepared(sc, "mg_switchq_"+n, sql+quietCommit, params)
		c.injectPrepared(sc, "mg_commit", "COMMIT", nil)
	}
	sc.Context, sc.Settings, sc.UnnamedOwner = t.ctxKey, t.settings, 0
}

// switchBegin opens the full switch's transaction with the defaults'
// values spelled out, when the connection's previous client may have set
// them: a read-only default would fail a signed switch, and a serializable
// deferrable one could make it wait for a safe snapshot.
const switchBegin = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE, NOT DEFERRABLE"

// quietCommit keeps the full switch's COMMIT from sending its WARNING
// ("there is no transaction in progress"): PostgreSQL flushes every notice
// at once, which costs the server a write and the proxy a read on every
// switch (measured: about a third of the TPS of a one-row lookup). The
// setting is local to the switch's own transaction, which the COMMIT ends,
// so the client never runs under it; the short form, which shares the
// client's transaction, must not use it.
const quietCommit = ", pg_catalog.set_config('client_min_messages', 'error', true)"

// startsCommand reports whether a client message can run SQL (or set up
// what runs it); COPY data, Flush and Sync cannot.
func startsCommand(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'E', 'D', 'C', 'F':
		return true
	}
	return false
}

// txControlWords are the keywords without which a simple query cannot
// end, roll back or reshape its transaction (a procedure or DO block can
// COMMIT or ROLLBACK), nor run a command that refuses to run in a pipeline
// (which the short switch's uncommitted Execute makes it). Keywords cannot
// be quoted or escaped, so looking for them as words in the text (inside
// strings and comments too) over-approximates, which only costs the full
// switch.
var txControlWords = []string{"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
	"prepare", "call", "do", "transaction", "lock", "vacuum", "analyze", "analyse", "concurrently", "database",
	"system", "tablespace", "subscription", "reindex", "cluster", "replication", "discard"}

// mayControlTransaction reports whether a Query's text may contain one of
// txControlWords.
func mayControlTransaction(frame []byte) bool {
	sql := bytes.ToLower(frame[5:])
	for _, w := range txControlWords {
		for i := 0; ; {
			j := bytes.Index(sql[i:], []byte(w))
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(w)
			if (start == 0 || !identStart(sql[start-1])) && (end == len(sql) || !identChar(sql[end])) {
				return true
			}
			i = start + 1
		}
	}
	return false
}

// identStart: a byte that, before a keyword, would make it part of an
// identifier instead (a digit would not: 1begin lexes as 1 and begin).
func identStart(b byte) bool { return b >= 'a' && b <= 'z' || b == '_' || b >= 0x80 }

func identChar(b byte) bool { return identStart(b) || b >= '0' && b <= '9' || b == '$' }

// injectPrepared queues Bind/Execute of one of multigres' own statements,
// preparing it first on a connection that lacks it; every answer is
// swallowed and any error is fatal.
func (c *clientConn) injectPrepared(sc *pool.Conn, name, sql string, params [][]byte) {
	t := &c.tx
	if !sc.Internal[name] {
		sc.Internal[name] = true
		t.out = append(t.out, buildFrame('P', []byte(name), []byte{0}, []byte(sql), []byte{0}, []byte{0, 0})...)
		t.q = append(t.q, owed{kind: 'P', action: owedSwallow, injected: true})
	}
	t.out, _ = (&pgproto3.Bind{PreparedStatement: name, Parameters: params}).Encode(t.out)
	t.out = append(t.out, executeUnnamed...)
	t.q = append(t.q, owed{kind: 'B', action: owedSwallow, injected: true}, owed{kind: 'E', action: owedSwallow, injected: true})
}

var executeUnnamed = mustEncode(&pgproto3.Execute{})

// forwardTx sends one client message to the attached server, renaming
// prepared statements and preparing them on demand (t.mu held).
func (c *clientConn) forwardTx(typ byte, frame []byte, fx *sqlguard.Effects) error {
	t := &c.tx
	sc := t.server
	if t.copyIn && typ != 'd' && typ != 'c' && typ != 'f' && typ != 'H' && typ != 'S' {
		return errCopyPipelined
	}
	switch typ {
	case 'P':
		return c.forwardParse(frame, fx)
	case 'B':
		return c.forwardBind(frame)
	case 'D':
		return c.forwardDescribe(frame)
	case 'C':
		return c.forwardClose(frame)
	case 'Q':
		// A simple query drops the server's unnamed statement.
		sc.UnnamedOwner = 0
		t.q = append(t.q, owed{kind: 'Q', fx: fx})
	case 'E':
		o := owed{kind: 'E', txc: true}
		if len(frame) > 5 && frame[5] == 0 && t.portalKnown { // the unnamed portal, the client's unnamed statement
			o.fx = t.portalFx
			o.txc = o.fx != nil && o.fx.TxControl
		}
		t.q = append(t.q, o)
	case 'S':
		if !t.copyIn { // during COPY IN the server ignores Sync
			t.q = append(t.q, owed{kind: 'S'})
		} else {
			t.copySyncs++ // see copyFailed
		}
	case 'c', 'f':
		if t.copyIn {
			t.copyIn = false // copySyncs stays until the COPY's outcome is known
			t.copyFailSent = typ == 'f'
		} else {
			// The copy may not have started yet: mark where its data
			// ends (see enterCopyIn).
			t.q = append(t.q, owed{kind: 'c'})
		}
	case 'H', 'd':
	default:
		return wire.Fatal(wire.CodeProtocolViolation, "invalid frontend message type %d", typ)
	}
	return c.send(frame)
}

// send queues frame for the server (written once t.mu is released).
func (c *clientConn) send(frame []byte) error {
	c.tx.out = append(c.tx.out, frame...)
	return nil
}

// owe adds an entry; a synthesized answer with nothing owed before it goes
// to the client at once.
func (c *clientConn) owe(o owed) {
	t := &c.tx
	if o.action == owedSynth && len(t.q) == 0 {
		c.writeRaw(o.synth)
		return
	}
	t.q = append(t.q, o)
}

func (c *clientConn) forwardParse(frame []byte, fx *sqlguard.Effects) error {
	t := &c.tx
	name, rest, ok := cstring(frame[5:])
	if !ok {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Parse message")
	}
	if bytes.HasPrefix(rest, []byte(refusalPrefix)) {
		// A refusal: parse it unnamed so nothing is registered.
		t.server.UnnamedOwner = 0
		t.q = append(t.q, owed{kind: 'P'})
		return c.send(buildFrame('P', []byte{0}, rest))
	}
	if name == "" {
		t.unnamed = &txStmt{parse: slices.Clone(frame), id: unnamedIDs.Add(1), fx: fx}
		t.server.UnnamedOwner = t.unnamed.id
		t.q = append(t.q, owed{kind: 'P', unnamed: true})
		return c.send(frame)
	}
	if _, dup := t.stmts[name]; dup {
		return c.refuseTx('P', &wire.Error{Severity: wire.SeverityError, Code: wire.CodeDuplicatePreparedStatement,
			Message: fmt.Sprintf("prepared statement %q already exists", name)})
	}
	srv := serverName(t.salt, rest)
	st := &txStmt{srv: srv, parse: buildFrame('P', []byte(srv), []byte{0}, rest)}
	if t.stmts == nil {
		t.stmts = map[string]*txStmt{}
	}
	t.stmts[name] = st
	// In an aborted transaction block the server refuses a Parse (25P02),
	// so multigres must not answer for it.
	if t.status != 'E' && t.server.Prepared.Has(srv) {
		c.owe(owed{kind: 'P', action: owedSynth, synth: parseComplete, stmt: name, srv: srv, named: true})
		return nil
	}
	return c.prepareOnServer(st, owed{kind: 'P', stmt: name, srv: srv, named: true})
}

// prepareOnServer sends st's Parse, closing the statement the LRU evicts.
func (c *clientConn) prepareOnServer(st *txStmt, o owed) error {
	t := &c.tx
	sc := t.server
	if ev := sc.Prepared.Add(st.srv); ev != "" {
		c.closeOnServer(ev)
	}
	for name := range sc.Orphans {
		if name != st.srv {
			c.closeOnServer(name)
		}
	}
	// Close first: a statement of this name may be on the server although
	// multigres forgot it (an orphan); the server name is the SQL's hash,
	// so it is the same statement, but Parse would fail with 42P05.
	// Closing a missing statement is no error.
	orphan := sc.Orphans[st.srv]
	delete(sc.Orphans, st.srv)
	if err := c.send(buildFrame('C', []byte{'S'}, []byte(st.srv), []byte{0})); err != nil {
		return err
	}
	closing := owed{kind: 'C', action: owedSwallow}
	if orphan {
		closing.srv = st.srv // skipped, it stays an orphan
	}
	t.q = append(t.q, closing, o)
	return c.send(st.parse)
}

// closeOnServer queues the Close of a server statement multigres no longer
// keeps (t.mu held); if an error makes the server skip it, skipToSync
// records the statement as an orphan.
func (c *clientConn) closeOnServer(name string) {
	t := &c.tx
	delete(t.server.Orphans, name)
	t.out = append(t.out, buildFrame('C', []byte{'S'}, []byte(name), []byte{0})...)
	t.q = append(t.q, owed{kind: 'C', action: owedSwallow, srv: name})
}

// ensurePrepared makes a statement the client refers to exist on the
// attached server, injecting its Parse (answer swallowed) if needed. It
// returns the server name, or ok=false when the client has no such
// statement.
func (c *clientConn) ensurePrepared(name string) (string, bool, error) {
	t := &c.tx
	if name == "" {
		if t.unnamed == nil {
			return "", false, nil
		}
		if t.server.UnnamedOwner != t.unnamed.id {
			t.server.UnnamedOwner = t.unnamed.id
			t.q = append(t.q, owed{kind: 'P', action: owedSwallow, unnamed: true})
			return "", true, c.send(t.unnamed.parse)
		}
		return "", true, nil
	}
	st := t.stmts[name]
	if st == nil {
		return "", false, nil
	}
	if !t.server.Prepared.Has(st.srv) {
		if err := c.prepareOnServer(st, owed{kind: 'P', action: owedSwallow, srv: st.srv}); err != nil {
			return "", false, err
		}
	}
	return st.srv, true, nil
}

func (c *clientConn) forwardBind(frame []byte) error {
	body := frame[5:]
	portal, rest, ok := cstring(body)
	stmt, tail, ok2 := cstring(rest)
	if !ok || !ok2 {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Bind message")
	}
	srv, found, err := c.ensurePrepared(stmt)
	if err != nil {
		return err
	}
	if !found {
		return c.refuseTx('B', noSuchStatement(stmt))
	}
	if stmt == "" && portal != "" && c.tx.unnamed.fx != nil {
		// Effects are tracked on the unnamed portal only.
		return c.refuseTx('B', txRefusal("a session-level SET must be executed through the unnamed portal in transaction pooling"))
	}
	c.tx.q = append(c.tx.q, owed{kind: 'B'})
	if portal == "" {
		c.tx.portalFx, c.tx.portalKnown = nil, stmt == ""
		if stmt == "" {
			c.tx.portalFx = c.tx.unnamed.fx
		}
	}
	if srv == stmt {
		return c.send(frame)
	}
	return c.send(buildFrame('B', []byte(portal), []byte{0}, []byte(srv), []byte{0}, tail))
}

func (c *clientConn) forwardDescribe(frame []byte) error {
	body := frame[5:]
	if len(body) < 2 {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Describe message")
	}
	if body[0] != 'S' {
		c.tx.q = append(c.tx.q, owed{kind: 'D'})
		return c.send(frame)
	}
	name, _, ok := cstring(body[1:])
	if !ok {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Describe message")
	}
	srv, found, err := c.ensurePrepared(name)
	if err != nil {
		return err
	}
	if !found {
		return c.refuseTx('D', noSuchStatement(name))
	}
	c.tx.q = append(c.tx.q, owed{kind: 'D'})
	return c.send(buildFrame('D', []byte{'S'}, []byte(srv), []byte{0}))
}

func (c *clientConn) forwardClose(frame []byte) error {
	t := &c.tx
	kind, name, ok := closeTarget(frame)
	if !ok {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid Close message")
	}
	if kind == 'S' && name != "" {
		// The server statement may serve other clients: keep it.
		delete(t.stmts, name)
		c.owe(owed{kind: 'C', action: owedSynth, synth: closeComplete})
		return nil
	}
	if kind == 'S' {
		t.unnamed = nil
		t.server.UnnamedOwner = 0
	}
	t.q = append(t.q, owed{kind: 'C'})
	return c.send(frame)
}

// refuseTx makes the server fail in the client's message's place, so the
// transaction and skip-to-Sync semantics stay PostgreSQL's.
func (c *clientConn) refuseTx(kind byte, we *wire.Error) error {
	c.tx.server.UnnamedOwner = 0
	c.tx.q = append(c.tx.q, owed{kind: kind})
	return c.send(c.refuse('P', buildFrame('P', []byte{0}, []byte("x"), []byte{0}, []byte{0, 0}), we))
}

func noSuchStatement(name string) *wire.Error {
	msg := fmt.Sprintf("prepared statement %q does not exist", name)
	if name == "" {
		msg = "unnamed prepared statement does not exist"
	}
	return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeInvalidSQLStatementName, Message: msg}
}

var (
	parseComplete = mustEncode(&pgproto3.ParseComplete{})
	closeComplete = mustEncode(&pgproto3.CloseComplete{})
)

// mustEncode encodes a fixed protocol message once, at start-up.
func mustEncode(m interface{ Encode([]byte) ([]byte, error) }) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func cstring(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

func closeTarget(frame []byte) (byte, string, bool) {
	body := frame[5:]
	if len(body) < 2 || (body[0] != 'S' && body[0] != 'P') {
		return 0, "", false
	}
	name, _, ok := cstring(body[1:])
	return body[0], name, ok
}

func (c *clientConn) writeRaw(frame []byte) {
	c.wmu.Lock()
	_, _ = c.w.Write(frame)
	c.wmu.Unlock()
}

// pumpServerTx relays one attachment's server answers until the connection
// goes back to the pool.
func (c *clientConn) pumpServerTx(sc *pool.Conn, done chan struct{}) {
	defer close(done)
	defer c.recoverPanic("server pump")
	for {
		release, err := c.serverStep(sc)
		if err != nil {
			c.serverLost(sc, err)
			return
		}
		if release {
			return
		}
	}
}

// serverStep reads and handles one server message (for either reader of
// sc); release reports that the connection went back to the pool.
func (c *clientConn) serverStep(sc *pool.Conn) (release bool, err error) {
	typ, frame, err := sc.Frames.Next()
	if err != nil {
		return false, err
	}
	if typ == 'D' || typ == 'd' {
		c.forwardRow(sc, frame)
		return false, nil
	}
	return c.serverFrameTx(sc, typ, frame)
}

// forwardRow passes a DataRow or CopyData to the client. Rows and COPY
// data complete nothing: they go to the client without t.mu, so a result
// streams even while the client pump holds t.mu writing a long pipeline to
// this same server (which otherwise deadlocks: the server stops reading
// until its output drains).
func (c *clientConn) forwardRow(sc *pool.Conn, frame []byte) {
	if !c.tx.rowsForward.Load() {
		return
	}
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

// serverLost ends the client after its server connection failed or the
// proxy found it unsafe; the connection is closed, not pooled.
func (c *clientConn) serverLost(sc *pool.Conn, err error) {
	t := &c.tx
	t.mu.Lock()
	gone := t.gone
	if t.server == sc {
		t.server, t.pumpDone = nil, nil
	}
	t.q = nil
	t.unlock()
	t.cancels.Wait()
	c.releaseServer(sc, false)
	if gone {
		return
	}
	switch {
	case errors.Is(err, errUnsafeParameter):
		c.fail(wire.Fatal(wire.CodeInsufficientPrivilege, "multigres closed the connection: the server now reads SQL in a way the SQL guard cannot check").
			WithHint("Keep client_encoding UTF8 (or another ASCII-safe encoding) and standard_conforming_strings on."))
	case errors.Is(err, errSwitchFailed):
		c.logger().Warn("switching the tenant context failed; closing", "err", err)
		c.fail(wire.Fatal(wire.CodeConnectionFailure, "multigres could not set the tenant context on a pooled server connection").
			WithHint(contextHint(err.Error(), "Reconnect. If this persists, check the server log and the role's grants.")))
	case errors.Is(err, errServerClosing):
		c.logger().Info("server ended the session")
	case errors.Is(err, errCopyPipelined), errors.Is(err, errCopyUncertain):
		c.fail(err)
	case !isClosed(err):
		c.logger().Info("server connection ended", "err", err)
		c.fail(wire.Fatal(wire.CodeConnectionFailure, "the server connection was lost").WithHint("Reconnect."))
	}
	c.kill()
}

var errSwitchFailed = errors.New("context switch failed")

// errServerClosing: the server sent an unsolicited error (a FATAL), which
// the client has already been given.
var errServerClosing = errors.New("server ended the session")

// serverFrameTx handles one server message; release reports that the
// connection went back to the pool. The frame is written to the client
// under t.mu, before the entry it completes is popped, so answers that
// multigres gives itself come out exactly in protocol order.
func (c *clientConn) serverFrameTx(sc *pool.Conn, typ byte, frame []byte) (release bool, err error) {
	t := &c.tx
	t.mu.Lock()
	c.emitSynth()
	if len(t.q) == 0 {
		return c.unownedFrame(sc, typ, frame)
	}
	head := &t.q[0]
	forward := head.action == owedForward && !t.gone
	pop := false
	switch typ {
	case 'S':
		sc.NoteParameterStatus(frame)
		forward = !t.gone
	case 'N':
		forward = !t.gone && !head.injected
	case 'A':
		forward = !t.gone
	case 'G':
		if err := c.enterCopyIn(); err != nil {
			t.unlock()
			return false, err
		}
	case 'E':
		if head.injected {
			t.unlock()
			return false, fmt.Errorf("%w: %s", errSwitchFailed, pgMessage(decodeServerError(frame)))
		}
		forward = !t.gone
		var copyErr error
		if t.copyOpen {
			copyErr = c.copyFailed(frame)
		}
		t.copyIn, t.copyOpen = false, false
		if copyErr != nil {
			_ = c.forwardToClient(sc, typ, frame, true) // the copy's own error first
			t.unlock()
			return false, copyErr
		}
	case 'Z':
		if head.kind != 'S' && head.kind != 'Q' {
			t.unlock()
			return false, fmt.Errorf("ReadyForQuery where %q was owed", head.kind)
		}
		return c.readyTx(sc, frame, forward)
	case '1', '2', '3':
		// ParseComplete answers a Parse, BindComplete a Bind,
		// CloseComplete a Close: anything else means the relay's queue and
		// the server disagree, and the connection cannot be trusted.
		if want := map[byte]byte{'1': 'P', '2': 'B', '3': 'C'}[typ]; head.kind != want {
			t.unlock()
			return false, fmt.Errorf("server sent %q where %q was owed", typ, head.kind)
		}
		pop = true
	case 'T', 'n':
		pop = head.kind == 'D'
	case 'C', 'I', 's':
		if typ == 'C' && t.copyOpen {
			// The COPY succeeded: Syncs sent in its window were read and
			// ignored in copy mode.
			t.copyOpen, t.copySyncs, t.copyFailSent = false, 0, false
		}
		if head.kind == 'E' {
			if head.fx != nil && typ == 'C' {
				t.batchFx = append(t.batchFx, head.fx)
			}
			t.batchTx = t.batchTx || head.txc
			pop = true
		}
		if typ == 'C' && head.kind == 'Q' && head.fx != nil && head.fx.DeallocateAll && bytes.HasPrefix(frame[5:], []byte("DEALLOCATE ALL\x00")) {
			c.deallocatedAll(sc)
		}
	}
	if forward {
		err = c.forwardToClient(sc, typ, frame, false)
	}
	if typ == 'E' && (len(t.batchFx) > 0 || head.kind == 'Q' && head.fx != nil && len(head.fx.Settings) > 0) {
		// Settings ran before this error in the same batch. Whether they
		// rolled back depends on what else ran in between (a COMMIT, a
		// simple Query, a procedure): multigres cannot know, so the
		// connection's settings are unknown and the next switch resets
		// them all. The client's own settings stay as they were.
		sc.Settings = unknownSettings()
	}
	switch {
	case typ == 'E' && head.kind == 'Q':
		head.failed = true
	case typ == 'E':
		t.batchFx = nil
		c.skipToSync()
	case pop:
		c.pop()
	}
	t.unlock()
	return false, err
}

// unownedFrame handles a server message when nothing is owed (t.mu held;
// released here): notices and parameter changes, a FATAL the server sends
// on its own, or a ReadyForQuery for a Sync multigres took for ignored.
func (c *clientConn) unownedFrame(sc *pool.Conn, typ byte, frame []byte) (bool, error) {
	t := &c.tx
	switch typ {
	case 'N', 'A', 'S':
		if typ == 'S' {
			sc.NoteParameterStatus(frame)
		}
		err := c.forwardToClient(sc, typ, frame, true)
		t.unlock()
		return false, err
	case 'E':
		// A FATAL the server sends on its own (idle-in-transaction
		// timeout, terminated by an administrator) is the client's to see;
		// the connection ends with it.
		_ = c.forwardToClient(sc, typ, frame, true)
		t.unlock()
		return false, errServerClosing
	case 'Z':
		// A Sync sent during COPY that the server answered after all
		// (after an error ended the copy): the client is owed it.
		t.q = append(t.q, owed{kind: 'S'})
		return c.readyTx(sc, frame, !t.gone)
	}
	t.unlock()
	return false, fmt.Errorf("unexpected %q from server with nothing owed", typ)
}

// enterCopyIn: the server is reading COPY data, and until the copy ends it
// ignores Sync and Flush. Syncs the client already pipelined behind the
// COPY (before its CopyDone) will get no ReadyForQuery, so they are owed
// nothing; neither are Syncs it sends before CopyDone.
//
// Whether the server answers such a Sync depends on whether the copy
// fails before the server reads it (copySyncs counts them; see
// copyFailed). Anything else
// the client sent between the COPY and its CopyDone the server would read
// as COPY data or fail on: PostgreSQL clients never do it, and multigres
// cannot tell what the server will then do, so it ends the client
// (errCopyPipelined) rather than guess.
func (c *clientConn) enterCopyIn() error {
	t := &c.tx
	t.copyIn, t.copyOpen = true, true
	t.copySyncs = 0
	kept := t.q[:1]
	for k, o := range t.q[1:] {
		if o.kind == 'c' { // the client's CopyDone/CopyFail: copy data ended there
			t.copyIn = false
			kept = append(kept, t.q[1+k+1:]...)
			break
		}
		if o.kind != 'S' {
			return errCopyPipelined
		}
		t.copySyncs++
	}
	t.q = kept
	return nil
}

var errCopyPipelined = wire.Fatal(wire.CodeProtocolViolation, "only COPY data, CopyDone, CopyFail, Flush and Sync may be sent during COPY FROM STDIN")

// copyFailed: the server failed a COPY IN. A Sync the client sent in the
// COPY's window was read and ignored in copy mode if the server read it
// before it failed, and is answered now if not: a COPY can fail before
// reading anything (COPY FREEZE's checks come after CopyInResponse), or
// after the data that followed the Sync. With any such Sync multigres
// cannot know which answers come, so it ends the client and closes the
// connection. Clients that COPY with a simple query send no Sync then.
//
// One failure is certain: the client's own CopyFail (57014), which the
// server reads after everything the client sent before it, in copy mode.
func (c *clientConn) copyFailed(errFrame []byte) error {
	t := &c.tx
	n, failSent := t.copySyncs, t.copyFailSent
	t.copySyncs, t.copyFailSent = 0, false
	if n == 0 {
		return nil
	}
	var we *wire.Error
	if failSent && errors.As(decodeServerError(errFrame), &we) && we.Code == wire.CodeQueryCanceled {
		return nil
	}
	return errCopyUncertain
}

var errCopyUncertain = wire.Fatal(wire.CodeProtocolViolation, "a COPY failed while a Sync sent with it was pending, so multigres cannot tell which answers follow; the connection is closed").
	WithHint("Start COPY FROM STDIN with a simple query, or send Sync only after CopyDone or CopyFail.")

// pop removes the head entry and emits synthesized answers now due.
func (c *clientConn) pop() {
	c.tx.q = c.tx.q[1:]
	c.emitSynth()
}

// emitSynth writes the answers multigres gives itself that are now due,
// and drops CopyDone markers at the head.
func (c *clientConn) emitSynth() {
	t := &c.tx
	for len(t.q) > 0 && (t.q[0].action == owedSynth || t.q[0].kind == 'c') {
		if t.q[0].action == owedSynth && !t.gone {
			c.writeRaw(t.q[0].synth)
		}
		t.q = t.q[1:]
	}
}

// skipToSync mirrors the server after an extended-protocol error: every
// entry up to the next Sync gets no answer, simple Queries included (the
// server discards them too). A failed Parse registers nothing; a
// statement whose injected Close never ran stays on the server as an
// orphan (closed by the next prepare).
func (c *clientConn) skipToSync() {
	t := &c.tx
	defer func() {
		// No Sync owed: the server skips whatever the client sends until
		// its next Sync (see txMessageLocked).
		t.serverSkipping = len(t.q) == 0
	}()
	for len(t.q) > 0 && t.q[0].kind != 'S' {
		o := t.q[0]
		if o.kind == 'C' && o.srv != "" {
			t.server.Orphans[o.srv] = true
		}
		if o.unnamed {
			// The server never replaced its unnamed statement (or dropped
			// it, when this Parse is the one that failed): whoever's it
			// is, it is not this client's.
			t.server.UnnamedOwner = 0
		}
		if o.kind == 'P' && o.named && t.stmts[o.stmt] != nil && t.stmts[o.stmt].srv == o.srv {
			delete(t.stmts, o.stmt) // the server would not have created it
		}
		if o.kind == 'P' && o.srv != "" && o.action != owedSynth {
			t.server.Prepared.Remove(o.srv)
		}
		t.q = t.q[1:]
	}
}

// readyTx handles ReadyForQuery (t.mu held; released here).
func (c *clientConn) readyTx(sc *pool.Conn, frame []byte, forward bool) (bool, error) {
	t := &c.tx
	head := t.q[0]
	t.q = t.q[1:]
	status := frame[5]
	sc.TxStatus = status
	c.noteEffects(sc, head, status)
	if !t.gone {
		t.status = status
	}
	var err error
	if forward {
		err = c.forwardToClient(sc, 'Z', frame, true)
	}
	c.emitSynth()
	release := len(t.q) == 0 && status == 'I'
	// A connection abandonTx closed and detached is never pooled again.
	reusable := t.server == sc
	if release {
		if reusable {
			t.pumpDone = nil // this goroutine (if a pump) ends now
		}
		t.q = nil // an idle client keeps no queue (attach makes one)
		t.server = nil
		t.copyIn, t.copyOpen, t.copySyncs = false, false, 0
		if t.gone {
			_ = sc.SetDeadline(time.Time{}) // abandonTx's rollback deadline
		}
	}
	t.unlock()
	if release {
		t.clearInline(sc)
		t.cancels.Wait()
		c.releaseServer(sc, reusable)
	}
	return release, err
}

// deallocatedAll: DEALLOCATE ALL ran (its CommandComplete came), which is
// not transactional: the server and the client have no statements left.
// Until then the model stays, since the server may skip or refuse it.
func (c *clientConn) deallocatedAll(sc *pool.Conn) {
	sc.Prepared.Clear()
	clear(sc.Internal)
	clear(sc.Orphans)
	clear(c.tx.stmts)
}

// noteEffects records, at a ReadyForQuery, what the query or batch it ends
// did to the session.
func (c *clientConn) noteEffects(sc *pool.Conn, head owed, status byte) {
	t := &c.tx
	txc := t.batchTx || head.kind == 'Q' && head.fx != nil && head.fx.TxControl
	t.batchTx = false
	if txc && len(t.batchFx) > 0 {
		// A ROLLBACK (or COMMIT, or a statement multigres cannot see
		// into) ran in the same batch as SETs: they may have been undone
		// or committed. The connection's settings are unknown; the
		// client's stay as they were.
		sc.Settings = unknownSettings()
		t.batchFx = nil
	}
	if head.kind == 'Q' && head.fx != nil && !head.failed {
		c.commitEffects(sc, head.fx, status)
	}
	if head.kind == 'Q' && t.unconfirmed {
		// The query that carried a short switch ended: committed with it,
		// or rolled back with it (the context is then the previous one).
		t.unconfirmed = false
		if head.failed {
			sc.Context = ""
			sc.Settings = unknownSettings()
		}
	}
	// An unnamed-statement SET counts once its implicit transaction ends
	// well: at the next Sync, or at a simple Query that commits it.
	if !head.failed {
		for _, fx := range t.batchFx {
			c.commitEffects(sc, fx, status)
		}
	}
	t.batchFx = nil
}

// commitEffects records what a successful simple query did to the
// session. A SET that ran inside a transaction block that is still open
// may yet roll back, so the connection's settings become unknown.
func (c *clientConn) commitEffects(sc *pool.Conn, fx *sqlguard.Effects, status byte) {
	t := &c.tx
	if len(fx.Settings) == 0 {
		return
	}
	if status != 'I' {
		sc.Settings = unknownSettings()
		return
	}
	// The server ran the client's SETs on top of the client's settings
	// (the switch made them equal), so both now hold the same new set.
	t.settings = withSettings(t.settings, fx.Settings)
	if _, ok := t.settings["datestyle"]; ok {
		// A partial DateStyle ("SQL") keeps the other half in effect:
		// keep the whole value the server reported, which means the same
		// wherever it is applied.
		for _, p := range sc.Params {
			if strings.EqualFold(p.Name, "DateStyle") {
				t.settings["datestyle"] = p.Value
			}
		}
	}
	sc.Settings = t.settings
	t.salt = stmtSalt(t.ctxKey, t.settings)
}

// forwardToClient writes a server frame to the client, flushing when the
// server has nothing more buffered (or always, with flush).
func (c *clientConn) forwardToClient(sc *pool.Conn, typ byte, frame []byte, flush bool) error {
	switch typ {
	case 'Z':
		status := frame[5]
		c.noteServerReady(status)
		if c.sess != nil {
			c.noteReady(status)
		}
		c.setState(txState(status))
	case 'E':
		if c.sess != nil {
			c.sess.Error()
		}
		if c.refused.count.Load() > 0 {
			frame = c.translateRefusal(frame)
		}
	case 'S':
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

func decodeServerError(frame []byte) error {
	var e pgproto3.ErrorResponse
	if err := e.Decode(frame[5:]); err != nil {
		return err
	}
	return &wire.Error{Severity: e.Severity, Code: e.Code, Message: e.Message}
}

// abandonTx cleans up after the client is gone: an idle-in-transaction
// server connection is rolled back and, once idle, pooled again; one with
// a statement in flight is cancelled and closed.
func (c *clientConn) abandonTx() {
	t := &c.tx
	if t.pool == nil {
		return
	}
	t.mu.Lock()
	t.gone = true
	sc, done := t.server, t.pumpDone
	switch {
	case sc == nil:
	case len(t.q) == 0 && (t.closeServer || c.tl.unsynced.Load()):
		// Extended-protocol messages without their Sync: after an error
		// the server skips a ROLLBACK until a Sync, and a Sync would
		// commit what the client never synced. Closing aborts it.
		sc.Close()
		t.server = nil
		if done == nil {
			t.unlock()
			c.releaseServer(sc, false)
			return
		}
	case len(t.q) == 0:
		_ = sc.SetDeadline(time.Now().Add(10 * time.Second))
		sc.UnnamedOwner = 0
		t.q = append(t.q, owed{kind: 'Q', action: owedSwallow})
		if _, err := sc.W.Write(rollbackQuery); err == nil {
			_ = sc.W.Flush()
		}
		if done == nil {
			// No server pump: read the rollback's answer here.
			t.unlock()
			c.abandonInline(sc)
			return
		}
	default:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = sc.Cancel(ctx)
		cancel()
		sc.Close()
		// Detached: the pump must not pool it even if a last
		// ReadyForQuery was already read (see readyTx).
		t.server = nil
		if done == nil { // no pump to give it back
			t.unlock()
			c.releaseServer(sc, false)
			return
		}
	}
	t.unlock()
	if sc != nil && done != nil {
		<-done
	}
}

// abandonInline reads the answer to abandonTx's ROLLBACK on the client
// pump; unless that leaves the connection idle and pooled, it is closed.
func (c *clientConn) abandonInline(sc *pool.Conn) {
	_ = c.pumpServerInline(sc)
	t := &c.tx
	t.mu.Lock()
	stuck := t.server == sc
	if stuck {
		t.server = nil
	}
	t.unlock()
	if stuck {
		c.releaseServer(sc, false)
	}
}

var rollbackQuery = buildFrame('Q', []byte("ROLLBACK"), []byte{0})

// cancelTx forwards a CancelRequest to the server connection running the
// client's query right now; with none attached, or nothing in flight, it
// does nothing.
func (c *clientConn) cancelTx() bool {
	t := &c.tx
	t.mu.Lock()
	sc := t.server
	if sc == nil || len(t.q) == 0 {
		t.unlock()
		return false
	}
	t.cancels.Add(1)
	t.unlock()
	defer t.cancels.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sc.Cancel(ctx); err != nil {
		c.srv.Logger.Warn("forwarding cancel request failed", "err", err)
	}
	return true
}

// unlock publishes whether rows for the head entry go to the client, then
// releases t.mu. The head changes only under t.mu, and rows for an entry
// arrive only after it is the head.
func (t *txConn) unlock() {
	t.rowsForward.Store(!t.gone && len(t.q) > 0 && t.q[0].action == owedForward)
	t.mu.Unlock()
}

// unnamedIDs gives every unnamed Parse a process-unique identity (see
// pool.Conn.UnnamedOwner).
var unnamedIDs atomic.Uint64
