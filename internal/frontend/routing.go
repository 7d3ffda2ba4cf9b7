package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/route"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Tenants routed across clusters. Every connection is placed on one
// upstream cluster when its startup packet is read, before
// authentication, since the secret lookup (auth_query) runs on the
// tenant's cluster: route.Router decides, from the runtime overrides of
// MOVE TENANT and the configuration's tenant_routes, database_routes and
// default_cluster. The decision is kept in the connection (connRoute) with
// the router's epoch. Session-mode connections keep their cluster for
// life. A transaction-mode client compares the epoch once per transaction
// (txRoute.pool) and resolves again only after the routing changed, so
// routing costs no lookup per transaction.

// upstream is one PostgreSQL cluster as connections use it.
type upstream struct {
	name       string
	addr       string // host:port
	host, port string
	tlsMode    string
	tls        *tls.Config
}

// newClusters builds every cluster of cfg (restart-only, so once per
// Server).
func newClusters(cfg *config.Config) (map[string]*upstream, error) {
	out := map[string]*upstream{}
	for _, cl := range cfg.ClusterList() {
		tc, err := serverTLSConfig(cl)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cl.Name, err)
		}
		host, port, _ := net.SplitHostPort(cl.Addr())
		out[cl.Name] = &upstream{name: cl.Name, addr: cl.Addr(), host: host, port: port, tlsMode: cl.ServerTLSMode, tls: tc}
	}
	return out, nil
}

// routing is the server's side of routing: the clusters, the router, the
// override state file and the tenants being moved (move.go).
type routing struct {
	clusters  map[string]*upstream
	router    *route.Router
	stateFile string           // route_state_file; restart-only
	dir       *tenantDirectory // nil without tenant_directory_query
	// fileMu serialises writes of the state file.
	fileMu sync.Mutex
	moves  moveState
}

// init builds the routing of cfg and reads the state file's overrides.
func (rt *routing) init(cfg *config.Config) error {
	var err error
	if rt.clusters, err = newClusters(cfg); err != nil {
		return err
	}
	table, err := cfg.RouteTable()
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	rt.router = route.NewRouter(table)
	rt.stateFile = cfg.RouteStateFile
	if rt.stateFile == "" {
		return nil
	}
	data, err := os.ReadFile(rt.stateFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("route_state_file: %w", err)
	}
	overrides, err := route.DecodeOverrides(data)
	if err != nil {
		return fmt.Errorf("route_state_file %s: %w", rt.stateFile, err)
	}
	for label, cluster := range overrides {
		if rt.clusters[cluster] == nil {
			return fmt.Errorf("route_state_file %s: tenant %q was moved to cluster %q, which is not configured; add its [cluster %s] section or remove the line",
				rt.stateFile, label, cluster, cluster)
		}
	}
	rt.router.ReplaceOverrides(overrides)
	return nil
}

// reload installs the routes of cfg. Overrides the new rules agree with
// are dropped (and the state file rewritten); the others stay in front.
func (rt *routing) reload(prev, cfg *config.Config) ([]string, error) {
	if slices.Equal(prev.TenantRoutes, cfg.TenantRoutes) && slices.Equal(prev.DatabaseRoutes, cfg.DatabaseRoutes) &&
		prev.DefaultCluster == cfg.DefaultCluster {
		return nil, nil
	}
	table, err := cfg.RouteTable()
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	absorbed := rt.router.SetTable(table)
	if len(absorbed) > 0 {
		if err := rt.saveOverrides(); err != nil {
			return absorbed, err
		}
	}
	return absorbed, nil
}

