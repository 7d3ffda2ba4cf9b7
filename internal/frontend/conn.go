package frontend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/auth"
	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/netio"
	"github.com/multigres-proxy/multigres/internal/tenant"
	"github.com/multigres-proxy/multigres/internal/wire"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// errSilent ends a connection without an ErrorResponse: the client went
// away, or sent a CancelRequest (which gets no answer).
var errSilent = errors.New("connection ended without error response")

// clientConn is one client connection and, once connected, its server
// connection.
type clientConn struct {
	srv *Server
	id  uint64
	nc  net.Conn
	raw *netio.Conn // the socket under nc (and under TLS), nil if not one
	rd  *bufio.Reader
	w   *clientWriter
	wmu sync.Mutex // guards w once the relay runs two goroutines
	lc  *liveConfig
	// log is built on first use (logger): most connections never log, and
	// a logger with attributes costs a few hundred bytes per connection.
	log      atomic.Pointer[slog.Logger]
	logUser  string // the "user" attribute, once known
	logAdmin bool
	state    atomic.Int32
	// refused holds the errors of substituted statements still to come.
	refused refusals
	epoch   time.Time // accept time; the monotonic base of the timings below

	// Observation, only when Hooks.Session returned a Session. qStart is
	// set by the client pump and taken by the server pump; lastReady and
	// txStart belong to the server pump.
	sess      Session
	qStart    atomic.Int64
	lastReady int64
	txStart   int64

	tls      bool
	database string
	params   []backend.Param // startup parameters forwarded upstream
	ident    *tenant.Identity
	// resolved are the variables the context resolvers set, with their
	// values, applied with the context.
	resolvedNames, resolvedValues []string
	key                           cancelKey
	keyed                         bool
	tl                            tenantConn // per-tenant controls (limits.go)
	route                         connRoute  // its cluster (routing.go); the handshake's, then the relay's goroutine

	ad adminView // what the admin side sees of it (adminapi.go)
	tx txRelay   // transaction pooling state (txrelay.go)

	mu     sync.Mutex
	server *backend.Conn
	closed bool
}

func newClientConn(s *Server, nc net.Conn) *clientConn {
	c := &clientConn{srv: s, id: s.nextID.Add(1), lc: s.live.Load(), epoch: time.Now()}
	wrapped := netio.Wrap(nc)
	c.raw, _ = wrapped.(*netio.Conn)
	c.nc = countingConn{Conn: wrapped, in: &s.bytesIn, out: &s.bytesOut, cin: &c.ad.in, cout: &c.ad.out}
	c.rd = bufio.NewReaderSize(c.nc, clientReadBuffer)
	c.w = newClientWriter(c.nc)
	c.tx.c = c
	return c
}

func (c *clientConn) setState(to ConnState) {
	from := ConnState(c.state.Swap(int32(to)))
	if from == to {
		return
	}
	if c.srv.Hooks.ConnState != nil {
		c.srv.Hooks.ConnState(c.id, from, to)
	}
	if c.sess != nil {
		c.sess.State(from, to)
	}
}

// State is the connection's current state.
func (c *clientConn) State() ConnState { return ConnState(c.state.Load()) }

func (c *clientConn) currentServer() *backend.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server
}

// serve runs the whole lifecycle. A panic ends this connection only.
// serve runs the handshake and returns what runs next (the relay or the
// admin console), or nil when the connection is already closed. The caller
// runs the rest in a fresh goroutine: the handshake (SCRAM, TLS) grows the
// stack, and a goroutine that then idles for hours in a read should not
// keep that stack. A panic ends this connection only.
func (c *clientConn) serve() (next func()) {
	defer func() {
		if next == nil {
			c.close()
		}
	}()
	defer c.recoverPanic("serve")
	c.setState(StateStartup)
	deadline := time.Now().Add(c.lc.cfg.HandshakeTimeout)
	_ = c.nc.SetDeadline(deadline)
	if err := (&handshake{c: c}).run(deadline); err != nil {
		// The error must reach the client even when the handshake used
		// up its time (a login waiting for a pooled connection).
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.fail(err)
		return nil
	}
	_ = c.nc.SetDeadline(time.Time{})
	run := (&sessionRelay{c: c}).run
	switch {
	case c.ad.isAdmin:
		run = c.ad.console.serve
	case c.tx.pool != nil || c.tx.m != nil: // pooled, or pinned (citus.go)
		run = c.tx.run
	}
	return func() {
		defer c.close()
		defer c.recoverPanic("relay")
		run()
	}
}

