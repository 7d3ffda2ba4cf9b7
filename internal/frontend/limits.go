package frontend

import (
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Per-tenant controls (tenant_allow, tenant_deny, tenant_max_connections,
// tenant_rate_limit, tenant_statement_timeout, tenant_idle_timeout). All
// keys are reloadable: admission reads the configuration in effect at
// login, and the idle timeout is read afresh each time a connection goes
// idle, so a reload reaches open connections too. Bypass users are never
// limited: they have no tenant.

// Auth failure reasons for refusals by the per-tenant controls, passed to
// Hooks.AuthFailure.
const (
	AuthReasonTenantDenied = "tenant_denied" // tenant_allow / tenant_deny
	AuthReasonTenantLimit  = "tenant_limit"  // tenant_max_connections / tenant_rate_limit
)

// codeIdleSessionTimeout is PostgreSQL's idle_session_timeout SQLSTATE.
const codeIdleSessionTimeout = "57P05"

// tenantAccess applies tenant_deny, then tenant_allow. Deny wins: a tenant
// matching both is refused.
func tenantAccess(cfg *config.Config, tenant string) error {
	if rule, ok := matchTenant(cfg.TenantDeny, tenant); ok {
		return wire.Fatal(wire.CodeInvalidAuthorization, "tenant %q is not allowed (tenant_deny)", tenant).
			WithDetail(fmt.Sprintf("It matches %q in tenant_deny.", rule))
	}
	if len(cfg.TenantAllow) > 0 {
		if _, ok := matchTenant(cfg.TenantAllow, tenant); !ok {
			return wire.Fatal(wire.CodeInvalidAuthorization, "tenant %q is not allowed (tenant_allow)", tenant).
				WithDetail("It matches no entry of tenant_allow.")
		}
	}
	return nil
}

// matchTenant returns the first pattern (path.Match syntax, validated by
// config) that matches tenant.
func matchTenant(patterns []string, tenant string) (string, bool) {
	for _, p := range patterns {
		if ok, _ := path.Match(p, tenant); ok {
			return p, true
		}
	}
	return "", false
}

// tenantLimits counts connections and holds the rate buckets of every
// tenant. The zero value is ready to use. One mutex: admission happens once
// per login, far from the relay's hot path.
type tenantLimits struct {
	mu      sync.Mutex
	conns   map[string]int
	buckets map[string]*bucket
}

// bucket is a token bucket: capacity burst, refilled at rate per second.
type bucket struct {
	tokens float64
	last   time.Time
}

// maxIdleBuckets bounds the bucket map: beyond it, buckets that have
// refilled completely (equivalent to a fresh one) are dropped.
const maxIdleBuckets = 4096

// admit takes a connection slot and a rate token for tenant, or refuses
// with 53300 naming the limit. Nothing is taken when it refuses. The caller
// must call release once for every nil return.
func (l *tenantLimits) admit(cfg *config.Config, tenant string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit := cfg.TenantMaxConnections; limit > 0 && l.conns[tenant] >= limit {
		return wire.Fatal(wire.CodeTooManyConnections, "too many connections for tenant %q (tenant_max_connections = %d)", tenant, limit)
	}
	if rate := cfg.TenantRateLimit; rate > 0 {
		if l.buckets == nil {
			l.buckets = map[string]*bucket{}
		}
		burst := float64(max(1, rate))
		b := l.buckets[tenant]
		if b == nil {
			if len(l.buckets) >= maxIdleBuckets {
				l.sweep(float64(rate), burst, now)
			}
			b = &bucket{tokens: burst, last: now}
			l.buckets[tenant] = b
		}
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*float64(rate))
		b.last = now
		if b.tokens < 1 {
			return wire.Fatal(wire.CodeTooManyConnections, "too many new connections for tenant %q (tenant_rate_limit = %d per second)", tenant, rate).
				WithHint("Reuse connections, or use a client-side pool.")
		}
		b.tokens--
	}
	if l.conns == nil {
		l.conns = map[string]int{}
	}
	l.conns[tenant]++
	return nil
}

// sweep drops buckets that are full again: a fresh bucket behaves the same.
func (l *tenantLimits) sweep(rate, burst float64, now time.Time) {
	for name, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*rate >= burst {
			delete(l.buckets, name)
		}
	}
}

