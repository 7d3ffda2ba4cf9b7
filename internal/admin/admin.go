// Package admin is multigres's admin console: psql (or any client using the
// simple query protocol) connected to the special database "multigres" as a
// user listed in admin_users. It answers PgBouncer-style commands: SHOW
// POOLS, CLIENTS, SERVERS, STATS, TENANTS, CONFIG and VERSION, and PAUSE,
// RESUME, RELOAD, KILL and SHUTDOWN, one file per command.
//
// The frontend authenticates the admin user like any client, answers the
// startup without an upstream connection, and then hands the socket to
// Serve. The console reaches the proxy only through the Proxy interface, so
// this package does not import the frontend (frontend.Server implements
// Proxy). Every result column is text, and column names follow PgBouncer's
// where one exists, so dashboards and habits carry over.
package admin

import (
	"context"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
)

// Database is the special database name of the admin console.
const Database = "multigres"

// Version is what SHOW VERSION reports; main sets it from the build.
var Version = "dev"

// Proxy is what the console needs from the proxy.
type Proxy interface {
	// Clients lists client connections, the console's own included.
	Clients() []ClientInfo
	// Servers lists server connections.
	Servers() []ServerInfo
	// Pools summarises connections per pool (database, role).
	Pools() []PoolInfo
	// Stats returns the totals per database since the proxy started.
	Stats() []DatabaseStats
	// Tenants lists tenants seen since the proxy started (those with open
	// connections first among them are never forgotten).
	Tenants() []TenantInfo
	// Config is the configuration in effect for new connections.
	Config() *config.Config
	// Pause stops new logins and new transactions on db ("" for all) and
	// returns once the running transactions have finished, or ctx ends.
	Pause(ctx context.Context, db string) error
	// Resume lifts a Pause of db ("" for the global one).
	Resume(db string) error
	// ReloadConfig re-reads the configuration as SIGHUP does.
	ReloadConfig() error
	// KillTenant closes every client connection of tenant and returns how
	// many it closed.
	KillTenant(tenant string) int
	// RequestShutdown starts a graceful shutdown, as SIGTERM does.
	RequestShutdown()
}

// ClientInfo describes one client connection.
type ClientInfo struct {
	ID              uint64
	User            string // as the client sent it
	Database        string
	Role            string // the role multigres logs in upstream as
	Tenant          string // first context value; "" for bypass and admin users
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
	Tenant      string
}

// PoolInfo summarises one pool.
type PoolInfo struct {
	Database, User                              string
	ClActive, ClWaiting                         int
	SvActive, SvIdle, SvUsed, SvTested, SvLogin int
	MaxWait                                     time.Duration
	Mode                                        string
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

// TenantInfo is one tenant's activity on one (role, database).
type TenantInfo struct {
	Tenant, Role, Database string
	Connections            int // open now
	TotalConnections       uint64
	Xacts, Queries, Errors uint64
	Since                  time.Time // first seen
}
