package admin

import "context"

// showPools: SHOW POOLS, one row per pool (database, role, cluster), with
// PgBouncer's columns and the cluster last. In session mode every client holds its own server
// connection, so sv_used and sv_tested stay 0.
func showPools(_ context.Context, p Proxy, _ []string) (*result, error) {
	res := &result{tag: "SHOW", columns: []string{"database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle",
		"sv_used", "sv_tested", "sv_login", "maxwait", "maxwait_us", "pool_mode", "cluster"}}
	for _, pl := range p.Pools() {
		sec, us := secondsMicros(pl.MaxWait)
		res.rows = append(res.rows, []string{pl.Database, pl.User, itoa(pl.ClActive), itoa(pl.ClWaiting), itoa(pl.SvActive),
			itoa(pl.SvIdle), itoa(pl.SvUsed), itoa(pl.SvTested), itoa(pl.SvLogin), sec, us, pl.Mode, pl.Cluster})
	}
	return res, nil
}