// saveOverrides writes the overrides to the state file, if any: to a
// temporary file, synced, then renamed over the old one, so a crash
// leaves the old or the new file, never half of one.
func (rt *routing) saveOverrides() error {
	if rt.stateFile == "" {
		return nil
	}
	rt.fileMu.Lock()
	defer rt.fileMu.Unlock()
	data := route.EncodeOverrides(rt.router.Overrides())
	tmp, err := os.CreateTemp(filepath.Dir(rt.stateFile), filepath.Base(rt.stateFile)+".tmp*")
	if err != nil {
		return fmt.Errorf("route_state_file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("route_state_file: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("route_state_file: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("route_state_file: close: %w", err)
	}
	if err := os.Rename(tmp.Name(), rt.stateFile); err != nil {
		return fmt.Errorf("route_state_file: rename: %w", err)
	}
	return nil
}

// connRoute is where a connection goes: its cluster, why, and the
// router's epoch when that was decided.
type connRoute struct {
	cluster  *upstream
	decision route.Decision
	epoch    uint64
	// expires is when the tenant directory's answer that placed the
	// connection must be asked again; zero when no answer was used.
	expires time.Time
}

// current reports whether the connection's placement still holds at now:
// nothing changed in the router and no directory answer it used expired.
func (r *connRoute) current(router *route.Router, now func() time.Time) bool {
	if router.Epoch() != r.epoch {
		return false
	}
	return r.expires.IsZero() || now().Before(r.expires)
}

// decide places a connection: admin console logins on the default
// cluster, bypass users by their database, tenants by the router. A
// tenant nothing places is refused (28000), naming the tenant and the keys
// that would place it.
//
// With a tenant directory, a tenant without an override is looked up
// there first; when that fails the error wraps errDirectory and is a
// *wire.Error (08006) for the client.
func (rt *routing) decide(ctx context.Context, c *clientConn) (connRoute, error) {
	epoch := rt.router.Epoch() // read first: a change after it is seen at the next check
	var d route.Decision
	var expires time.Time
	switch {
	case c.ad.isAdmin:
		d = route.Decision{Cluster: route.DefaultCluster, Source: route.SourceDefault, Match: "*"}
	case c.ident.Bypass:
		d = rt.router.Bypass(c.database)
	default:
		dir, err := rt.dirAnswer(ctx, c.ident.Tenant, c.State() <= StateAuth)
		if err != nil {
			return connRoute{}, directoryError(c, err)
		}
		expires = dir.Expires
		var ok bool
		if d, ok = rt.router.Tenant(c.ident.Tenant, c.database, dir); !ok {
			return connRoute{}, wire.Fatal(wire.CodeInvalidAuthorization,
				"tenant %q is not routed to any cluster: no tenant_routes item matches it and default_cluster is empty", c.ident.Tenant).
				WithHint(fmt.Sprintf("Add an item for it to tenant_routes (for example tenant_routes = %s:CLUSTER), or set default_cluster, then RELOAD.", c.ident.Tenant))
		}
	}
	up := rt.clusters[d.Cluster]
	if up == nil {
		// Validation rules this out; a state file edited by hand is
		// checked at startup too.
		return connRoute{}, wire.Fatal(wire.CodeConnectionFailure, "the route of this connection names cluster %q, which is not configured", d.Cluster).
			WithHint("Check tenant_routes, database_routes, default_cluster and the [cluster NAME] sections.")
	}
	return connRoute{cluster: up, decision: d, epoch: epoch, expires: expires}, nil
}

// dirAnswer is the tenant directory's answer for a tenant that has no
// MOVE TENANT override (an override comes first, so no lookup is needed);
// zero without a directory. preAuth: for a login not yet authenticated
// (see tenantDirectory.lookup).
func (rt *routing) dirAnswer(ctx context.Context, label string, preAuth bool) (route.DirAnswer, error) {
	if rt.dir == nil {
		return route.DirAnswer{}, nil
	}
	if _, moved := rt.router.Override(label); moved {
		return route.DirAnswer{}, nil
	}
	return rt.dir.lookup(ctx, label, preAuth)
}

// directoryError is what a client placed by the tenant directory sees
// when the directory could not be read; the cause is logged, not sent.
func directoryError(c *clientConn, err error) error {
	c.logger().Warn("tenant directory lookup failed; refusing rather than guessing a cluster", "err", err)
	return &dirFailure{cause: err, we: dirFailureFatal(c.ident.Tenant)}
}

// dirFailure is the client's error for a failed directory lookup, which
// also unwraps to the cause (errDirectory).
type dirFailure struct {
	we    *wire.Error
	cause error
}

func (f *dirFailure) Error() string   { return f.we.Error() }
func (f *dirFailure) Unwrap() []error { return []error{f.we, f.cause} }

// route places the connection (see routing.decide); it runs after the
// startup packet, before authentication, and again after a wait for a
// paused login if the routing changed meanwhile.
func (h *handshake) route(ctx context.Context) error {
	c := h.c
	rt, err := c.srv.routing.decide(ctx, c)
	if err != nil {
		c.srv.authFailure(AuthReasonNoRoute)
		return err
	}
	c.route = rt
	return nil
}

// rerouteAfterWait places the connection again if the routing changed
// since it was placed (a MOVE TENANT switched while the login waited).
func (h *handshake) rerouteAfterWait(ctx context.Context) error {
	c := h.c
	if c.route.current(c.srv.routing.router, time.Now) {
		return nil
	}
	prev := c.route.cluster
	if err := h.route(ctx); err != nil {
		return err
	}
	if c.route.cluster != prev {
		c.logger().Info("login follows its tenant to another cluster", "from", prev.name, "to", c.route.cluster.name)
		c.ad.setCluster(c.route.cluster.name)
	}
	return nil
}

// AuthReasonNoRoute: a tenant that no route places (tenant_routes,
// default_cluster).
const AuthReasonNoRoute = "no_route"