func (l *tenantLimits) release(tenant string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.conns[tenant] - 1; n > 0 {
		l.conns[tenant] = n
	} else {
		delete(l.conns, tenant)
	}
}

// TenantConnections returns the number of admitted client connections per
// tenant (authenticated, not yet closed), for the admin console.
func (s *Server) TenantConnections() map[string]int {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	out := make(map[string]int, len(s.limits.conns))
	for k, v := range s.limits.conns {
		out[k] = v
	}
	return out
}

// tenantConn is a client connection's share of the per-tenant controls.
type tenantConn struct {
	name     string // set once admitted; release is due when admitted
	admitted bool

	// Idle tracking for tenant_idle_timeout. pending counts client
	// messages that will each get a ReadyForQuery (Query, Sync,
	// FunctionCall) and have not yet; unsynced is set by extended-protocol
	// messages until their Sync. The client pump updates both before
	// forwarding a message, so when the server pump sees pending == 0 and
	// !unsynced after a ReadyForQuery 'I', the client really is idle.
	pending   atomic.Int32
	unsynced  atomic.Bool
	status    atomic.Uint32 // last ReadyForQuery status relayed
	armed     atomic.Bool   // a read deadline may be set on the client socket
	idleSince atomic.Int64  // monoNow of the ReadyForQuery that armed it
}

// checkTenantAccess runs right after the startup packet, before
// authentication, like a pg_hba reject line: a denied tenant costs no
// secret lookup.
func (c *clientConn) checkTenantAccess() error {
	if c.ident == nil || c.ident.Bypass {
		return nil
	}
	if err := tenantAccess(c.lc.cfg, c.ident.Tenant); err != nil {
		c.srv.authFailure(AuthReasonTenantDenied)
		return err
	}
	return nil
}

// admitTenant applies the connection and rate limits once the client has
// authenticated, so nobody can use up a tenant's slots or tokens without
// its password. It reads the newest configuration, so a reload in the
// meantime applies.
func (c *clientConn) admitTenant() error {
	if c.ident == nil || c.ident.Bypass {
		return nil
	}
	cfg := c.srv.live.Load().cfg
	if err := c.srv.limits.admit(cfg, c.ident.Tenant, time.Now()); err != nil {
		c.srv.authFailure(AuthReasonTenantLimit)
		return err
	}
	c.tl.name, c.tl.admitted = c.ident.Tenant, true
	return nil
}

// releaseTenant gives the connection slot back; close calls it.
func (c *clientConn) releaseTenant() {
	if c.tl.admitted {
		c.tl.admitted = false
		c.srv.limits.release(c.tl.name)
	}
}

// tenantSettings adds the per-tenant server settings to those applied with
// the context, as bound set_config parameters in the same round trip.
func (c *clientConn) tenantSettings(names, values []string) ([]string, []string) {
	if d := c.lc.cfg.TenantStatementTimeout; d > 0 {
		// Whole milliseconds, rounded up so that a sub-millisecond
		// remainder never turns a timeout into 0 (off).
		ms := (d + time.Millisecond - 1) / time.Millisecond
		names = append(names, "statement_timeout")
		values = append(values, strconv.FormatInt(int64(ms), 10)+"ms")
	}
	return names, values
}

// guardProtected is the list of settings the SQL guard refuses to let a
// tenant change: the context variables, the variables the context
// resolvers set and, when tenant_statement_timeout
// is set, statement_timeout, so a tenant cannot lift its own limit.
func guardProtected(cfg *config.Config) []string {
	// The resolved variables are protected exactly like the context ones.
	out := append(append([]string(nil), cfg.ContextVariables...), cfg.ResolvedVariables()...)
	if cfg.TenantStatementTimeout > 0 {
		out = append(out, "statement_timeout")
	}
	if len(cfg.CitusDatabases) > 0 {
		out = append(out, propagateSetting)
	}
	return out
}

