// Package metrics holds the proxy's Prometheus collectors: what the proxy
// is doing, as counters, gauges and histograms in a registry of its own.
// internal/admin serves that registry on /metrics.
//
// It observes the frontend through frontend.Hooks only, so the proxy does
// not depend on Prometheus. Each Metrics has its own prometheus.Registry,
// never the global default, so several proxies in one process (tests) do not
// collide. On the relay's hot path the hooks do atomic adds on label values
// resolved once per connection: no locks and no allocations per frame.
//
// Labels never carry query text, parameters or passwords: only connection
// states, pools (database/role, with their upstream cluster), tenants
// (bounded by metrics_max_tenants), auth failure reasons, guard rule names
// and cancel forwarding results, all from small fixed sets or
// authenticated identities.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/multigres-proxy/multigres/internal/frontend"
)

// OtherTenant is the tenant label of every tenant seen after the first
// metrics_max_tenants.
const OtherTenant = "other"

// durationBuckets suit both sub-millisecond queries and waits of seconds.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics holds the proxy's collectors and their registry. Create it with
// New and connect it to a server with Instrument.
type Metrics struct {
	// Registry holds only this proxy's metrics (and Go/process collectors).
	Registry *prometheus.Registry

	clientConns      [frontend.StateClosed]prometheus.Gauge // indexed by state; new and closed unused
	clientConnsTotal prometheus.Counter
	serverConns      *prometheus.GaugeVec
	poolWait         *prometheus.HistogramVec
	queries          *prometheus.CounterVec
	queryDur         *prometheus.HistogramVec
	txs              *prometheus.CounterVec
	txDur            *prometheus.HistogramVec
	authFailures     *prometheus.CounterVec
	guardRejects     *prometheus.CounterVec
	cancels          [2]prometheus.Counter // [0] not forwarded, [1] forwarded
	peerCancels      *prometheus.CounterVec
	dirLookups       *prometheus.CounterVec
	tenantConns      *prometheus.CounterVec
	tenantTxs        *prometheus.CounterVec
	tenantErrors     *prometheus.CounterVec

	maxTenants int
	mu         sync.Mutex
	pools      map[string]*poolMetrics
	tenants    map[string]*tenantMetrics // at most maxTenants
	other      *tenantMetrics
}

// poolMetrics are one pool's label values, resolved once.
type poolMetrics struct {
	serverActive, serverIdle  prometheus.Gauge
	poolWait, queryDur, txDur prometheus.Observer
	queries, txs              prometheus.Counter
}

// tenantMetrics are one tenant's (or "other"'s) counters.
type tenantMetrics struct {
	conns, txs, errors prometheus.Counter
}

