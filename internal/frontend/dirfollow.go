package frontend

import (
	"context"
	"errors"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// dirFollower makes the server follow the tenant directory after answers
// were forgotten (REFRESH TENANT[S], a notification, the listener's
// reconnection). Transaction-mode clients follow by themselves at their
// next transaction (the forget bumped the router's epoch). What is left:
//
//   - MOVE TENANT overrides the directory now agrees with are dropped, so
//     later changes of the directory take effect (absorbOverride);
//   - session-mode connections cannot follow their tenant, so those the
//     directory now places elsewhere are ended, as MOVE TENANT ends them
//     (57P01), and so are those whose tenant the directory cannot place
//     now (08006): a session must not go on writing to a cluster its
//     tenant may have left.
type dirFollower struct{ s *Server }

// follow does both for label ("" for every tenant). It returns the
// tenants whose override was dropped and how many sessions it ended; the
// error is the first failure (the rest is still done).
func (f dirFollower) follow(ctx context.Context, label string) (dropped []string, closed int, err error) {
	rt := &f.s.routing
	labels := []string{label}
	if label == "" {
		labels = labels[:0]
		for l := range rt.router.Overrides() {
			labels = append(labels, l)
		}
	}
	var errs []error
	for _, l := range labels {
		ok, err := rt.absorbOverride(ctx, l)
		if ok {
			dropped = append(dropped, l)
		}
		errs = append(errs, err)
	}
	closed = f.endMovedSessions(ctx, label)
	return dropped, closed, errors.Join(errs...)
}

// endMovedSessions ends the session-mode connections of label's tenant
// (every tenant's for "") that the routing now places on another cluster
// or cannot place, and returns how many. Each tenant is placed once.
func (f dirFollower) endMovedSessions(ctx context.Context, label string) int {
	type placement struct {
		cluster string
		err     error
	}
	placed := map[[2]string]placement{} // (tenant, database) → where
	n := 0
	for _, c := range f.s.snapshot() {
		info := c.ad.info.Load()
		if info == nil || info.admin || c.ident.Bypass || info.tenant == "" || c.tx.pool != nil {
			continue
		}
		if label != "" && info.tenant != label {
			continue
		}
		if c.currentServer() == nil && c.State() != StateIdle && c.State() != StateInTransaction {
			continue // not logged in upstream yet: its login follows the route
		}
		key := [2]string{info.tenant, info.database}
		p, seen := placed[key]
		if !seen {
			p.cluster, p.err = f.place(ctx, info.tenant, info.database)
			placed[key] = p
		}
		switch {
		case p.err != nil:
			endSession(c, dirFailureFatal(info.tenant), "closed: the tenant directory cannot place its tenant now", info.cluster)
		case p.cluster == "" || p.cluster == info.cluster:
			continue // no route (it stays, as after a reload) or no change
		default:
			endSession(c, movedError(info.tenant, p.cluster), "closed: the tenant directory moved its tenant; a session-mode connection cannot follow", p.cluster)
		}
		n++
	}
	return n
}

// place is where the routing sends tenant's connections to database now
// ("" when nothing places it).
func (f dirFollower) place(ctx context.Context, tenant, database string) (string, error) {
	rt := &f.s.routing
	dir, err := rt.dirAnswer(ctx, tenant, false)
	if err != nil {
		return "", err
	}
	d, ok := rt.router.Tenant(tenant, database, dir)
	if !ok {
		return "", nil
	}
	return d.Cluster, nil
}

// dirFailureFatal is the FATAL a client whose tenant the directory cannot
// place reads (the cause is logged, not sent).
func dirFailureFatal(tenant string) *wire.Error {
	return wire.Fatal(wire.CodeConnectionFailure,
		"multigres could not read the tenant directory to find the cluster of tenant %q", tenant).
		WithHint("Retry later. Operators: check that tenant_directory_dbname on tenant_directory_cluster is reachable and that auth_user may run tenant_directory_query (see the log).")
}

// startDirectory hooks the tenant directory to the server (metrics, the
// follower) and starts its listener, if any.
func startDirectory(s *Server, cfg *config.Config) {
	d := s.routing.dir
	if d == nil {
		return
	}
	d.observe = func(result string) {
		if h := s.Hooks.DirectoryLookup; h != nil {
			h(result)
		}
	}
	d.onForget = func(ctx context.Context, label string) {
		if _, _, err := (dirFollower{s}).follow(ctx, label); err != nil {
			s.Logger.Warn("tenant directory: following a change failed in part", "tenant", label, "err", err)
		}
	}
	if cfg.TenantDirectoryChannel != "" {
		d.listen(s.shutCtx, cfg.TenantDirectoryChannel)
	}
}
