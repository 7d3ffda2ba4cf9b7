package admin

import "context"

// showClients: SHOW CLIENTS, one row per client connection, the console's
// own included (type C as in PgBouncer; tenant, role and cluster are
// multigres's).
func showClients(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"type", "user", "database", "state", "addr", "port", "local_addr", "local_port",
		"connect_time", "request_time", "wait", "wait_us", "id", "tls", "application_name", "tenant", "role", "cluster"}}
	for _, c := range p.Clients() {
		sec, us := secondsMicros(c.Wait)
		res.rows = append(res.rows, []string{"C", c.User, c.Database, c.State, c.Addr, itoa(c.Port), c.LocalAddr, itoa(c.LocalPort),
			fmtTime(c.ConnectTime), fmtTime(c.RequestTime), sec, us, itoa(c.ID), fmtBool(c.TLS), c.ApplicationName, c.Tenant, c.Role, c.Cluster})
	}
	return res, nil
}
