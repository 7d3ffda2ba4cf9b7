package frontend

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/pool"
)

// The admin API: what the admin console (admin.Proxy) and the admin HTTP
// endpoints (admin.Health) ask of the server. The views read what each
// connection publishes in its adminView; the controls act on connections
// or call back into main.

var (
	_ admin.Proxy  = (*Server)(nil)
	_ admin.Health = (*Server)(nil)
)

// adminState is the server's admin side. The zero value is ready to use.
type adminState struct {
	pause   pauseState // PAUSE/RESUME (pause.go)
	control controls   // RELOAD, SHUTDOWN
	agg     aggregates // SHOW STATS, SHOW TENANTS (aggstats.go)
}

// controls are what RELOAD and SHUTDOWN run, installed by SetControl.
type controls struct {
	mu       sync.Mutex
	reload   func() error
	shutdown func()
}

// adminView is a connection as the admin side sees it: what it publishes
// for the SHOW commands, its byte counts, whether a PAUSE holds it, and
// whether it was killed. On a console connection it holds the console
// session too.
type adminView struct {
	isAdmin bool            // connection goroutine only; others read info.admin
	console *consoleSession // set with isAdmin (console.go)
	info    atomic.Pointer[connInfo]
	// waiting is set while the connection is held by a PAUSE, from
	// waitSince (unix nanoseconds).
	waiting   atomic.Bool
	waitSince atomic.Int64
	in, out   atomic.Uint64 // bytes from and to this client

	mu     sync.Mutex
	dead   chan struct{} // closed once the connection is killed
	isDead bool
}

// connInfo is what other goroutines may read of a connection, published
// once the client has authenticated.
type connInfo struct {
	user, database, role, tenant, appName string
	admin, tls                            bool
	stats                                 *connStats // nil for admin connections
	// cluster is where the connection's server connections are: its
	// login's, or the cluster a transaction-mode client followed its
	// tenant to (setCluster). "" for admin connections.
	cluster string
}

// setCluster publishes that the connection now uses cluster.
func (v *adminView) setCluster(cluster string) {
	if info := v.info.Load(); info != nil && info.cluster != cluster {
		next := *info
		next.cluster = cluster
		v.info.Store(&next)
	}
}

// deadChan is closed once the connection is killed; made on first use,
// since most connections never wait on it.
func (v *adminView) deadChan() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dead == nil {
		v.dead = make(chan struct{})
		if v.isDead {
			close(v.dead)
		}
	}
	return v.dead
}

// markDead is called by kill, so waits on a PAUSE and a console end with
// the connection.
func (v *adminView) markDead() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.isDead {
		return
	}
	v.isDead = true
	if v.dead != nil {
		close(v.dead)
	}
}

// SetControl installs what RELOAD and SHUTDOWN on the admin console do.
// main passes the SIGHUP and SIGTERM paths, since the configuration
// sources live there. Without a reload function RELOAD fails; without a
// shutdown function SHUTDOWN runs Shutdown with shutdown_timeout.
func (s *Server) SetControl(reload func() error, shutdown func()) {
	ctl := &s.adm.control
	ctl.mu.Lock()
	defer ctl.mu.Unlock()
	ctl.reload, ctl.shutdown = reload, shutdown
}

// ReloadConfig re-reads the configuration through the function given to
// SetControl.
func (s *Server) ReloadConfig() error {
	ctl := &s.adm.control
	ctl.mu.Lock()
	fn := ctl.reload
	ctl.mu.Unlock()
	if fn == nil {
		return errors.New("this server has no configuration source to reload from")
	}
	return fn()
}

// RequestShutdown starts a graceful shutdown in the background and returns.
func (s *Server) RequestShutdown() {
	ctl := &s.adm.control
	ctl.mu.Lock()
	fn := ctl.shutdown
	ctl.mu.Unlock()
	if fn != nil {
		go fn()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.Config().ShutdownTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
	}()
}

// KillTenant closes every client connection whose tenant label
// (tenant.Identity.Tenant) is t.
func (s *Server) KillTenant(t string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if info := c.ad.info.Load(); info != nil && !info.admin && info.tenant == t {
			c.logger().Info("closed by KILL on the admin console") // the logger names the tenant
			c.kill()
			n++
		}
	}
	return n
}

