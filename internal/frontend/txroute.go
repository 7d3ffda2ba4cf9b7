package frontend

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// txRoute is a transaction-mode client's side of routing: the credentials
// its pools on other clusters are created with, and the pool it follows
// its tenant to after a route change (nil: txRelay.pool, the login's).
// Only the client pump uses it, between transactions.
type txRoute struct {
	creds backend.Credentials
	cur   *pool.Pool
	// key is the context signing key of the client's current cluster
	// (context_signing; each database on each cluster has its own), read
	// by the Machine's MAC function.
	key atomic.Pointer[[]byte]
}

// pool returns the pool of the client's next transaction. The common case
// is one atomic load: the router's epoch is the one the client was placed
// at. Otherwise the client is placed again, and when its tenant now lives
// on another cluster (MOVE TENANT, or a reload of tenant_routes) its
// transactions go there from this one on, once the tenant role has been
// checked on that cluster. It runs in acquireServer, with no server
// attached, so no connection of the old pool is held.
func (t *txRoute) pool(r *txRelay) (*pool.Pool, error) {
	c := r.c
	cur := t.cur
	if cur == nil {
		cur = r.pool
	}
	rt := &c.srv.routing
	if c.route.current(rt.router, time.Now) {
		return cur, nil
	}
	ctx, cancel := context.WithTimeout(c.srv.shutdownCtx(), c.lc.cfg.ServerConnectTimeout)
	next, err := rt.decide(ctx, c)
	cancel()
	if errors.Is(err, errDirectory) {
		// Where the tenant lives now is unknown: its transactions wait
		// rather than run on a cluster it may have left.
		return nil, err
	}
	if err != nil {
		// A reload left the tenant without a route: its open connection
		// stays where its data was; new logins are refused.
		c.logger().Warn("the tenant has no route any more; its open connection stays on its cluster",
			"cluster", c.route.cluster.name)
		c.route.epoch = rt.router.Epoch()
		return cur, nil
	}
	if next.cluster == c.route.cluster {
		c.route = next
		return cur, nil
	}
	pk := pool.Key{Cluster: next.cluster.name, Database: c.database, Role: c.ident.Role}
	// Join: an existing pool there keeps the dialer of a login on that
	// cluster.
	p := c.srv.pools().Join(pk, txDialer(c, next.cluster, crossClusterCreds(c, next.cluster, t.creds)), poolLimits(c.lc.cfg))
	if err := checkRoleOn(c, p, next.cluster); err != nil {
		return nil, err
	}
	if c.lc.cfg.ContextSigning {
		ctx, cancel := context.WithTimeout(c.srv.shutdownCtx(), c.lc.cfg.ServerConnectTimeout)
		key, err := c.srv.secrets.signingKey(ctx, next.cluster, c.database)
		cancel()
		if err != nil || key == nil {
			c.logger().Warn("context signing key unavailable on the tenant's new cluster; closing", "err", err, "cluster", next.cluster.name)
			return nil, wire.Fatal(wire.CodeConnectionFailure, "context_signing is on but multigres has no signing key for database %q on cluster %q, where tenant %q now lives",
				c.database, next.cluster.name, c.ident.Tenant).
				WithHint("Run multigres init --context-signing on that database, and check auth_user and auth_password.")
		}
		t.key.Store(&key)
	}
	c.logger().Info("transactions follow the tenant to another cluster", "from", c.route.cluster.name,
		"to", next.cluster.name, "by", next.decision.Source.String())
	c.route, t.cur = next, p
	c.ad.setCluster(next.cluster.name)
	return p, nil
}

// checkRoleOn runs the tenant role check (see backend.CheckRoles) on a
// connection of p, the client's pool on cluster up, unless it passed
// there within roleCheckTTL. A role that is unsafe there ends the client
// (FATAL 28000), as it would have refused its login.
func checkRoleOn(c *clientConn, p *pool.Pool, up *upstream) error {
	cfg := c.lc.cfg
	role := cfg.SetRole
	if role == "" {
		role = c.ident.Role
	}
	key := roleCheckKey(up, role, c.database)
	if c.srv.roleChecked(key) {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.srv.shutdownCtx(), cfg.ServerConnectTimeout)
	defer cancel()
	sc, err := p.Acquire(ctx)
	if err != nil {
		return err
	}
	err = sc.CheckRoles(role, c.ident.Role, cfg.ServerConnectTimeout)
	if obs, ok := sc.Session.(pool.OwnQueryObserver); ok {
		obs.OwnQueryRan()
	}
	refused := errors.Is(err, backend.ErrRoleBypassesRLS) || errors.Is(err, backend.ErrDatabaseNotHardened)
	p.Release(sc, (err == nil || refused) && sc.TxStatus == wire.TxIdle)
	switch {
	case err == nil:
		c.srv.markRoleChecked(key)
		return nil
	case errors.Is(err, backend.ErrRoleBypassesRLS):
		return wire.Fatal(wire.CodeInvalidAuthorization,
			"role %q can bypass row-level security on cluster %q, where tenant %q now lives, so multigres ends this connection",
			role, up.name, c.ident.Tenant).
			WithHint(fmt.Sprintf("Run ALTER ROLE %s NOSUPERUSER NOBYPASSRLS on that cluster.", backend.QuoteIdent(role)))
	case errors.Is(err, backend.ErrDatabaseNotHardened):
		return wire.Fatal(wire.CodeInvalidAuthorization,
			"database %q on cluster %q, where tenant %q now lives, is not set up for tenant connections", c.database, up.name, c.ident.Tenant).
			WithHint("Run multigres init (with hardening) on that database.")
	}
	return fmt.Errorf("role check on cluster %s: %w", up.name, err)
}

// crossClusterCreds are the credentials for logging in to cluster up,
// which is not the one the client authenticated against: the configured
// password for the role there (server_password, server_pgpass), if any,
// since SCRAM passthrough keys only work where the role has the same
// verifier; else the client's own credentials.
func crossClusterCreds(c *clientConn, up *upstream, creds backend.Credentials) backend.Credentials {
	if pw := c.srv.secrets.serverPassword(up, c.database, c.ident.Role); pw != "" {
		return backend.Credentials{Password: pw}
	}
	return creds
}