// New creates the collectors in a fresh registry. maxTenants bounds the
// tenant label values (metrics_max_tenants); values < 1 mean 1.
func New(maxTenants int) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), maxTenants: max(maxTenants, 1),
		pools: map[string]*poolMetrics{}, tenants: map[string]*tenantMetrics{}}
	f := factory{m.Registry}
	states := f.gaugeVec("client_connections", "Client connections by state (startup, auth, connecting, injecting, idle, active, idle_in_transaction).", "state")
	for s := frontend.StateStartup; s < frontend.StateClosed; s++ {
		m.clientConns[s] = states.WithLabelValues(s.String())
	}
	m.clientConnsTotal = f.counter("client_connections_total", "Client connections accepted.")
	m.serverConns = f.gaugeVec("server_connections", "Server connections by pool (database/role), cluster and state: active (in use by its client) or idle.", "pool", "cluster", "state")
	m.poolWait = f.histogramVec("pool_wait_seconds", "Time a client waited, after authenticating, for a ready server connection (in session mode: the upstream connect and login).", "pool", "cluster")
	m.queries = f.counterVec("queries_total", "Queries completed: a Query, Sync or FunctionCall answered by ReadyForQuery.", "pool", "cluster")
	m.queryDur = f.histogramVec("query_duration_seconds", "Query latency, from the client's Query/Sync to ReadyForQuery (pipelined ones from the previous ReadyForQuery).", "pool", "cluster")
	m.txs = f.counterVec("transactions_total", "Transactions completed: back to idle after one or more statements (an autocommit statement counts as one).", "pool", "cluster")
	m.txDur = f.histogramVec("transaction_duration_seconds", "Transaction latency, from the first statement after an idle ReadyForQuery to the next idle ReadyForQuery.", "pool", "cluster")
	m.authFailures = f.counterVec("auth_failures_total", "Refused logins by reason.", "reason")
	for _, r := range []string{frontend.AuthReasonPassword, frontend.AuthReasonUsername, frontend.AuthReasonTLSRequired,
		frontend.AuthReasonPlaintext, frontend.AuthReasonLookup, frontend.AuthReasonProtocol, frontend.AuthReasonUpstream,
		frontend.AuthReasonStartupParam, frontend.AuthReasonNoRoute} {
		m.authFailures.WithLabelValues(r) // present at 0, so rate() works from the first failure
	}
	m.guardRejects = f.counterVec("guard_rejections_total", "Statements refused by the SQL guard, by rule.", "rule")
	cancels := f.counterVec("cancels_total", "Cancel requests received; forwarded=true when the key matched a client with a server connection.", "forwarded")
	m.cancels[0], m.cancels[1] = cancels.WithLabelValues("false"), cancels.WithLabelValues("true")
	m.peerCancels = f.counterVec("peer_cancel_forwards_total", "Cancel requests whose key another process of the fleet issued, by result: ok (delivered to that peer), failed (dial, write or close failed or timed out), dropped (no forwarding slot free), unknown_peer (the id is not in peers).", "result")
	for _, r := range []string{frontend.PeerCancelOK, frontend.PeerCancelFailed, frontend.PeerCancelDropped, frontend.PeerCancelUnknown} {
		m.peerCancels.WithLabelValues(r)
	}
	m.dirLookups = f.counterVec("tenant_directory_lookups_total", "Queries of the tenant directory (tenant_directory_query; cached answers are not counted), by result: row (a configured cluster), no_row (no row or a NULL: the static routes decide), error (failed, timed out, or named an unknown cluster: the tenant was refused).", "result")
	for _, r := range []string{frontend.DirLookupRow, frontend.DirLookupNoRow, frontend.DirLookupError} {
		m.dirLookups.WithLabelValues(r)
	}
	m.tenantConns = f.counterVec("tenant_connections_total", "Authenticated client connections per tenant (the tenant label: context values joined by value_separator; \"other\" past metrics_max_tenants).", "tenant")
	m.tenantTxs = f.counterVec("tenant_transactions_total", "Transactions completed per tenant.", "tenant")
	m.tenantErrors = f.counterVec("tenant_errors_total", "ErrorResponses sent to the tenant's clients.", "tenant")
	m.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Instrument installs the hooks on srv (replacing any set before) and
// registers the byte counters it keeps. Call it before srv serves.
func (m *Metrics) Instrument(srv *frontend.Server) {
	srv.Hooks = m.Hooks()
	f := factory{m.Registry}
	f.counterFunc("client_received_bytes_total", "Bytes received from clients, as read from the sockets (TLS included).",
		func() float64 { in, _ := srv.ClientBytes(); return float64(in) })
	f.counterFunc("client_sent_bytes_total", "Bytes sent to clients, as written to the sockets (TLS included).",
		func() float64 { _, out := srv.ClientBytes(); return float64(out) })
	m.Registry.MustRegister(&poolCollector{srv: srv})
}

// poolCollector reports the transaction-mode pools at scrape time.
type poolCollector struct{ srv *frontend.Server }

var (
	pooledServerDesc = prometheus.NewDesc("multigres_pooled_server_connections",
		"Transaction-mode server connections by pool (database/role), cluster and state: active (lent to a client) or idle.", []string{"pool", "cluster", "state"}, nil)
	poolWaitingDesc = prometheus.NewDesc("multigres_pool_waiting_clients",
		"Transaction-mode clients waiting for a server connection, by pool and cluster.", []string{"pool", "cluster"}, nil)
)

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pooledServerDesc
	ch <- poolWaitingDesc
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ps := range p.srv.PoolStats() {
		name := ps.Database + "/" + ps.Role
		ch <- prometheus.MustNewConstMetric(pooledServerDesc, prometheus.GaugeValue, float64(ps.Active), name, ps.Cluster, "active")
		ch <- prometheus.MustNewConstMetric(pooledServerDesc, prometheus.GaugeValue, float64(ps.Idle), name, ps.Cluster, "idle")
		ch <- prometheus.MustNewConstMetric(poolWaitingDesc, prometheus.GaugeValue, float64(ps.Waiting), name, ps.Cluster)
	}
}

// Hooks returns frontend hooks that feed these metrics.
func (m *Metrics) Hooks() frontend.Hooks {
	return frontend.Hooks{
		ConnState: m.connState,
		AuthFailure: func(reason string) {
			m.authFailures.WithLabelValues(reason).Inc()
		},
		Cancel: func(forwarded bool) {
			if forwarded {
				m.cancels[1].Inc()
			} else {
				m.cancels[0].Inc()
			}
		},
		GuardReject:     func(rule string) { m.guardRejects.WithLabelValues(rule).Inc() },
		PeerCancel:      func(result string) { m.peerCancels.WithLabelValues(result).Inc() },
		DirectoryLookup: func(result string) { m.dirLookups.WithLabelValues(result).Inc() },
		Session:         m.session,
	}
}

