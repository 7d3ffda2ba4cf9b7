package frontend

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// SessionInfo describes an authenticated client session, for per-pool and
// per-tenant observation. It carries no secrets and no query text.
type SessionInfo struct {
	ID       uint64
	Database string
	Role     string // the role multigres logs in upstream as
	Tenant   string // the tenant label (tenant.Identity.Tenant); "" for bypass users
	Bypass   bool
	// Cluster is the upstream cluster the session was placed on at login
	// (route.DefaultCluster without routing). A transaction-mode client
	// that follows its tenant to another cluster keeps this value.
	Cluster string
}

// Session observes one authenticated client session. Hooks.Session returns
// it once the client has authenticated. Connected comes first, from the
// connection's own goroutine; the rest may then run concurrently from both
// relay pumps, so implementations use atomics. Calls are on the relay's hot
// path: keep them lock- and allocation-free.
type Session interface {
	// Connected: the server connection is open; wait is the time from the
	// end of client authentication until then (session mode's pool wait).
	Connected(wait time.Duration)
	// State: the client connection moved from one state to another, as the
	// ConnState hook sees it. StateClosed comes last.
	State(from, to ConnState)
	// Query: a Query, Sync or FunctionCall got its ReadyForQuery after d.
	Query(d time.Duration)
	// Transaction: the session went back to idle (ReadyForQuery 'I') after
	// d, measured from the first statement after the previous idle.
	Transaction(d time.Duration)
	// Error: an ErrorResponse was sent to the client.
	Error()
}

// countingConn counts the bytes read from and written to a client socket
// (TLS records included, as they cross the wire). It wraps the raw
// connection, so one atomic add per system call, not per frame.
type countingConn struct {
	net.Conn
	in, out   *atomic.Uint64 // the server's
	cin, cout *atomic.Uint64 // the connection's (SHOW STATS per database)
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(uint64(n))
	c.cin.Add(uint64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(uint64(n))
	c.cout.Add(uint64(n))
	return n, err
}

// ClientBytes returns the bytes received from and sent to clients since the
// server started, counted on the sockets.
func (s *Server) ClientBytes() (received, sent uint64) {
	return s.bytesIn.Load(), s.bytesOut.Load()
}

// Draining reports whether Shutdown has begun: the server accepts no new
// connections, so a readiness probe should fail.
func (s *Server) Draining() bool { return s.inShut.Load() }

// authFailure reports a refused login to the AuthFailure hook.
func (s *Server) authFailure(reason string) {
	if s.Hooks.AuthFailure != nil {
		s.Hooks.AuthFailure(reason)
	}
}

// Auth failure reasons passed to Hooks.AuthFailure.
const (
	AuthReasonPassword     = "password"         // wrong password or unknown user
	AuthReasonUsername     = "invalid_username" // username not of a tenant role or bypass user, or a bad value
	AuthReasonTLSRequired  = "tls_required"     // client_tls_mode = require, plaintext tenant login
	AuthReasonPlaintext    = "plaintext_password"
	AuthReasonLookup       = "lookup_failed"  // auth_query or auth_file lookup failed
	AuthReasonProtocol     = "protocol"       // malformed authentication messages
	AuthReasonUpstream     = "upstream_login" // PostgreSQL refused the upstream login
	AuthReasonStartupParam = "startup_parameter"
)

// monoNow is nanoseconds since the connection's epoch, monotonic, and never
// 0 (0 means "no statement pending").
func (c *clientConn) monoNow() int64 { return int64(time.Since(c.epoch)) + 1 }

// noteStatement runs on the client pump for every frame while a Session is
// installed: Query, Sync and FunctionCall each end in a ReadyForQuery.
func (c *clientConn) noteStatement(typ byte) {
	if t := wire.ClientType(typ); t == wire.Query || t == wire.Sync || t == wire.FunctionCall {
		// The first unanswered statement since the last ReadyForQuery
		// starts the clock; pipelined ones are timed from the previous
		// ReadyForQuery (see noteReady), so no queue is needed.
		c.qStart.CompareAndSwap(0, c.monoNow())
	}
}

// noteReady runs on the server pump for each ReadyForQuery relayed.
func (c *clientConn) noteReady(status byte) {
	now := c.monoNow()
	start := c.qStart.Swap(0)
	if start == 0 || start < c.lastReady {
		start = c.lastReady
	}
	c.lastReady = now
	c.sess.Query(time.Duration(now - start))
	if c.txStart == 0 {
		c.txStart = start
	}
	if status == wire.TxIdle {
		c.sess.Transaction(time.Duration(now - c.txStart))
		c.txStart = 0
	}
}
