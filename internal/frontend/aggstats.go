package frontend

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/route"
)

// The per-database and per-tenant totals that SHOW STATS and SHOW TENANTS
// read, fed by each connection's connStats. The counters are atomic adds,
// since they sit on the relay's hot path.

// aggregates are the server's totals. The zero value is ready to use.
type aggregates struct {
	mu      sync.Mutex // guards the maps and aggStats.received/sent
	dbs     map[string]*aggStats
	tenants map[string]*aggStats // key: tenant \x00 role \x00 database
}

// aggStats are the totals of one database or one tenant.
type aggStats struct {
	tenant, role, database string
	since                  time.Time
	logins, xacts, queries atomic.Uint64
	errors                 atomic.Uint64
	xactNanos, queryNanos  atomic.Int64
	waitNanos              atomic.Int64
	current                atomic.Int64 // open connections (tenants)
	received, sent         uint64       // of closed connections; aggregates.mu
}

// maxIdleTenants bounds how many tenants without open connections SHOW
// TENANTS remembers; past it, such tenants are forgotten (oldest first is
// not tracked: any idle one may go).
const maxIdleTenants = 10000

// open counts a login of c (of no tenant when info.Tenant is "") and
// returns the connection's counters.
func (a *aggregates) open(c *clientConn, info SessionInfo) *connStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if a.dbs == nil {
		a.dbs, a.tenants = map[string]*aggStats{}, map[string]*aggStats{}
	}
	db := a.dbs[info.Database]
	if db == nil {
		db = &aggStats{database: info.Database, since: now}
		a.dbs[info.Database] = db
	}
	db.logins.Add(1)
	st := &connStats{c: c, db: db}
	if info.Tenant != "" {
		t := a.tenant(info, now)
		t.logins.Add(1)
		t.current.Add(1)
		st.tenant = t
	}
	return st
}

// tenant returns the totals of info's tenant on its role and database,
// making them on first sight. a.mu is held.
func (a *aggregates) tenant(info SessionInfo, now time.Time) *aggStats {
	k := info.Tenant + "\x00" + info.Role + "\x00" + info.Database
	t := a.tenants[k]
	if t != nil {
		return t
	}
	if len(a.tenants) >= maxIdleTenants {
		for key, old := range a.tenants {
			if old.current.Load() == 0 {
				delete(a.tenants, key)
			}
		}
	}
	t = &aggStats{tenant: info.Tenant, role: info.Role, database: info.Database, since: now}
	a.tenants[k] = t
	return t
}

// Stats returns per-database totals since the server started. Bytes of
// open connections are added to those of closed ones.
func (s *Server) Stats() []admin.DatabaseStats {
	conns := s.snapshot()
	a := &s.adm.agg
	a.mu.Lock()
	defer a.mu.Unlock()
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
	out := make([]admin.DatabaseStats, 0, len(a.dbs))
	for name, d := range a.dbs {
		out = append(out, admin.DatabaseStats{Database: name, Xacts: d.xacts.Load(), Queries: d.queries.Load(),
			Received: d.received + live[name][0], Sent: d.sent + live[name][1],
			XactTime: time.Duration(d.xactNanos.Load()), QueryTime: time.Duration(d.queryNanos.Load()),
			WaitTime: time.Duration(d.waitNanos.Load()), Logins: d.logins.Load(), Since: d.since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Database < out[j].Database })
	return out
}

// Tenants lists the tenants seen, per role and database, with the cluster
// each is routed to now ("" when none places it).
func (s *Server) Tenants() []admin.TenantInfo {
	a := &s.adm.agg
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]admin.TenantInfo, 0, len(a.tenants))
	router := s.routing.router // nil in a Server made without New (tests)
	for _, t := range a.tenants {
		var d route.Decision
		if router != nil {
			var dir route.DirAnswer
			if s.routing.dir != nil {
				dir = s.routing.dir.cached(t.tenant)
			}
			d, _ = router.Tenant(t.tenant, t.database, dir)
		}
		out = append(out, admin.TenantInfo{Tenant: t.tenant, Role: t.role, Database: t.database,
			Connections: int(t.current.Load()), TotalConnections: t.logins.Load(), Xacts: t.xacts.Load(),
			Queries: t.queries.Load(), Errors: t.errors.Load(), Since: t.since, Cluster: d.Cluster})
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

// connStats is the server's own Session for one connection: it feeds SHOW
// STATS, SHOW TENANTS and request times. Atomic adds only.
type connStats struct {
	c           *clientConn
	db, tenant  *aggStats
	connectedAt atomic.Int64 // unix nanoseconds
	lastRequest atomic.Int64
	folded      bool // bytes added to db; aggregates.mu
}

var _ Session = (*connStats)(nil)

func (st *connStats) Connected(wait time.Duration) {
	st.db.waitNanos.Add(int64(wait))
	st.connectedAt.Store(time.Now().UnixNano())
}

// State folds the connection's bytes into its database's totals once it
// closes, so SHOW STATS keeps them.
func (st *connStats) State(_, to ConnState) {
	if to != StateClosed {
		return
	}
	if st.tenant != nil {
		st.tenant.current.Add(-1)
	}
	agg := &st.c.srv.adm.agg
	agg.mu.Lock()
	st.db.received += st.c.ad.in.Load()
	st.db.sent += st.c.ad.out.Load()
	st.folded = true
	agg.mu.Unlock()
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

// observe publishes the connection to the admin console and returns its
// Session: the server's counters, teed with Hooks.Session's observer if any.
func (c *clientConn) observe(info SessionInfo) Session {
	appName := ""
	for _, p := range c.params {
		if p.Name == "application_name" {
			appName = p.Value
		}
	}
	st := c.srv.adm.agg.open(c, info)
	c.ad.info.Store(&connInfo{user: c.ident.User, database: c.database, role: c.ident.Role, tenant: info.Tenant,
		appName: appName, tls: c.tls, stats: st, cluster: info.Cluster})
	if hook := c.srv.Hooks.Session; hook != nil {
		if other := hook(info); other != nil {
			return teeSession{st, other}
		}
	}
	return st
}
