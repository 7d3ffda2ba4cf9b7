package admin

import "context"

// showServers: SHOW SERVERS, one row per server connection; link is the
// id of the client using it (SHOW CLIENTS' id); cluster is the upstream
// cluster it is connected to.
func showServers(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"type", "user", "database", "state", "addr", "port", "local_addr", "local_port",
		"connect_time", "request_time", "remote_pid", "link", "tenant", "cluster"}}
	for _, s := range p.Servers() {
		res.rows = append(res.rows, []string{"S", s.User, s.Database, s.State, s.Addr, itoa(s.Port), s.LocalAddr, itoa(s.LocalPort),
			fmtTime(s.ConnectTime), fmtTime(s.RequestTime), itoa(s.PID), itoa(s.ClientID), s.Tenant, s.Cluster})
	}
	return res, nil
}
