package frontend

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/tenant"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// This file connects the admin console (internal/admin) to the server: the
// console's login, the admin.Proxy methods, PAUSE/RESUME, and the
// per-database and per-tenant counters SHOW STATS and SHOW TENANTS read.

// adminState is the server's console and pause state. The zero value is
// ready to use.
type adminState struct {
	pause pauseState

	mu       sync.Mutex // guards the fields below
	reload   func() error
	shutdown func()
	dbs      map[string]*aggStats
	tenants  map[string]*aggStats // key: tenant \x00 role \x00 database
}

// adminConn is a connection's console and observation state.
type adminConn struct {
	isAdmin bool // connection goroutine only; others read info.admin
	info    atomic.Pointer[connInfo]
	// waiting is set while the connection is held by a PAUSE, from
	// waitSince (unix nanoseconds).
	waiting   atomic.Bool
	waitSince atomic.Int64
	in, out   atomic.Uint64 // bytes from and to this client

	mu     sync.Mutex
	dead   chan struct{} // closed once the connection is killed
	isDead bool
	cmdMu  sync.Mutex // held while a console command runs
	// cancelCmd cancels the console command in progress (CancelRequest).
	cancelCmd atomic.Pointer[context.CancelFunc]
}

// connInfo is what other goroutines may read of a connection, published
// once the client has authenticated.
type connInfo struct {
	user, database, role, tenant, appName string
	admin, tls                            bool
	stats                                 *connStats // nil for admin connections
}

func (a *adminConn) deadChan() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead == nil {
		a.dead = make(chan struct{})
		if a.isDead {
			close(a.dead)
		}
	}
	return a.dead
}

// markDead is called by kill, so waits on a PAUSE end with the connection.
func (a *adminConn) markDead() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.isDead {
		return
	}
	a.isDead = true
	if a.dead != nil {
		close(a.dead)
	}
}

// SetControl installs what RELOAD and SHUTDOWN on the admin console do.
// main passes the SIGHUP and SIGTERM paths, since the configuration
// sources live there. Without a reload function RELOAD fails; without a
// shutdown function SHUTDOWN runs Shutdown with shutdown_timeout.
func (s *Server) SetControl(reload func() error, shutdown func()) {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	s.adm.reload, s.adm.shutdown = reload, shutdown
}

// ReloadConfig re-reads the configuration through the function given to
// SetControl.
func (s *Server) ReloadConfig() error {
	s.adm.mu.Lock()
	fn := s.adm.reload
	s.adm.mu.Unlock()
	if fn == nil {
		return errors.New("this server has no configuration source to reload from")
	}
	return fn()
}

// RequestShutdown starts a graceful shutdown in the background and returns.
func (s *Server) RequestShutdown() {
	s.adm.mu.Lock()
	fn := s.adm.shutdown
	s.adm.mu.Unlock()
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

// KillTenant closes every client connection whose tenant (the context
// values joined by value_separator) is t.
func (s *Server) KillTenant(t string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if info := c.ad.info.Load(); info != nil && !info.admin && info.tenant == t {
			c.logger().Info("closed by KILL on the admin console", "tenant", t)
			c.kill()
			n++
		}
	}
	return n
}

// --- PAUSE / RESUME ---

// pauseState holds the pauses in effect: global and per database. Each is a
// channel closed by RESUME.
type pauseState struct {
	n   atomic.Int32 // pauses in effect: the relay's lock-free fast path
	mu  sync.Mutex
	all chan struct{}
	dbs map[string]chan struct{}
}

// gate returns the channel to wait on before db may start a login or a
// transaction, or nil when db is not paused.
func (p *pauseState) gate(db string) <-chan struct{} {
	if p.n.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.all != nil {
		return p.all
	}
	if ch, ok := p.dbs[db]; ok {
		return ch
	}
	return nil
}

// errNotInState is PgBouncer's answer to PAUSE twice or RESUME unpaused.
func errNotInState(format string, args ...any) error {
	return &wire.Error{Severity: wire.SeverityError, Code: "55000", Message: fmt.Sprintf(format, args...)}
}