func (c *clientConn) recoverPanic(where string) {
	if r := recover(); r != nil {
		c.logger().Error("panic in connection; closing it", "where", where, "panic", r, "stack", string(debug.Stack()))
		c.kill()
	}
}

// fail reports err to the client (unless silent) and logs it.
func (c *clientConn) fail(err error) {
	if errors.Is(err, errSilent) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	we := wire.ToClient(err)
	var own *wire.Error
	if errors.As(err, &own) {
		c.logger().Info("connection refused", "code", we.Code, "msg", we.Message)
	} else {
		c.logger().Warn("connection failed", "err", err)
	}
	c.writeMsg(we.Response())
	c.flush()
	if c.sess != nil {
		c.sess.Error()
	}
}

// handshake is the stage before a client's handler runs (the
// pre-authentication and login stage, as CockroachDB's pre_serve): the
// startup packet and encryption, the identity, authentication, the
// upstream login (or, in transaction mode, a pooled connection with the
// client's context applied) and the first ReadyForQuery. Its state is the
// connection's; it runs on the connection's goroutine only.
type handshake struct {
	c *clientConn
}

func (h *handshake) run(deadline time.Time) error {
	c := h.c
	st, err := h.readStartup()
	if err != nil {
		return err
	}
	if err := h.checkStartup(st); err != nil {
		return err
	}
	if err := c.checkTenantAccess(); err != nil {
		return err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := h.route(ctx); err != nil {
		return err
	}
	c.setState(StateAuth)
	creds, err := (&authenticator{c: c}).authenticate(ctx)
	if err != nil {
		return err
	}
	if c.ad.isAdmin {
		return h.adminReady()
	}
	if d := c.srv.routing.dir; d != nil && !c.ident.Bypass {
		d.confirm(c.ident.Tenant) // a real tenant: its answer is kept ahead of invented ones
	}
	if err := c.admitTenant(); err != nil {
		return err
	}
	h.startSession()
	authDone := time.Now()
	c.setState(StateConnecting)
	if err := c.pauseLogin(ctx); err != nil {
		return err
	}
	authCluster := c.route.cluster
	if err := h.rerouteAfterWait(ctx); err != nil {
		return err
	}
	if c.route.cluster != authCluster {
		creds = crossClusterCreds(c, c.route.cluster, creds)
	}
	if !c.ident.Bypass && c.srv.resolvers != nil {
		// Before the upstream connection, so a refused login costs none.
		c.resolvedNames, c.resolvedValues, err = c.srv.resolvers.resolve(ctx, c.logger(), c.route.cluster, c.database,
			c.lc.cfg.ContextVariables, c.ident.Values)
		if err != nil {
			return err
		}
	}
	if h.txMode() {
		return h.loginTx(ctx, creds)
	}
	server, err := h.connectUpstream(ctx, creds)
	if err != nil {
		return err
	}
	if c.sess != nil {
		c.sess.Connected(time.Since(authDone))
	}
	c.mu.Lock()
	c.server = server
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errSilent
	}
	if !c.ident.Bypass {
		c.setState(StateInjecting)
		if err := h.inject(ctx, server); err != nil {
			return err
		}
		if h.citus() {
			if err := h.pinCitus(server); err != nil {
				return err
			}
		}
	}
	return h.sendReady(server)
}

