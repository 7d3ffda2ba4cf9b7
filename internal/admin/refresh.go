package admin

import (
	"context"
	"strings"
)

// refresh: REFRESH TENANT <tenant> forgets the tenant directory's cached
// answer for one tenant, REFRESH TENANTS forgets them all; the next login
// or transaction of those tenants asks the directory again (transaction
// mode clients follow a changed answer at their next transaction). A
// MOVE TENANT override the directory now agrees with is dropped, since
// the directory places the tenant there by itself. One row per command:
// tenant ("*" for all), forgotten (answers dropped), cluster and source
// (where the tenant goes now; empty for REFRESH TENANTS),
// override_dropped, and closed (session-mode connections ended because
// the directory now places their tenant elsewhere, or cannot place it:
// a session cannot follow its tenant).
func refresh(ctx context.Context, p Proxy, args []string) (*result, error) {
	label := ""
	switch {
	case len(args) == 1 && strings.EqualFold(args[0], "TENANTS"):
	case len(args) == 2 && strings.EqualFold(args[0], "TENANT"):
		label = args[1]
	default:
		return nil, syntaxError("REFRESH takes TENANT <tenant> or TENANTS")
	}
	ri, err := p.RefreshTenant(ctx, label)
	if err != nil {
		return nil, commandError("REFRESH", err)
	}
	return &result{tag: "REFRESH", columns: []string{"tenant", "forgotten", "cluster", "source", "override_dropped", "closed"},
		rows: [][]string{{ri.Tenant, itoa(ri.Forgotten), ri.Cluster, ri.Source, fmtBool(ri.OverrideDropped), itoa(ri.Closed)}}}, nil
}