// Pause stops new logins to db ("" for every database) and new
// transactions of its idle clients, then waits until no client of db is in
// a transaction or logging in. If ctx ends first, the pause stays in
// effect (RESUME lifts it) and ctx's error is returned.
func (s *Server) Pause(ctx context.Context, db string) error {
	p := &s.adm.pause
	p.mu.Lock()
	if db == "" {
		if p.all != nil {
			p.mu.Unlock()
			return errNotInState("already paused")
		}
		p.all = make(chan struct{})
	} else {
		if _, ok := p.dbs[db]; ok {
			p.mu.Unlock()
			return errNotInState("database %q is already paused", db)
		}
		if p.dbs == nil {
			p.dbs = map[string]chan struct{}{}
		}
		p.dbs[db] = make(chan struct{})
	}
	// Stored before busy() reads client states, while clients store their
	// state before reading the gate: one side always sees the other.
	p.n.Add(1)
	p.mu.Unlock()
	s.Logger.Info("PAUSE", "database", db)
	// Polling: transactions end in the relay's hot path, which must not
	// signal anyone; a pause is rare and a 5 ms step is fine.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.busy(db) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("pause still in effect, transactions still running: %w", ctx.Err())
		case <-s.shutdown:
			return errors.New("the server is shutting down")
		}
	}
	return nil
}

// busy reports whether a client of db ("" for any) is logging in upstream
// or in a transaction, and not held by the pause.
func (s *Server) busy(db string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		info := c.ad.info.Load()
		if info == nil || info.admin || (db != "" && info.database != db) || c.ad.waiting.Load() {
			continue
		}
		switch c.State() {
		case StateConnecting, StateInjecting, StateActive, StateInTransaction:
			return true
		}
	}
	return false
}

// Resume lifts the pause of db ("" for the global one).
func (s *Server) Resume(db string) error {
	p := &s.adm.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if db == "" {
		if p.all == nil {
			return errNotInState("not paused")
		}
		close(p.all)
		p.all = nil
	} else {
		ch, ok := p.dbs[db]
		if !ok {
			return errNotInState("database %q is not paused", db)
		}
		close(ch)
		delete(p.dbs, db)
	}
	p.n.Add(-1)
	s.Logger.Info("RESUME", "database", db)
	return nil
}

// waitPaused holds the connection while its database is paused. The
// caller has already stored the state that makes it count as busy, so a
// concurrent Pause either sees it busy or it sees the pause. It returns
// false when done or the connection closes first.
func (c *clientConn) waitPaused(db string, done <-chan struct{}) bool {
	for {
		ch := c.srv.adm.pause.gate(db)
		if ch == nil {
			return true
		}
		c.ad.waitSince.Store(time.Now().UnixNano())
		c.ad.waiting.Store(true)
		select {
		case <-ch:
		case <-done:
			c.ad.waiting.Store(false)
			return false
		case <-c.ad.deadChan():
			c.ad.waiting.Store(false)
			return false
		}
		// Cleared before the gate is read again, so a new PAUSE waits.
		c.ad.waiting.Store(false)
	}
}

// pauseLogin runs after the state became connecting: a login to a paused
// database waits for RESUME, up to handshake_timeout (ctx).
func (c *clientConn) pauseLogin(ctx context.Context) error {
	if c.waitPaused(c.database, ctx.Done()) {
		return nil
	}
	// The socket's deadline is the same instant: leave a moment to write
	// the error, so the client learns why.
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	return wire.Fatal(wire.CodeCannotConnectNow, "database %q is paused", c.database).
		WithHint("An administrator ran PAUSE on the admin console; try again after RESUME.")
}

// pauseQuery runs in the client pump when an idle client sends its next
// message: while its database is paused, the message waits for RESUME
// (a Terminate does not).
func (c *clientConn) pauseQuery(prev ConnState, typ byte) error {
	if prev != StateIdle || typ == 'X' || c.srv.adm.pause.n.Load() == 0 {
		return nil
	}
	if !c.waitPaused(c.database, nil) {
		return errSilent
	}
	return nil
}

// --- the console connection ---

