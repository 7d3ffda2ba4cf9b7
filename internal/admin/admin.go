// Package admin is multigres's administration: the admin console and the
// admin HTTP endpoints.
//
// The console is psql (or any client using the simple query protocol)
// connected to the special database "multigres" as a user listed in
// admin_users. It answers PgBouncer-style commands: SHOW POOLS, CLIENTS,
// SERVERS, STATS, TENANTS, CONFIG, VERSION and ROUTES, and PAUSE, RESUME,
// RELOAD, KILL, SHUTDOWN, MOVE TENANT and REFRESH TENANT, one file per command. The frontend authenticates the
// admin user like any client, answers the startup without an upstream
// connection, and then hands the socket to Console.Serve. Every result
// column is text, and column names follow PgBouncer's where one exists, so
// dashboards and habits carry over.
//
// The HTTP endpoints (http.go, on admin_listen) are /metrics, served from
// the Prometheus registry internal/metrics fills, /healthz and /readyz.
//
// Both reach the proxy only through the small interfaces in proxy.go, which
// frontend.Server implements, so this package imports neither the frontend
// nor the metrics package.
package admin

// Database is the special database name of the admin console.
const Database = "multigres"

// Version is what SHOW VERSION reports; main sets it from the build.
var Version = "dev"