// readStartup reads startup-phase packets until a StartupMessage,
// answering SSL and GSSAPI encryption requests on the way.
func (h *handshake) readStartup() (*wire.Startup, error) {
	c := h.c
	for range 4 {
		body, err := wire.ReadStartup(c.rd)
		if errors.Is(err, wire.ErrStartupTooLarge) {
			return nil, wire.Fatal(wire.CodeProtocolViolation, "invalid length of startup packet")
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSilent, err)
		}
		st, err := wire.ParseStartup(body)
		if err != nil {
			return nil, wire.Fatal(wire.CodeProtocolViolation, "invalid startup packet layout: %v", err)
		}
		switch st.Kind {
		case wire.KindStartup:
			return st, nil
		case wire.KindCancel:
			c.srv.handleCancel(st.ProcessID, st.SecretKey)
			return nil, errSilent
		case wire.KindSSLRequest, wire.KindGSSENCRequest:
			if err := h.negotiateEncryption(st.Kind); err != nil {
				return nil, err
			}
		}
	}
	return nil, wire.Fatal(wire.CodeProtocolViolation, "too many encryption negotiation requests")
}

func (h *handshake) negotiateEncryption(kind wire.StartupKind) error {
	c := h.c
	// Bytes pipelined behind the request were sent before encryption was
	// agreed and could be injected by a man in the middle (CVE-2021-23214).
	if c.rd.Buffered() > 0 {
		return wire.Fatal(wire.CodeProtocolViolation, "received unencrypted data after SSL request").
			WithDetail("This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.")
	}
	if kind == wire.KindGSSENCRequest || c.tls || c.lc.tls == nil {
		_, err := c.nc.Write([]byte{wire.SSLRefused})
		return err
	}
	if _, err := c.nc.Write([]byte{wire.SSLAccepted}); err != nil {
		return err
	}
	tc := tls.Server(c.nc, c.lc.tls)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("%w: TLS handshake: %v", errSilent, err)
	}
	c.mu.Lock()
	c.nc, c.tls = tc, true
	c.mu.Unlock()
	c.rd.Reset(tc)
	c.w.Reset(tc)
	return nil
}

// checkStartup validates the protocol version and parameters and parses
// the username into an identity.
func (h *handshake) checkStartup(st *wire.Startup) error {
	c := h.c
	if st.Major != 3 {
		return wire.Fatal(wire.CodeFeatureNotSupported,
			"unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", st.Major, st.Minor)
	}
	var unrecognized []string
	for _, name := range st.ParamOrder {
		if strings.HasPrefix(name, "_pq_.") {
			unrecognized = append(unrecognized, name)
		}
	}
	if st.Minor > 0 || len(unrecognized) > 0 {
		c.writeMsg(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unrecognized})
	}
	if st.Params["database"] == admin.Database {
		return h.checkAdminStartup(st)
	}
	ident, err := c.lc.rules.Parse(st.Params["user"])
	if err != nil {
		c.srv.authFailure(AuthReasonUsername)
		return err
	}
	c.ident = ident
	c.setLogUser(ident.User, false)
	if !ident.Bypass && c.lc.cfg.ClientTLSMode == "require" && !c.tls {
		c.srv.authFailure(AuthReasonTLSRequired)
		return wire.Fatal(wire.CodeInvalidAuthorization, "multigres requires TLS for tenant connections").
			WithHint("Connect with sslmode=require (client_tls_mode = require).")
	}
	c.database = st.Params["database"]
	if c.database == "" {
		c.database = ident.Role
	}
	if err := h.collectParams(st); err != nil {
		c.srv.authFailure(AuthReasonStartupParam)
		return err
	}
	return nil
}