// checkAdminStartup accepts a startup for the admin database from a user
// in admin_users only.
func (c *clientConn) checkAdminStartup(st *wire.Startup) error {
	user := st.Params["user"]
	if len(c.lc.cfg.AdminUsers) == 0 {
		c.srv.authFailure(AuthReasonUsername)
		return wire.Fatal(wire.CodeInvalidAuthorization, "the admin console is off").
			WithHint("List admin users in admin_users to turn it on.")
	}
	if !slices.Contains(c.lc.cfg.AdminUsers, user) {
		c.srv.authFailure(AuthReasonUsername)
		return wire.Fatal(wire.CodeInvalidAuthorization, "user %q may not connect to the admin console", user).
			WithHint("Only users listed in admin_users may connect to database \"multigres\".")
	}
	if c.lc.cfg.ClientTLSMode == "require" && !c.tls {
		// The console can pause and kill: no weaker than tenant logins.
		c.srv.authFailure(AuthReasonTLSRequired)
		return wire.Fatal(wire.CodeInvalidAuthorization, "multigres requires TLS for admin console connections").
			WithHint("Connect with sslmode=require (client_tls_mode = require).")
	}
	c.ident = &tenant.Identity{User: user, Role: user, Bypass: true}
	c.database = admin.Database
	c.ad.isAdmin = true
	c.setLogUser(user, true)
	c.ad.info.Store(&connInfo{user: user, database: admin.Database, role: user, admin: true,
		tls: c.tls, appName: st.Params["application_name"]})
	return nil
}

// lookupDatabase is where auth_query looks up the client's secret: the
// admin database does not exist upstream, so admin users are looked up in
// auth_dbname, or "postgres" when it is empty.
func (c *clientConn) lookupDatabase() string {
	if !c.ad.isAdmin {
		return c.database
	}
	if db := c.lc.cfg.AuthDatabase; db != "" {
		return db
	}
	return "postgres"
}