// snapshot returns the open connections, sorted by id.
func (s *Server) snapshot() []*clientConn {
	s.mu.Lock()
	out := make([]*clientConn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Clients lists client connections, the admin console's included.
func (s *Server) Clients() []admin.ClientInfo {
	var out []admin.ClientInfo
	now := time.Now()
	for _, c := range s.snapshot() {
		out = append(out, clientRow(c, now))
	}
	return out
}

// clientRow is c's row of SHOW CLIENTS.
func clientRow(c *clientConn, now time.Time) admin.ClientInfo {
	c.mu.Lock()
	nc := c.nc
	c.mu.Unlock()
	ci := admin.ClientInfo{ID: c.id, State: c.State().String(), ConnectTime: c.epoch, RequestTime: c.epoch}
	ci.Addr, ci.Port = splitAddr(nc.RemoteAddr())
	ci.LocalAddr, ci.LocalPort = splitAddr(nc.LocalAddr())
	if info := c.ad.info.Load(); info != nil {
		ci.User, ci.Database, ci.Role, ci.Tenant, ci.TLS = info.user, info.database, info.role, info.tenant, info.tls
		ci.ApplicationName, ci.Admin, ci.Cluster = info.appName, info.admin, info.cluster
		if st := info.stats; st != nil {
			if t := st.lastRequest.Load(); t != 0 {
				ci.RequestTime = time.Unix(0, t)
			}
		}
	}
	if c.ad.waiting.Load() {
		ci.State = "waiting"
		ci.Wait = now.Sub(time.Unix(0, c.ad.waitSince.Load()))
	}
	return ci
}

func splitAddr(a net.Addr) (string, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	if a == nil {
		return "", 0
	}
	return a.String(), 0
}

// Servers lists server connections: in session mode, one per client that
// has logged in upstream; then every transaction-mode pooled connection.
func (s *Server) Servers() []admin.ServerInfo {
	var out []admin.ServerInfo
	conns := s.snapshot()
	for _, c := range conns {
		info := c.ad.info.Load()
		server := c.currentServer()
		if info == nil || info.admin || server == nil {
			continue
		}
		si := admin.ServerInfo{ClientID: c.id, User: info.role, Database: info.database, PID: server.PID, Tenant: info.tenant,
			State: serverState(c.State()).String(), Cluster: info.cluster}
		setServerAddrs(&si, server.Addr(), server.LocalAddr())
		if st := info.stats; st != nil {
			si.ConnectTime = time.Unix(0, st.connectedAt.Load())
			si.RequestTime = si.ConnectTime
			if t := st.lastRequest.Load(); t != 0 {
				si.RequestTime = time.Unix(0, t)
			}
		}
		out = append(out, si)
	}
	return append(out, pooledServers(s.poolSet.Load(), conns)...)
}

// pooledServers lists the transaction-mode pools' connections: held ones
// are active with the holding client as link (and its tenant), the rest
// idle in the pool.
func pooledServers(set *pool.Set, conns []*clientConn) []admin.ServerInfo {
	if set == nil {
		return nil
	}
	tenants := map[uint64]string{}
	for _, c := range conns {
		if info := c.ad.info.Load(); info != nil {
			tenants[c.id] = info.tenant
		}
	}
	var out []admin.ServerInfo
	for _, sv := range set.Servers() {
		si := admin.ServerInfo{User: sv.Role, Database: sv.Database, PID: sv.PID, State: sv.State.String(),
			ConnectTime: sv.Created, RequestTime: sv.LastUsed, Cluster: sv.Cluster}
		if sv.State == pool.ServerActive {
			si.ClientID, si.Tenant = sv.Holder, tenants[sv.Holder]
		}
		setServerAddrs(&si, sv.Addr, sv.LocalAddr)
		out = append(out, si)
	}
	return out
}

// setServerAddrs fills si's upstream address (host:port) and local end.
func setServerAddrs(si *admin.ServerInfo, addr string, local net.Addr) {
	host, port, _ := net.SplitHostPort(addr)
	si.Addr = host
	fmt.Sscan(port, &si.Port)
	si.LocalAddr, si.LocalPort = splitAddr(local)
}

// serverState is the state of a session-mode client's server connection.
func serverState(client ConnState) pool.ServerState {
	switch client {
	case StateIdle:
		return pool.ServerIdle
	case StateConnecting, StateInjecting:
		return pool.ServerLogin
	default:
		return pool.ServerActive
	}
}

// PoolStat is one transaction-mode pool, for metrics.
type PoolStat struct {
	Cluster, Database, Role string
	Active, Idle, Waiting   int
}

// PoolStats returns the transaction-mode pools (none before first use).
func (s *Server) PoolStats() []PoolStat {
	set := s.poolSet.Load()
	if set == nil {
		return nil
	}
	var out []PoolStat
	for _, ps := range set.Stats() {
		out = append(out, PoolStat{Cluster: ps.Cluster, Database: ps.Database, Role: ps.Role, Active: ps.Open - ps.Idle,
			Idle: ps.Idle, Waiting: ps.Waits})
	}
	return out
}

// poolKey names a pool: a (database, role) pair on a cluster.
type poolKey struct{ db, role, cluster string }

// poolTally builds SHOW POOLS' rows, one per pool, in first-seen order.
type poolTally struct {
	pools map[poolKey]*admin.PoolInfo
	keys  []poolKey
}

func (t *poolTally) get(k poolKey, mode string) *admin.PoolInfo {
	p := t.pools[k]
	if p == nil {
		p = &admin.PoolInfo{Database: k.db, User: k.role, Mode: mode, Cluster: k.cluster}
		t.pools[k] = p
		t.keys = append(t.keys, k)
	}
	return p
}

// Pools summarises the connections per (database, role) and cluster,
// PgBouncer style.
// In session mode a client in a transaction or running a query makes its
// server sv_active; idle clients keep an sv_idle server. In transaction
// mode the server columns come from the pool itself.
func (s *Server) Pools() []admin.PoolInfo {
	t := &poolTally{pools: map[poolKey]*admin.PoolInfo{}}
	now := time.Now()
	for _, c := range s.snapshot() {
		info := c.ad.info.Load()
		if info == nil || info.admin {
			continue
		}
		k := poolKey{info.database, info.role, info.cluster}
		if c.tx.pool != nil {
			p := t.get(k, "transaction")
			if c.State() != StateClosed {
				p.ClActive++
			}
			continue
		}
		tallySession(t.get(k, "session"), c, now)
	}
	if set := s.poolSet.Load(); set != nil {
		for _, ps := range set.Stats() {
			p := t.get(poolKey{ps.Database, ps.Role, ps.Cluster}, "transaction")
			p.SvIdle += ps.Idle
			p.SvActive += ps.Open - ps.Idle
			p.ClWaiting += ps.Waits
			p.ClActive -= min(p.ClActive, ps.Waits)
		}
	}
	return t.rows()
}

// tallySession adds session-mode client c, and the server connection it
// holds, to its pool's counts.
func tallySession(p *admin.PoolInfo, c *clientConn, now time.Time) {
	st := c.State()
	waiting := c.ad.waiting.Load()
	if waiting {
		p.ClWaiting++
		p.MaxWait = max(p.MaxWait, now.Sub(time.Unix(0, c.ad.waitSince.Load())))
		if st == StateConnecting {
			return // no server yet
		}
	}
	switch st {
	case StateAuth, StateConnecting, StateInjecting:
		if !waiting {
			p.ClWaiting++
		}
		if st != StateAuth {
			p.SvLogin++
		}
	case StateIdle:
		p.ClActive++
		p.SvIdle++
	case StateActive, StateInTransaction:
		if !waiting {
			p.ClActive++
		}
		p.SvActive++
	}
}

// rows returns the pools sorted by database, then role, then cluster.
func (t *poolTally) rows() []admin.PoolInfo {
	sort.Slice(t.keys, func(i, j int) bool {
		a, b := t.keys[i], t.keys[j]
		if a.db != b.db {
			return a.db < b.db
		}
		if a.role != b.role {
			return a.role < b.role
		}
		return a.cluster < b.cluster
	})
	out := make([]admin.PoolInfo, 0, len(t.keys))
	for _, k := range t.keys {
		out = append(out, *t.pools[k])
	}
	return out
}