// collectParams keeps the startup parameters to forward upstream, refusing
// those that would let a tenant choose its own context or role.
func (h *handshake) collectParams(st *wire.Startup) error {
	c := h.c
	c.params = []backend.Param{{Name: "user", Value: c.ident.Role}, {Name: "database", Value: c.database}}
	for _, name := range st.ParamOrder {
		value := st.Params[name]
		switch {
		case name == "user" || name == "database" || strings.HasPrefix(name, "_pq_."):
			continue
		case c.ident.Bypass:
		case name == "replication":
			return wire.Fatal(wire.CodeFeatureNotSupported, "replication connections are not supported for tenant users")
		case c.lc.rules.ProtectedSetting(name):
			return wire.Fatal(wire.CodeInvalidAuthorization,
				"startup parameter %q is not allowed on tenant connections", name).
				WithDetail("multigres sets the context variables and role itself.")
		case name == "client_encoding" && wire.UnsafeClientEncoding(value):
			return unsafeEncodingError()
		case name == "options":
			for _, set := range tenant.OptionSettings(value) {
				if c.lc.rules.ProtectedSetting(set.Name) {
					return wire.Fatal(wire.CodeInvalidAuthorization,
						"options may not set %q on tenant connections", set.Name).
						WithDetail("multigres sets the context variables and role itself.")
				}
				if strings.EqualFold(set.Name, "client_encoding") && wire.UnsafeClientEncoding(set.Value) {
					return unsafeEncodingError()
				}
			}
		}
		c.params = append(c.params, backend.Param{Name: name, Value: value})
	}
	return nil
}

func (h *handshake) connectUpstream(ctx context.Context, creds backend.Credentials) (*backend.Conn, error) {
	c := h.c
	cfg, up := c.lc.cfg, c.route.cluster
	server, err := backend.Dial(ctx, backend.DialOptions{
		Addr: up.addr, TLSMode: up.tlsMode, TLSConfig: up.tls,
		Params: c.params, Credentials: creds, MaxBodyLen: cfg.MaxMessageSize,
	})
	if errors.Is(err, auth.ErrPassthroughMismatch) {
		c.srv.authFailure(AuthReasonUpstream)
		return nil, wire.Fatal(wire.CodeConnectionFailure, "the password of role %q changed while connecting", c.ident.Role).
			WithHint("Reconnect. (SCRAM passthrough needs the verifier multigres looked up; a password change replaced it.)")
	}
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28") {
			c.srv.authFailure(AuthReasonUpstream)
		}
		return nil, fmt.Errorf("connect upstream as %s: %w", c.ident.Role, err)
	}
	return server, nil
}

func (h *handshake) inject(ctx context.Context, server *backend.Conn) error {
	c := h.c
	cfg := c.lc.cfg
	role := cfg.SetRole
	if role == "" {
		role = c.ident.Role
	}
	var macNames, macs []string
	primed := 0
	if cfg.ContextSigning {
		primed = len(cfg.ContextVariables)
		key, err := h.signingKey(ctx)
		if err != nil {
			return err
		}
		for i, v := range cfg.ContextVariables {
			macNames = append(macNames, mgsql.ContextMACName(v))
			macs = append(macs, mgsql.ContextMAC(key, v, server.PID, c.ident.Values[i]))
		}
	}
	macNames, macs = c.tenantSettings(macNames, macs)
	macNames, macs = h.citusSettings(macNames, macs)
	checkKey := roleCheckKey(c.route.cluster, role, c.database)
	check := !c.srv.roleChecked(checkKey)
	// Resolved variables are set in the same round trip but not signed:
	// they are read with current_setting, and the guard protects them
	// like the context variables.
	vars := append(append([]string(nil), cfg.ContextVariables...), c.resolvedNames...)
	values := append(append([]string(nil), c.ident.Values...), c.resolvedValues...)
	err := server.Apply(backend.Context{Variables: vars, Values: values, Role: role, CheckRole: check,
		MACNames: macNames, MACs: macs, Primed: primed})
	if err := h.applyErr(err, role); err != nil {
		return err
	}
	if check {
		c.srv.markRoleChecked(checkKey)
	}
	return nil
}

