package admin

import (
	"context"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
)

// Views is what the SHOW commands read from the proxy.
type Views interface {
	// Clients lists client connections, the console's own included.
	Clients() []ClientInfo
	// Servers lists server connections.
	Servers() []ServerInfo
	// Pools summarises connections per pool (database, role).
	Pools() []PoolInfo
	// Stats returns the totals per database since the proxy started.
	Stats() []DatabaseStats
	// Tenants lists tenants seen since the proxy started (those with open
	// connections are never forgotten).
	Tenants() []TenantInfo
	// Config is the configuration in effect for new connections.
	Config() *config.Config
	// Routes lists the routing in effect: moves in progress, runtime
	// overrides, then the configuration's rules in the order they apply.
	Routes() []RouteInfo
}

// Controls is what the console commands that change the proxy call.
type Controls interface {
	// Pause stops new logins and new transactions on db ("" for all) and
	// returns once the running transactions have finished, or ctx ends.
	Pause(ctx context.Context, db string) error
	// Resume lifts a Pause of db ("" for the global one).
	Resume(db string) error
	// ReloadConfig re-reads the configuration as SIGHUP does.
	ReloadConfig() error
	// KillTenant closes every client connection whose tenant label is
	// tenant and returns how many it closed.
	KillTenant(tenant string) int
	// RequestShutdown starts a graceful shutdown, as SIGTERM does.
	RequestShutdown()
	// MoveTenant runs a step of moving tenant to cluster (see MoveStep)
	// and reports where the move stands.
	MoveTenant(ctx context.Context, tenant, cluster string, step MoveStep) (MoveInfo, error)
	// ResumeTenant ends a move of tenant that has not switched: its
	// paused logins and transactions go on, on the cluster they were on.
	ResumeTenant(tenant string) error
	// RefreshTenant forgets the tenant directory's answer for tenant (""
	// for every tenant) and reports where the tenant goes now.
	RefreshTenant(ctx context.Context, tenant string) (RefreshInfo, error)
}

// RefreshInfo reports a REFRESH TENANT or REFRESH TENANTS.
type RefreshInfo struct {
	Tenant    string // "*" for all
	Forgotten int    // cached answers dropped
	// Cluster and Source: where the tenant is routed now, and by what
	// (empty for all tenants).
	Cluster, Source string
	// OverrideDropped: a MOVE TENANT override was dropped (the tenant's,
	// or any for all tenants), the directory now placing it on the same
	// cluster.
	OverrideDropped bool
	// Closed counts the session-mode connections ended because the
	// directory now places their tenant elsewhere (or cannot place it).
	Closed int
}

// MoveStep is how much of a tenant move one MOVE TENANT command does.
type MoveStep int

// The steps. MovePause pauses the tenant's new logins and transactions
// and waits (up to tenant_move_timeout) for its open transactions to
// finish; the operator then copies the tenant's data. MoveSwitch routes
// the tenant to the new cluster and resumes it. MoveAll does both at once,
// for data that is already in place.
const (
	MoveAll MoveStep = iota
	MovePause
	MoveSwitch
)

// MoveInfo reports a MOVE TENANT step.
type MoveInfo struct {
	Tenant, From, To string
	State            string        // "paused" or "switched"
	Waited           time.Duration // for open transactions to finish
	// Closed counts the tenant's session-mode connections on other
	// clusters that the switch ended (they must reconnect).
	Closed int
	// Persisted: the route is in route_state_file, so it survives a
	// restart.
	Persisted bool
}

// RouteInfo is one row of SHOW ROUTES.
type RouteInfo struct {
	Match   string // a tenant label or pattern, a database, or "*"
	Source  string // move, override, tenant_routes, database_routes, default_cluster
	Cluster string
	State   string // for a move: "paused since <time>, from <cluster>"
}

// Proxy is what the console needs from the proxy.
type Proxy interface {
	Views
	Controls
}

// Health is what the HTTP endpoints need from the proxy.
type Health interface {
	// Draining reports whether a shutdown has begun (/readyz fails then).
	Draining() bool
	// Config is the configuration in effect; /readyz probes its upstream.
	Config() *config.Config
}

// ClientInfo describes one client connection.
type ClientInfo struct {
	ID              uint64
	User            string // as the client sent it
	Database        string
	Role            string // the role multigres logs in upstream as
	Tenant          string // the tenant label; "" for bypass and admin users
	State           string // frontend connection state, or "waiting" while paused
	Addr            string
	Port            int
	LocalAddr       string
	LocalPort       int
	ConnectTime     time.Time
	RequestTime     time.Time // last query completed (connect time before any)
	Wait            time.Duration
	TLS             bool
	ApplicationName string
	Admin           bool
	Cluster         string // the upstream cluster; "" for admin connections
}

// ServerInfo describes one server connection (in session mode, one per
// connected client).
type ServerInfo struct {
	ClientID    uint64 // the client using it (PgBouncer's "link")
	User        string // role
	Database    string
	State       string // active, idle or login
	Addr        string
	Port        int
	LocalAddr   string
	LocalPort   int
	ConnectTime time.Time
	RequestTime time.Time
	PID         uint32
	Tenant      string // the holding client's tenant label; "" when none
	Cluster     string // the upstream cluster
}

// PoolInfo summarises one pool.
type PoolInfo struct {
	Database, User                              string
	ClActive, ClWaiting                         int
	SvActive, SvIdle, SvUsed, SvTested, SvLogin int
	MaxWait                                     time.Duration
	Mode                                        string
	Cluster                                     string
}

// DatabaseStats are totals for one database since Since.
type DatabaseStats struct {
	Database            string
	Xacts, Queries      uint64
	Received, Sent      uint64
	XactTime, QueryTime time.Duration
	WaitTime            time.Duration
	Logins              uint64
	Since               time.Time
}

// TenantInfo is one tenant's activity on one (role, database). Tenant is
// the tenant label, as in ClientInfo.
type TenantInfo struct {
	Tenant, Role, Database string
	Connections            int // open now
	TotalConnections       uint64
	Xacts, Queries, Errors uint64
	Since                  time.Time // first seen
	Cluster                string    // where the tenant is routed now; "" when nowhere
}