// Known limit: a Query or FunctionCall sent inside an extended-protocol
// batch that fails before its Sync is discarded by the server without a
// ReadyForQuery, so pending stays above zero and the idle timeout no longer
// fires for that client. Tracking a FIFO of sync points with the extended
// segments between them (an error with an extended segment at the head
// discards everything up to the next Sync) would make it exact.
//
// noteClientFrame runs on the client pump for each message, before it is
// forwarded. The counters are updated first, then any idle deadline is
// cleared.
func (c *clientConn) noteClientFrame(typ byte) {
	if c.ident.Bypass {
		return
	}
	switch wire.ClientType(typ) {
	case wire.Query, wire.FunctionCall:
		c.tl.pending.Add(1)
	case wire.Sync:
		c.tl.pending.Add(1)
		c.tl.unsynced.Store(false)
	case wire.Parse, wire.Bind, wire.Execute, wire.Describe, wire.Close, wire.Flush:
		c.tl.unsynced.Store(true)
	}
	if c.tl.armed.Load() {
		c.tl.armed.Store(false)
		_ = c.nc.SetReadDeadline(time.Time{})
	}
}

// noteServerReady runs on the server pump for each ReadyForQuery, before
// it is relayed. When the client is now idle and tenant_idle_timeout is
// set, it puts a read deadline on the client socket: the blocked client
// pump wakes up only if the client stays silent that long, so no timer
// runs per message.
func (c *clientConn) noteServerReady(status byte) {
	if c.ident.Bypass {
		return
	}
	c.tl.status.Store(uint32(status))
	if c.tl.pending.Add(-1) < 0 {
		c.tl.pending.Store(0)
	}
	timeout := c.srv.live.Load().cfg.TenantIdleTimeout
	if timeout <= 0 || status != wire.TxIdle || c.tl.pending.Load() != 0 || c.tl.unsynced.Load() {
		return
	}
	c.tl.idleSince.Store(c.monoNow())
	c.tl.armed.Store(true)
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
}

// idleReadError interprets a client read error. A deadline set by
// noteServerReady that fires on a connection still idle becomes the
// idle-timeout FATAL. One that fires when the client is not idle after all
// (a race with a message read meanwhile, or a reload lengthened the
// timeout) is re-armed or cleared, and retry tells the pump to read again;
// that is safe only while no part of a message was consumed, which the
// frame reader guarantees for a timeout on the header (Peek consumes
// nothing). A timeout in the middle of a message cannot be retried.
func (c *clientConn) idleReadError(err error) (retry bool, out error) {
	var ne net.Error
	if c.ident.Bypass || !errors.As(err, &ne) || !ne.Timeout() {
		return false, err
	}
	if retry, out, handled := c.tx.shutdownReadError(err); handled {
		return retry, out
	}
	if retry, out, held := c.tx.holdReadError(err); held {
		return retry, out
	}
	timeout := c.srv.live.Load().cfg.TenantIdleTimeout
	idle := timeout > 0 && c.tl.status.Load() == uint32(wire.TxIdle) && c.tl.pending.Load() == 0 && !c.tl.unsynced.Load()
	idleErr := wire.Fatal(codeIdleSessionTimeout, "terminating connection due to idle timeout (tenant_idle_timeout = %s)", timeout)
	// wire.FrameReader prefixes errors from its header Peek this way.
	if !strings.HasPrefix(err.Error(), "read frame header") {
		if idle {
			return false, idleErr
		}
		return false, err
	}
	if !idle {
		c.tl.armed.Store(false)
		_ = c.nc.SetReadDeadline(time.Time{})
		return true, nil
	}
	if rest := timeout - time.Duration(c.monoNow()-c.tl.idleSince.Load()); rest > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(rest))
		return true, nil
	}
	c.logger().Info("closing idle tenant connection", "tenant_idle_timeout", timeout)
	return false, idleErr
}
