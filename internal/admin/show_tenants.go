package admin

import (
	"context"
	"time"
)

// showTenants: SHOW TENANTS, one row per tenant and (role, database):
// open connections, totals, and rates per second averaged since the tenant
// was first seen, and the cluster it is routed to now.
func showTenants(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"tenant", "role", "database", "connections", "total_connections",
		"xacts", "queries", "errors", "xact_rate", "query_rate", "first_seen", "cluster"}}
	now := time.Now()
	for _, t := range p.Tenants() {
		res.rows = append(res.rows, []string{t.Tenant, t.Role, t.Database, itoa(t.Connections), itoa(t.TotalConnections),
			itoa(t.Xacts), itoa(t.Queries), itoa(t.Errors), perSecond(t.Xacts, t.Since, now), perSecond(t.Queries, t.Since, now),
			fmtTime(t.Since), t.Cluster})
	}
	return res, nil
}