// adminReady finishes an admin login without any upstream connection.
func (c *clientConn) adminReady() error {
	for _, p := range [][2]string{{"server_version", "16.0 (multigres " + admin.Version + ")"}, {"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}, {"standard_conforming_strings", "on"},
		{"integer_datetimes", "on"}, {"application_name", ""}} {
		c.writeMsg(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	c.srv.cancels.register(c)
	c.keyed = true
	c.writeMsg(&pgproto3.BackendKeyData{ProcessID: c.key.pid, SecretKey: c.key.secret[:]})
	c.writeMsg(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	c.setState(StateIdle)
	if err := c.flush(); err != nil {
		return fmt.Errorf("%w: %v", errSilent, err)
	}
	c.logger().Info("admin console login")
	return nil
}

// serveAdmin runs the console until the client leaves. A shutdown closes
// the console between commands (it would otherwise hold the drain until
// shutdown_timeout); KILL-style closes cancel a command in progress.
func (c *clientConn) serveAdmin() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dead := c.ad.deadChan()
	go func() {
		select {
		case <-dead:
			cancel()
		case <-c.srv.shutdown:
			c.ad.cmdMu.Lock()
			c.kill()
			c.ad.cmdMu.Unlock()
		case <-ctx.Done():
		}
	}()
	con := &admin.Console{Proxy: c.srv, Command: func(ctx context.Context) (context.Context, func()) {
		c.ad.cmdMu.Lock()
		c.setState(StateActive)
		cctx, cancel := context.WithCancel(ctx)
		c.ad.cancelCmd.Store(&cancel)
		return cctx, func() {
			c.ad.cancelCmd.Store(nil)
			cancel()
			c.setState(StateIdle)
			c.ad.cmdMu.Unlock()
		}
	}}
	// The console is rare: it gets a plain buffered writer of its own,
	// after whatever the login left buffered.
	if err := c.flush(); err != nil {
		return
	}
	if err := con.Serve(ctx, c.rd, bufio.NewWriter(c.nc)); err != nil && !isClosed(err) {
		c.logger().Info("admin console connection ended", "err", err)
	}
}

// cancelAdmin cancels the console command in progress on c, if any (a
// CancelRequest with the console connection's key, e.g. psql's Ctrl-C).
func (c *clientConn) cancelAdmin() bool {
	if !c.ad.isAdmin {
		return false
	}
	if cancel := c.ad.cancelCmd.Load(); cancel != nil {
		(*cancel)()
	}
	return true
}

// --- admin.Proxy views ---

var _ admin.Proxy = (*Server)(nil)

func splitAddr(a net.Addr) (string, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	if a == nil {
		return "", 0
	}
	return a.String(), 0
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
		c.mu.Lock()
		nc := c.nc
		c.mu.Unlock()
		ci := admin.ClientInfo{ID: c.id, State: c.State().String(), ConnectTime: c.epoch, RequestTime: c.epoch}
		ci.Addr, ci.Port = splitAddr(nc.RemoteAddr())
		ci.LocalAddr, ci.LocalPort = splitAddr(nc.LocalAddr())
		if info := c.ad.info.Load(); info != nil {
			ci.User, ci.Database, ci.Role, ci.Tenant, ci.TLS = info.user, info.database, info.role, info.tenant, info.tls
			ci.ApplicationName, ci.Admin = info.appName, info.admin
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
		out = append(out, ci)
	}
	return out
}

// Servers lists server connections: in session mode, one per client that
// has logged in upstream; then every transaction-mode pooled connection.
func (s *Server) Servers() []admin.ServerInfo {
	var out []admin.ServerInfo
	for _, c := range s.snapshot() {
		info := c.ad.info.Load()
		server := c.currentServer()
		if info == nil || info.admin || server == nil {
			continue
		}
		si := admin.ServerInfo{ClientID: c.id, User: info.role, Database: info.database, PID: server.PID, Tenant: info.tenant,
			State: serverState(c.State())}
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
	return append(out, s.pooledServers()...)
}

// pooledServers lists the transaction-mode pools' connections: held ones
// are active with the holding client as link (and its tenant), the rest
// idle in the pool.
func (s *Server) pooledServers() []admin.ServerInfo {
	set := s.poolSet.Load()
	if set == nil {
		return nil
	}
	tenants := map[uint64]string{}
	for _, c := range s.snapshot() {
		if info := c.ad.info.Load(); info != nil {
			tenants[c.id] = info.tenant
		}
	}
	var out []admin.ServerInfo
	for _, sv := range set.Servers() {
		si := admin.ServerInfo{User: sv.Role, Database: sv.Database, PID: sv.PID, State: "idle",
			ConnectTime: sv.Created, RequestTime: sv.LastUsed}
		if sv.Holder != 0 {
			si.State, si.ClientID, si.Tenant = "active", sv.Holder, tenants[sv.Holder]
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

func serverState(client ConnState) string {
	switch client {
	case StateIdle:
		return "idle"
	case StateConnecting, StateInjecting:
		return "login"
	default:
		return "active"
	}
}

// PoolStat is one transaction-mode pool, for metrics.
type PoolStat struct {
	Database, Role        string
	Active, Idle, Waiting int
}

// PoolStats returns the transaction-mode pools (none before first use).
func (s *Server) PoolStats() []PoolStat {
	set := s.poolSet.Load()
	if set == nil {
		return nil
	}
	var out []PoolStat
	for _, ps := range set.Stats() {
		out = append(out, PoolStat{Database: ps.Database, Role: ps.Role, Active: ps.Open - ps.Idle, Idle: ps.Idle, Waiting: ps.Waits})
	}
	return out
}

// Pools summarises the connections per (database, role), PgBouncer style.
// In session mode a client in a transaction or running a query makes its
// server sv_active; idle clients keep an sv_idle server. In transaction
// mode the server columns come from the pool itself.
func (s *Server) Pools() []admin.PoolInfo {
	type key struct{ db, role string }
	pools := map[key]*admin.PoolInfo{}
	var keys []key
	now := time.Now()
	get := func(k key, mode string) *admin.PoolInfo {
		p := pools[k]
		if p == nil {
			p = &admin.PoolInfo{Database: k.db, User: k.role, Mode: mode}
			pools[k] = p
			keys = append(keys, k)
		}
		return p
	}
	for _, c := range s.snapshot() {
		info := c.ad.info.Load()
		if info == nil || info.admin {
			continue
		}
		st := c.State()
		if c.tx.pool != nil {
			p := get(key{info.database, info.role}, "transaction")
			if st != StateClosed {
				p.ClActive++
			}
			continue
		}
		p := get(key{info.database, info.role}, "session")
		if c.ad.waiting.Load() {
			p.ClWaiting++
			p.MaxWait = max(p.MaxWait, now.Sub(time.Unix(0, c.ad.waitSince.Load())))
			if st == StateConnecting {
				continue // no server yet
			}
		}
		switch st {
		case StateAuth, StateConnecting, StateInjecting:
			if !c.ad.waiting.Load() {
				p.ClWaiting++
			}
			if st != StateAuth {
				p.SvLogin++
			}
		case StateIdle:
			p.ClActive++
			p.SvIdle++
		case StateActive, StateInTransaction:
			if !c.ad.waiting.Load() {
				p.ClActive++
			}
			p.SvActive++
		}
	}
	if set := s.poolSet.Load(); set != nil {
		for _, ps := range set.Stats() {
			p := get(key{ps.Database, ps.Role}, "transaction")
			p.SvIdle += ps.Idle
			p.SvActive += ps.Open - ps.Idle
			p.ClWaiting += ps.Waits
			p.ClActive -= min(p.ClActive, ps.Waits)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].db != keys[j].db {
			return keys[i].db < keys[j].db
		}
		return keys[i].role < keys[j].role
	})
	out := make([]admin.PoolInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, *pools[k])
	}
	return out
}

// Stats returns per-database totals since the server started. Bytes of
// open connections are added to those of closed ones.
func (s *Server) Stats() []admin.DatabaseStats {
	conns := s.snapshot()
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	live := map[string][2]uint64{}
	for _, c := range conns {
		info := c.ad.info.Load()
		if info == nil || info.stats == nil || info.stats.folded {
			continue
		}
		b := live[info.database]
		b[0] += c.ad.in.Load()
		b[1] += c.ad.out.Load()
		live[info.database] = b
	}
	out := make([]admin.DatabaseStats, 0, len(s.adm.dbs))
	for name, a := range s.adm.dbs {
		out = append(out, admin.DatabaseStats{Database: name, Xacts: a.xacts.Load(), Queries: a.queries.Load(),
			Received: a.received + live[name][0], Sent: a.sent + live[name][1],
			XactTime: time.Duration(a.xactNanos.Load()), QueryTime: time.Duration(a.queryNanos.Load()),
			WaitTime: time.Duration(a.waitNanos.Load()), Logins: a.logins.Load(), Since: a.since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Database < out[j].Database })
	return out
}

// Tenants lists the tenants seen, per role and database.
func (s *Server) Tenants() []admin.TenantInfo {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	out := make([]admin.TenantInfo, 0, len(s.adm.tenants))
	for _, a := range s.adm.tenants {
		out = append(out, admin.TenantInfo{Tenant: a.tenant, Role: a.role, Database: a.database,
			Connections: int(a.current.Load()), TotalConnections: a.logins.Load(), Xacts: a.xacts.Load(),
			Queries: a.queries.Load(), Errors: a.errors.Load(), Since: a.since})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Tenant != b.Tenant {
			return a.Tenant < b.Tenant
		}
		if a.Role != b.Role {
			return a.Role < b.Role
		}
		return a.Database < b.Database
	})
	return out
}

// --- counters ---

// aggStats are the totals of one database or one tenant.
type aggStats struct {
	tenant, role, database string
	since                  time.Time
	logins, xacts, queries atomic.Uint64
	errors                 atomic.Uint64
	xactNanos, queryNanos  atomic.Int64
	waitNanos              atomic.Int64
	current                atomic.Int64 // open connections (tenants)
	received, sent         uint64       // of closed connections; adminState.mu
}

// maxIdleTenants bounds how many tenants without open connections SHOW
// TENANTS remembers; past it, such tenants are forgotten (oldest first is
// not tracked: any idle one may go).
const maxIdleTenants = 10000

func (s *Server) statsFor(c *clientConn, info SessionInfo, tname string) *connStats {
	s.adm.mu.Lock()
	defer s.adm.mu.Unlock()
	now := time.Now()
	if s.adm.dbs == nil {
		s.adm.dbs, s.adm.tenants = map[string]*aggStats{}, map[string]*aggStats{}
	}
	db := s.adm.dbs[info.Database]
	if db == nil {
		db = &aggStats{database: info.Database, since: now}
		s.adm.dbs[info.Database] = db
	}
	db.logins.Add(1)
	st := &connStats{c: c, db: db}
	if tname != "" {
		k := tname + "\x00" + info.Role + "\x00" + info.Database
		t := s.adm.tenants[k]
		if t == nil {
			if len(s.adm.tenants) >= maxIdleTenants {
				for key, old := range s.adm.tenants {
					if old.current.Load() == 0 {
						delete(s.adm.tenants, key)
					}
				}
			}
			t = &aggStats{tenant: tname, role: info.Role, database: info.Database, since: now}
			s.adm.tenants[k] = t
		}
		t.logins.Add(1)
		t.current.Add(1)
		st.tenant = t
	}
	return st
}

// connStats is the server's own Session for one connection: it feeds SHOW
// STATS, SHOW TENANTS and request times. Atomic adds only.
type connStats struct {
	c           *clientConn
	db, tenant  *aggStats
	connectedAt atomic.Int64 // unix nanoseconds
	lastRequest atomic.Int64
	folded      bool // bytes added to db; adminState.mu
}

var _ Session = (*connStats)(nil)

func (st *connStats) Connected(wait time.Duration) {
	st.db.waitNanos.Add(int64(wait))
	st.connectedAt.Store(time.Now().UnixNano())
}

func (st *connStats) State(_, to ConnState) {
	if to != StateClosed {
		return
	}
	if st.tenant != nil {
		st.tenant.current.Add(-1)
	}
	srv := st.c.srv
	srv.adm.mu.Lock()
	st.db.received += st.c.ad.in.Load()
	st.db.sent += st.c.ad.out.Load()
	st.folded = true
	srv.adm.mu.Unlock()
}

func (st *connStats) Query(d time.Duration) {
	st.db.queries.Add(1)
	st.db.queryNanos.Add(int64(d))
	if st.tenant != nil {
		st.tenant.queries.Add(1)
	}
	st.lastRequest.Store(time.Now().UnixNano())
}

func (st *connStats) Transaction(d time.Duration) {
	st.db.xacts.Add(1)
	st.db.xactNanos.Add(int64(d))
	if st.tenant != nil {
		st.tenant.xacts.Add(1)
	}
}

func (st *connStats) Error() {
	st.db.errors.Add(1)
	if st.tenant != nil {
		st.tenant.errors.Add(1)
	}
}

// teeSession feeds two Sessions (the server's own and the hook's).
type teeSession struct{ a, b Session }

func (t teeSession) Connected(w time.Duration) { t.a.Connected(w); t.b.Connected(w) }
func (t teeSession) State(f, to ConnState)     { t.a.State(f, to); t.b.State(f, to) }
func (t teeSession) Query(d time.Duration)     { t.a.Query(d); t.b.Query(d) }
func (t teeSession) Transaction(d time.Duration) {
	t.a.Transaction(d)
	t.b.Transaction(d)
}
func (t teeSession) Error() { t.a.Error(); t.b.Error() }

// observe publishes the connection to the console and returns its Session:
// the server's counters, teed with Hooks.Session's observer if any.
func (c *clientConn) observe(info SessionInfo) Session {
	appName := ""
	for _, p := range c.params {
		if p.Name == "application_name" {
			appName = p.Value
		}
	}
	name := ""
	if !c.ident.Bypass {
		name = tenantName(c.lc.cfg, c.ident.Values) // as the tenant limits name it
	}
	st := c.srv.statsFor(c, info, name)
	c.ad.info.Store(&connInfo{user: c.ident.User, database: c.database, role: c.ident.Role, tenant: name,
		appName: appName, tls: c.tls, stats: st})
	if hook := c.srv.Hooks.Session; hook != nil {
		if other := hook(info); other != nil {
			return teeSession{st, other}
		}
	}
	return st
}
