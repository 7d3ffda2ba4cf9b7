package frontend

import (
	"context"
	"fmt"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// RefreshTenant is REFRESH TENANT (tenant "" for REFRESH TENANTS): it
// forgets the directory's answer for the tenant (or all), follows the
// change (dirFollower: overrides the directory now agrees with are
// dropped, session-mode connections it places elsewhere are ended), and
// reports where the tenant goes now.
func (s *Server) RefreshTenant(ctx context.Context, tenant string) (admin.RefreshInfo, error) {
	rt := &s.routing
	if rt.dir == nil {
		return admin.RefreshInfo{}, &wire.Error{Severity: wire.SeverityError, Code: "55000",
			Message: "there is no tenant directory to refresh",
			Hint:    "Set tenant_directory_query (and tenant_directory_dbname) to route tenants by a directory table."}
	}
	info := admin.RefreshInfo{Tenant: tenant, Forgotten: rt.dir.forget(tenant)}
	if tenant == "" {
		info.Tenant = "*"
	}
	dropped, closed, err := dirFollower{s}.follow(ctx, tenant)
	info.OverrideDropped, info.Closed = len(dropped) > 0, closed
	if err != nil {
		return info, err
	}
	if tenant == "" {
		return info, nil
	}
	dir, err := rt.dirAnswer(ctx, tenant, false)
	if err != nil {
		return info, dirCommandError(tenant, err)
	}
	if d, ok := rt.router.Tenant(tenant, "", dir); ok {
		info.Cluster, info.Source = d.Cluster, d.Source.String()
	}
	return info, nil
}

// absorbOverride drops label's MOVE TENANT override when the directory
// (asked afresh) places the tenant on the same cluster: the override has
// done its work, and leaving it would hide later changes of the
// directory. The state file is rewritten; if that fails the override is
// put back.
func (rt *routing) absorbOverride(ctx context.Context, label string) (bool, error) {
	over, had := rt.router.Override(label)
	if !had {
		return false, nil
	}
	ans, err := rt.dir.lookup(ctx, label, false)
	if err != nil {
		return false, dirCommandError(label, err)
	}
	if ans.Cluster != over.Cluster || !rt.router.DropOverride(label, over.Cluster) {
		return false, nil
	}
	if err := rt.saveOverrides(); err != nil {
		rt.router.SetOverrideIfAbsent(label, over.Cluster) // unless a MOVE set another meanwhile
		return false, fmt.Errorf("the override of tenant %q could not be removed from route_state_file, so it stays: %w", label, err)
	}
	return true, nil
}

// dirCommandError is a console command's error when the directory could
// not be read for label.
func dirCommandError(label string, err error) error {
	return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeConnectionFailure,
		Message: fmt.Sprintf("cannot tell which cluster tenant %q is on: the tenant directory could not be read", label),
		Detail:  err.Error(), Hint: "Check tenant_directory_dbname on tenant_directory_cluster, then run the command again."}
}
