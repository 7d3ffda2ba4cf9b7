package admin

import (
	"context"
	"time"
)

// showTenants: SHOW TENANTS, one row per tenant and (role, database):
// open connections, totals, and rates per second averaged since the tenant
// was first seen.
func showTenants(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"tenant", "role", "database", "connections", "total_connections",
		"xacts", "queries", "errors", "xact_rate", "query_rate", "first_seen"}}
	now := time.Now()
	for _, t := range p.Tenants() {
		res.rows = append(res.rows, []string{t.Tenant, t.Role, t.Database, itoa(t.Connections), itoa(t.TotalConnections),
			itoa(t.Xacts), itoa(t.Queries), itoa(t.Errors), perSecond(t.Xacts, t.Since, now), perSecond(t.Queries, t.Since, now),
			fmtTime(t.Since)})
	}
	return res, nil
}