// sendReady finishes the startup: the server's parameters, the proxy's own
// cancel key and ReadyForQuery.
func (h *handshake) sendReady(server *backend.Conn) error {
	c := h.c
	for _, p := range server.Params {
		c.writeMsg(&pgproto3.ParameterStatus{Name: p.Name, Value: p.Value})
	}
	c.srv.cancels.register(c) // sets c.key under the map lock
	c.keyed = true
	c.writeMsg(&pgproto3.BackendKeyData{ProcessID: c.key.pid, SecretKey: c.key.secret[:]})
	c.writeMsg(&pgproto3.ReadyForQuery{TxStatus: server.TxStatus})
	c.lastReady = c.monoNow()
	c.setState(txState(server.TxStatus))
	// The login's ReadyForQuery starts the first idle period too.
	c.tl.pending.Store(1)
	c.noteServerReady(server.TxStatus)
	if err := c.flush(); err != nil {
		return fmt.Errorf("%w: %v", errSilent, err)
	}
	if c.srv.Logger.Enabled(context.Background(), slog.LevelDebug) { // else do not build the logger
		c.logger().Debug("connected", "role", c.ident.Role, "bypass", c.ident.Bypass, "database", c.database,
			"cluster", c.route.cluster.name)
	}
	return nil
}

func txState(status byte) ConnState {
	if status == wire.TxIdle {
		return StateIdle
	}
	return StateInTransaction
}

func (c *clientConn) writeMsg(m pgproto3.BackendMessage) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	buf, err := m.Encode(c.w.AvailableBuffer())
	if err == nil {
		_, _ = c.w.Write(buf)
	}
}

// writeRaw buffers encoded messages for the client.
func (c *clientConn) writeRaw(frames []byte) {
	c.wmu.Lock()
	_, _ = c.w.Write(frames)
	c.wmu.Unlock()
}

func (c *clientConn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Flush()
}

// logger returns the connection's logger, with its id, remote address and
// (once known) user and tenant label.
func (c *clientConn) logger() *slog.Logger {
	if l := c.log.Load(); l != nil {
		return l
	}
	c.mu.Lock()
	remote := c.nc.RemoteAddr().String()
	c.mu.Unlock()
	args := []any{"conn", c.id, "remote", remote}
	if c.logUser != "" {
		args = append(args, "user", c.logUser)
	}
	if c.ident != nil && c.ident.Tenant != "" {
		args = append(args, "tenant", c.ident.Tenant)
	}
	if c.logAdmin {
		args = append(args, "admin", true)
	}
	l := c.srv.Logger.With(args...)
	c.log.Store(l)
	return l
}

// setLogUser adds the user, and the tenant label of c.ident, to the
// connection's log attributes (during the handshake, before any other
// goroutine of the connection runs).
func (c *clientConn) setLogUser(user string, admin bool) {
	c.logUser, c.logAdmin = user, admin
	c.log.Store(nil)
}

// kill closes both sockets so that blocked reads return; serve's deferred
// close does the rest.
func (c *clientConn) kill() {
	c.mu.Lock()
	c.closed = true
	server, nc := c.server, c.nc
	c.mu.Unlock()
	nc.Close()
	if server != nil {
		server.Close()
	}
	c.tx.interruptInline()
	c.ad.markDead()
}

// isKilled reports whether kill has run.
func (c *clientConn) isKilled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *clientConn) close() {
	c.kill()
	c.releaseTenant()
	if c.keyed {
		c.srv.cancels.unregister(c.key)
	}
	c.setState(StateClosed)
}

func pgMessage(err error) string {
	we := wire.ToClient(err)
	return we.Message
}

// startSession publishes the authenticated connection to the admin console
// and installs its observers: the server's own counters and Hooks.Session's.
func (h *handshake) startSession() {
	c := h.c
	c.sess = c.observe(SessionInfo{ID: c.id, Database: c.database, Role: c.ident.Role, Tenant: c.ident.Tenant,
		Bypass: c.ident.Bypass, Cluster: c.route.cluster.name})
}

func unsafeEncodingError() *wire.Error {
	return wire.Fatal(wire.CodeInvalidAuthorization, "this client_encoding is not allowed on tenant connections").
		WithHint("Use UTF8; SJIS, BIG5, GBK, UHC, GB18030 and JOHAB can hide quotes inside multibyte characters.")
}
