package frontend

import (
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// relay pumps frames both ways until either side ends (session mode: the
// client keeps its server connection for its whole life).
// sessionRelay is the session-mode handler: the client keeps one server
// connection for its whole life, and frames are pumped both ways until
// either side ends.
type sessionRelay struct {
	c *clientConn
}

func (s *sessionRelay) run() {
	c := s.c
	server := c.currentServer()
	frames := wire.NewFrameReader(c.rd, c.lc.cfg.MaxMessageSize).WithBudget(&c.srv.msgBudget)
	defer frames.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer c.recoverPanic("server pump")
		err := s.pumpServer(server)
		if errors.Is(err, errUnsafeParameter) {
			c.fail(wire.Fatal(wire.CodeInsufficientPrivilege, "multigres closed the connection: the server now reads SQL in a way the SQL guard cannot check").
				WithHint("Keep client_encoding UTF8 (or another ASCII-safe encoding) and standard_conforming_strings on."))
		}
		if err != nil && !isClosed(err) {
			c.logger().Info("server connection ended", "err", err)
		}
		// Unblock the client pump.
		c.kill()
	}()
	err := s.pumpClient(frames, server)
	if err != nil && !isClosed(err) {
		c.logger().Info("client connection ended", "err", err)
		c.fail(err)
	}
	c.kill()
	<-done
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errSilent)
}

// pumpClient forwards client frames to the server. Only Query and Parse
// are looked at (by the Guard); everything else passes as raw bytes.
func (s *sessionRelay) pumpClient(frames *wire.FrameReader, server *backend.Conn) error {
	c := s.c
	for {
		typ, frame, err := c.nextClientFrame(frames)
		if err != nil {
			return err
		}
		if wire.ClientType(typ) == wire.Terminate {
			_, _ = server.W.Write(frame)
			_ = server.W.Flush()
			return errSilent
		}
		if _, frame, err = c.guardMessage(c.lc.guard, typ, frame); err != nil {
			return err
		}
		if _, err := server.W.Write(frame); err != nil {
			return fmt.Errorf("write to server: %w", err)
		}
		if frames.Buffered() == 0 {
			if err := server.W.Flush(); err != nil {
				return fmt.Errorf("write to server: %w", err)
			}
		}
	}
}

// nextClientFrame reads the next client message and does what every
// message does first, in either pool mode: idle-timeout bookkeeping, the
// state, PAUSE, and the session observer.
func (c *clientConn) nextClientFrame(frames *wire.FrameReader) (byte, []byte, error) {
	for {
		typ, frame, err := frames.Next()
		if err != nil {
			retry, ierr := c.idleReadError(err)
			if retry {
				continue
			}
			if errors.Is(ierr, wire.ErrBudget) {
				return 0, nil, wire.Fatal(wire.CodeOutOfMemory, "out of memory: multigres' buffers for large messages are full (max_message_memory = %d bytes)", c.srv.msgBudget.Limit).
					WithHint("Retry later, or send smaller messages; an operator can raise max_message_memory.")
			}
			var bl *wire.BadLengthError
			if errors.As(ierr, &bl) {
				return 0, nil, wire.Fatal(wire.CodeProtocolViolation, "%s", bl.Error())
			}
			var tl *wire.TooLargeError
			if errors.As(ierr, &tl) {
				return 0, nil, wire.Fatal(wire.CodeProtocolViolation, "message too large: %d bytes exceeds max_message_size (%d)", tl.Len, tl.Max).
					WithHint("Raise max_message_size, or send smaller messages.")
			}
			return 0, nil, ierr
		}
		c.noteClientFrame(typ)
		prev := c.State()
		c.setState(StateActive)
		if err := c.pauseQuery(prev, typ); err != nil {
			return 0, nil, err
		}
		if c.sess != nil {
			c.noteStatement(typ)
		}
		return typ, frame, nil
	}
}

// pumpServer forwards server frames to the client, flushing when the
// server has nothing more buffered, and tracks ReadyForQuery.
func (s *sessionRelay) pumpServer(server *backend.Conn) error {
	c := s.c
	for {
		typ, frame, err := server.Frames.Next()
		if err != nil {
			return err
		}
		st := wire.ServerType(typ)
		if st == wire.ReadyForQuery && len(frame) == 6 {
			server.TxStatus = frame[5]
			c.noteServerReady(frame[5])
			if c.sess != nil {
				c.noteReady(frame[5])
			}
			c.setState(txState(frame[5]))
		} else if st == wire.ErrorResponse && c.sess != nil {
			c.sess.Error()
		}
		if st == wire.ErrorResponse && c.refused.count.Load() > 0 {
			frame = c.translateRefusal(frame)
		}
		if st == wire.ParameterStatus && !c.ident.Bypass && c.unsafeParameter(frame) {
			// Backstop for the guard: the server now lexes SQL in a way
			// the guard does not (see unsafeParameter). End the session
			// before the client can send anything else.
			return errUnsafeParameter
		}
		c.wmu.Lock()
		_, err = c.w.Write(frame)
		if err == nil && server.Frames.Buffered() == 0 {
			err = c.w.Flush()
		}
		c.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("write to client: %w", err)
		}
	}
}

// guardMessage is the guard seam of both pool modes: every SQL-carrying
// message of a tenant connection passes here. A refused statement is
// replaced by one that makes the server raise the guard's error, so
// transaction and pipeline semantics (aborted transaction, skip to Sync)
// stay exactly PostgreSQL's. It returns the statement's session effects
// (transaction mode tracks them). g is nil when the guard is off in
// session mode.
func (c *clientConn) guardMessage(g *sqlGuard, typ byte, frame []byte) (*sqlguard.Effects, []byte, error) {
	if g == nil || c.ident.Bypass {
		return nil, frame, nil
	}
	switch wire.ClientType(typ) {
	case wire.FunctionCall:
		if c.lc.guard == nil {
			return nil, frame, nil // guard = off: the relay refuses it
		}
		// FunctionCall names a function by OID (set_config is 2078), so no
		// SQL text exists to inspect; libpq uses it only for large objects,
		// which tenants may not use anyway. Refuse it like a statement.
		we := &wire.Error{Severity: wire.SeverityError, Code: sqlguard.RuleFunctionCallMessage.Code(),
			Message: "the FunctionCall protocol message is not allowed on tenant connections",
			Hint:    "Call the function in a SELECT statement.", Rule: string(sqlguard.RuleFunctionCallMessage)}
		c.noteRefusal(we)
		return nil, c.refuse(byte(wire.Query), nil, we), nil
	case wire.Query, wire.Parse:
	default:
		return nil, frame, nil
	}
	sql, err := sqlOf(typ, frame)
	if err != nil {
		return nil, nil, wire.Fatal(wire.CodeProtocolViolation, "invalid message format: %v", err)
	}
	fx, err := g.Check(sql)
	if err != nil {
		c.guardRefused(err)
		return nil, c.refuse(typ, frame, err), nil
	}
	return fx, frame, nil
}

// guardRefused logs a refused statement and counts it by rule.
func (c *clientConn) guardRefused(err error) {
	c.logger().Info("statement refused by the SQL guard", "reason", err.Error())
	var we *wire.Error
	if errors.As(err, &we) {
		c.noteRefusal(we)
	}
}

// noteRefusal counts a refusal by its rule (Hooks.GuardReject).
func (c *clientConn) noteRefusal(we *wire.Error) {
	if hook := c.srv.Hooks.GuardReject; hook != nil {
		hook(we.Rule)
	}
}
