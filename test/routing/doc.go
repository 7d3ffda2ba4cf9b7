// Package routing tests tenants routed across PostgreSQL clusters end to
// end: three throwaway clusters of its own (the default one at
// upstream_host, and [cluster c2] and [cluster c3]), a real proxy in
// front, real clients. It covers placing tenants by exact name, pattern,
// database and default, the refusal of a tenant nothing places, pools per
// cluster in the admin console and metrics, isolation within each
// cluster, and MOVE TENANT under a continuous write load.
package routing