func (m *Metrics) connState(_ uint64, from, to frontend.ConnState) {
	if from == frontend.StateNew {
		m.clientConnsTotal.Inc()
	} else if g := m.stateGauge(from); g != nil {
		g.Dec()
	}
	if g := m.stateGauge(to); g != nil {
		g.Inc()
	}
}

func (m *Metrics) stateGauge(s frontend.ConnState) prometheus.Gauge {
	if s <= frontend.StateNew || s >= frontend.StateClosed {
		return nil
	}
	return m.clientConns[s]
}

// pool returns the resolved metrics of pool "database/role" on cluster.
func (m *Metrics) pool(name, cluster string) *poolMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := cluster + "\x00" + name
	p := m.pools[key]
	if p == nil {
		p = &poolMetrics{
			serverActive: m.serverConns.WithLabelValues(name, cluster, "active"),
			serverIdle:   m.serverConns.WithLabelValues(name, cluster, "idle"),
			poolWait:     m.poolWait.WithLabelValues(name, cluster),
			queryDur:     m.queryDur.WithLabelValues(name, cluster),
			txDur:        m.txDur.WithLabelValues(name, cluster),
			queries:      m.queries.WithLabelValues(name, cluster),
			txs:          m.txs.WithLabelValues(name, cluster),
		}
		m.pools[key] = p
	}
	return p
}

// tenant returns the counters of tenant, folding tenants past maxTenants
// into OtherTenant. Label values are never evicted: counters must not go
// back to zero while the process runs.
func (m *Metrics) tenant(name string) *tenantMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tenants[name]; t != nil {
		return t
	}
	if name == OtherTenant || len(m.tenants) >= m.maxTenants {
		if m.other == nil {
			m.other = m.newTenant(OtherTenant)
		}
		return m.other
	}
	t := m.newTenant(name)
	m.tenants[name] = t
	return t
}

func (m *Metrics) newTenant(label string) *tenantMetrics {
	return &tenantMetrics{conns: m.tenantConns.WithLabelValues(label), txs: m.tenantTxs.WithLabelValues(label),
		errors: m.tenantErrors.WithLabelValues(label)}
}

func (m *Metrics) session(info frontend.SessionInfo) frontend.Session {
	// The login's cluster: a transaction-mode client that later follows
	// its tenant elsewhere is still counted here (the scrape-time pool
	// gauges above are per cluster as they are now).
	s := &session{pool: m.pool(info.Database+"/"+info.Role, info.Cluster)}
	if info.Tenant != "" {
		s.tenant = m.tenant(info.Tenant)
		s.tenant.conns.Inc()
	}
	return s
}

// session observes one connection with its label values resolved.
type session struct {
	pool      *poolMetrics
	tenant    *tenantMetrics // nil for bypass users
	connected bool           // set before the relay starts; read-only after
}

var _ frontend.Session = (*session)(nil)

func (s *session) Connected(wait time.Duration) {
	s.connected = true
	s.pool.poolWait.Observe(wait.Seconds())
	s.pool.serverActive.Inc() // logging in and applying the context: in use
}

// server maps a client state to its server connection's state.
func (s *session) server(st frontend.ConnState) prometheus.Gauge {
	if st == frontend.StateIdle {
		return s.pool.serverIdle
	}
	return s.pool.serverActive
}

func (s *session) State(from, to frontend.ConnState) {
	if !s.connected {
		return
	}
	if to == frontend.StateClosed {
		s.server(from).Dec()
		return
	}
	if f, t := s.server(from), s.server(to); f != t {
		f.Dec()
		t.Inc()
	}
}

func (s *session) Query(d time.Duration) {
	s.pool.queries.Inc()
	s.pool.queryDur.Observe(d.Seconds())
}

func (s *session) Transaction(d time.Duration) {
	s.pool.txs.Inc()
	s.pool.txDur.Observe(d.Seconds())
	if s.tenant != nil {
		s.tenant.txs.Inc()
	}
}

func (s *session) Error() {
	if s.tenant != nil {
		s.tenant.errors.Inc()
	}
}

// factory builds collectors named multigres_* and registers them.
type factory struct{ reg *prometheus.Registry }

const namespace = "multigres"

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterFunc(name, help string, fn func() float64) {
	f.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, fn))
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogramVec(name, help string, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: durationBuckets}, labels)
	f.reg.MustRegister(h)
	return h
}
