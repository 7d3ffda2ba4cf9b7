package config

import (
	"fmt"
	"net"
	"path"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"

	"github.com/multigres-proxy/multigres/internal/route"
)

// Key describes one configuration key. Keys returns the table; tests and
// the docs generator use it.
type Key struct {
	Name       string // file key, e.g. "listen_host"
	Env        string // env var, e.g. "MULTIGRES_LISTEN_HOST"
	Flag       string // CLI flag without dashes, e.g. "listen-host"
	Field      string // Config field, e.g. "ListenHost"
	Type       string // human-readable value type
	Default    string // default as written in multigres.conf
	Doc        string // one-line description for the reference table
	Secret     bool   // never printed or logged
	Reloadable bool   // a SIGHUP applies a change without restart
}

// keyDef is a Key plus how to parse and check its value.
type keyDef struct {
	Key
	kind  kind
	extra func(v any) error // optional rule beyond the kind's
	index []int             // reflect field index of Field in Config
}

// Keys returns a copy of the key table in its canonical order (the order of
// the docs table and of Print).
func Keys() []Key {
	out := make([]Key, len(keyTable))
	for i := range keyTable {
		out[i] = keyTable[i].Key
	}
	return out
}

// byName maps a key name to its entry in keyTable.
var byName = map[string]*keyDef{}

var keyTable = []keyDef{
	// Keys of the TypeScript original, with its names and defaults.
	{Key: Key{Name: "listen_host", Field: "ListenHost", Default: "127.0.0.1",
		Doc: "Address the proxy listens on; `*` means all interfaces."},
		kind: strKind{nonEmpty: true}},
	{Key: Key{Name: "port", Field: "Port", Default: "6432",
		Doc: "TCP port the proxy listens on."},
		kind: intKind{1, 65535}},
	{Key: Key{Name: "listen_reuseport", Field: "ListenReusePort", Default: "off",
		Doc: "Open the listener with `SO_REUSEPORT`, so a new process can bind the same port while the old one drains (online restart; see operations.md)."},
		kind: boolKind{}},
	{Key: Key{Name: "upstream_host", Field: "UpstreamHost", Default: "127.0.0.1",
		Doc: "Host name or address of the PostgreSQL server."},
		kind: strKind{nonEmpty: true}},
	{Key: Key{Name: "upstream_port", Field: "UpstreamPort", Default: "5432",
		Doc: "TCP port of the PostgreSQL server."},
		kind: intKind{1, 65535}},
	{Key: Key{Name: "tenant_separator", Field: "TenantSeparator", Default: ".",
		Doc: "Separates the role from the context values in the username (`app_user.acme`). Must differ from `value_separator`."},
		kind: strKind{nonEmpty: true}},
	{Key: Key{Name: "value_separator", Field: "ValueSeparator", Default: ":",
		Doc: "Separates several context values in the username (`app_user.list1:user1`)."},
		kind: strKind{nonEmpty: true}},
	{Key: Key{Name: "context_variables", Field: "ContextVariables", Default: "app.current_tenant_id",
		Doc: "Comma-separated custom settings set from the username values, in order. Each needs a dot (`prefix.name`)."},
		kind: listKind{nonEmpty: true, fold: true, elem: checkGUCName}},
	{Key: Key{Name: "superuser_bypass", Field: "SuperuserBypass", Default: "postgres", Reloadable: true,
		Doc: "Comma-separated usernames that pass through without tenant extraction or context injection."},
		kind: listKind{}},
	{Key: Key{Name: "log_level", Field: "LogLevel", Default: "info", Reloadable: true,
		Doc: "Minimum level logged."},
		kind: strKind{enum: []string{"debug", "info", "warn", "error"}}},

	// Tenant path.
	{Key: Key{Name: "tenant_roles", Field: "TenantRoles", Default: "app_user", Reloadable: true,
		Doc: "Comma-separated roles allowed before the tenant separator. Each must be NOSUPERUSER and NOBYPASSRLS."},
		kind: listKind{nonEmpty: true}},
	{Key: Key{Name: "tenant_value_pattern", Field: "TenantValuePattern", Default: `^[A-Za-z0-9_.-]{1,63}$`, Reloadable: true,
		Doc: "Go regular expression every context value must match as a whole (it is anchored even without `^…$`)."},
		kind: strKind{nonEmpty: true}, extra: checkRegexp},
	{Key: Key{Name: "set_role", Field: "SetRole", Default: "",
		Doc: "Role for `SET ROLE` after login; empty means the login role."},
		kind: strKind{}},

	{Key: Key{Name: "log_format", Field: "LogFormat", Default: "text", Reloadable: true,
		Doc: "Log output format (slog text or JSON)."},
		kind: strKind{enum: []string{"text", "json"}}},

	// TLS.
	{Key: Key{Name: "tls_cert", Field: "TLSCert", Default: "", Reloadable: true,
		Doc: "PEM certificate file for client TLS. Set with `tls_key`, or neither."},
		kind: strKind{}},
	{Key: Key{Name: "tls_key", Field: "TLSKey", Default: "", Reloadable: true,
		Doc: "PEM private key file for `tls_cert`."},
		kind: strKind{}},
	{Key: Key{Name: "client_tls_mode", Field: "ClientTLSMode", Default: "allow", Reloadable: true,
		Doc: "`disable`: answer N to SSLRequest; `allow`: TLS when the client asks; `require`: refuse plaintext tenant logins (needs `tls_cert`)."},
		kind: strKind{enum: []string{"disable", "allow", "require"}}},
	{Key: Key{Name: "server_tls_mode", Field: "ServerTLSMode", Default: "prefer",
		Doc: "TLS to PostgreSQL, as libpq's sslmode."},
		kind: strKind{enum: []string{"disable", "prefer", "require", "verify-full"}}},
	{Key: Key{Name: "server_tls_ca", Field: "ServerTLSCA", Default: "",
		Doc: "PEM CA bundle for `verify-full`; empty means the system roots."},
		kind: strKind{}},

	// Limits and timeouts.
	{Key: Key{Name: "workers", Field: "Workers", Default: "0",
		Doc: "OS threads running Go code (GOMAXPROCS); 0 means one per CPU. On a small machine shared with PostgreSQL, 1 can be faster: fewer cross-thread wake-ups per message (see docs/benchmarks.md). Restart to change."},
		kind: intKind{0, 1024}},
	{Key: Key{Name: "max_message_size", Field: "MaxMessageSize", Default: "1GB", Reloadable: true,
		Doc: "Largest protocol message accepted from a client; bytes or with unit kB, MB, GB."},
		kind: sizeKind{min: 1 << 10, max: 1 << 30}}, // PostgreSQL itself refuses messages over 1GB
	{Key: Key{Name: "max_message_memory", Field: "MaxMessageMemory", Default: "1GB",
		Doc: "Most memory the buffers of client messages over 8 KiB may hold together, over all clients; a message that would take more ends its client with 53200 (the others go on). Memory is charged as bytes arrive, not as headers declare. 0 means no bound. Restart to change."},
		kind: sizeKind{min: 0, max: 1 << 40}},
	{Key: Key{Name: "handshake_timeout", Field: "HandshakeTimeout", Default: "30s", Reloadable: true,
		Doc: "Time allowed for startup, authentication and context injection."},
		kind: durKind{min: time.Millisecond}},
	{Key: Key{Name: "shutdown_timeout", Field: "ShutdownTimeout", Default: "30s", Reloadable: true,
		Doc: "On SIGTERM, how long sessions may finish before they are closed."},
		kind: durKind{}},

	// Client authentication.
	{Key: Key{Name: "auth_type", Field: "AuthType", Default: "scram-sha-256", Reloadable: true,
		Doc: "Client authentication method. `trust` is for demos only."},
		kind: strKind{enum: []string{"scram-sha-256", "md5", "password", "trust"}}},
	{Key: Key{Name: "allow_plaintext_password", Field: "AllowPlaintextPassword", Default: "off", Reloadable: true,
		Doc: "Allow `auth_type = password` on connections without TLS."},
		kind: boolKind{}},
	{Key: Key{Name: "auth_file", Field: "AuthFile", Default: "", Reloadable: true,
		Doc: "PgBouncer `userlist.txt` file with client credentials; when set, `auth_query` is not used."},
		kind: strKind{}},
	{Key: Key{Name: "auth_user", Field: "AuthUser", Default: "multigres_auth", Reloadable: true,
		Doc: "Role that runs `auth_query`."},
		kind: strKind{}},
	{Key: Key{Name: "auth_password", Field: "AuthPassword", Default: "", Secret: true, Reloadable: true,
		Doc: "Password of `auth_user`; empty means `server_pgpass` or none."},
		kind: strKind{verbatim: true}},
	{Key: Key{Name: "auth_query", Field: "AuthQuery", Default: "SELECT usename, passwd FROM multigres.user_lookup($1)", Reloadable: true,
		Doc: "Query returning the user name and password verifier for `$1`."},
		kind: strKind{}},
	{Key: Key{Name: "auth_dbname", Field: "AuthDatabase", Default: "", Reloadable: true,
		Doc: "Database `auth_query` runs in; empty means the client's database."},
		kind: strKind{}},
	{Key: Key{Name: "auth_failure_delay", Field: "AuthFailureDelay", Default: "500ms", Reloadable: true,
		Doc: "Constant delay before an authentication failure is reported."},
		kind: durKind{}},

	// Upstream authentication fallbacks.
	{Key: Key{Name: "server_password", Field: "ServerPassword", Default: "", Secret: true, Reloadable: true,
		Doc: "Per-role upstream passwords, `role:password,role2:password2`, used when SCRAM passthrough is not possible."},
		kind: mapKind{}},
	{Key: Key{Name: "server_pgpass", Field: "ServerPgpass", Default: "", Reloadable: true,
		Doc: "`.pgpass` file with upstream passwords."},
		kind: strKind{}},

	{Key: Key{Name: "context_signing", Field: "ContextSigning", Default: "off",
		Doc: "Set, with the context, an HMAC of (values, backend pid) keyed by a secret tenants cannot read; with `multigres init --context-signing` the readers return NULL for any unsigned value (defence in depth, see docs/security.md). Needs a restart: signed and unsigned clients must never share pooled server connections, where an unsigned switch would leave the previous tenant's MAC and fingerprint in place."},
		kind: boolKind{}},
	{Key: Key{Name: "guard", Field: "Guard", Default: "on", Reloadable: true,
		Doc: "Inspect every Query and Parse of tenant connections with the SQL guard and refuse statements that could change the tenant context or reach other tenants (see docs/security.md)."},
		kind: boolKind{}},
	{Key: Key{Name: "guard_denied_functions", Field: "GuardDeniedFunctions", Reloadable: true,
		Default: "pg_terminate_backend,pg_cancel_backend,lo_*,loread,lowrite,be_lo_*,dblink*,pg_read_file*,pg_read_binary_file*,pg_ls_*,pg_stat_file,query_to_xml*,query_to_xmlschema,cursor_to_xml*,ts_stat,ts_rewrite,table_to_xml*,schema_to_xml*,database_to_xml*,pg_prepared_statement,pg_cursor,pg_prepared_xact,pg_lock_status",
		Doc:     "Functions the guard refuses on tenant connections (a trailing `*` matches any suffix): by default those that reach other tenants' sessions or show their statements (`pg_prepared_statement`, `pg_cursor`, `pg_prepared_xact`, `pg_lock_status`, behind the views of the same names), large objects (not covered by RLS), files, other databases, or run SQL given as text."},
		kind: listKind{}},

	{Key: Key{Name: "pool_mode", Field: "PoolMode", Default: "session",
		Doc: "`session`: a server connection per client for the client's life. `transaction`: server connections are shared by all tenants of a (database, role) pool and held only for a transaction; see docs/pooling.md for what is tracked and refused. Session is the default because it is a drop-in for every client. Restart to change."},
		kind: strKind{enum: []string{"session", "transaction"}}},
	{Key: Key{Name: "pool_mode_databases", Field: "PoolModeDatabases", Default: "",
		Doc: "Per-database overrides of `pool_mode`, `db:mode,db2:mode`, e.g. `app:transaction,reports:session`. Restart to change."},
		kind: listKind{elem: checkDatabasePoolMode}},
	{Key: Key{Name: "citus_databases", Field: "CitusDatabases", Default: "",
		Doc: "Databases whose upstream is a Citus coordinator, `db1,db2`: tenant transactions run in a block multigres opens with `SET LOCAL` of each context variable, which Citus propagates to the workers (`citus.propagate_set_commands = local`, set for tenant sessions and protected by the guard). Both pool modes. Not with `context_signing`. See docs/scaling.md. Restart to change."},
		kind: listKind{elem: checkDatabaseName}},
	{Key: Key{Name: "default_pool_size", Field: "DefaultPoolSize", Default: "20",
		Doc: "Transaction mode: server connections per (database, role) pool."},
		kind: intKind{1, 100000}},
	{Key: Key{Name: "min_pool_size", Field: "MinPoolSize", Default: "0",
		Doc: "Transaction mode: idle server connections kept open per pool once it has been used (not closed by `server_idle_timeout`)."},
		kind: intKind{0, 100000}},
	{Key: Key{Name: "reserve_pool_size", Field: "ReservePoolSize", Default: "0",
		Doc: "Transaction mode: extra server connections a pool may open when a client has waited `reserve_pool_timeout`."},
		kind: intKind{0, 100000}},
	{Key: Key{Name: "reserve_pool_timeout", Field: "ReservePoolTimeout", Default: "5s",
		Doc: "Transaction mode: how long a client waits before the reserve pool is used."},
		kind: durKind{}},
	{Key: Key{Name: "max_db_connections", Field: "MaxDBConnections", Default: "0",
		Doc: "Transaction mode: most server connections per database over all its pools; 0 means no limit beyond the pools'."},
		kind: intKind{0, 100000}},
	{Key: Key{Name: "max_client_conn", Field: "MaxClientConn", Default: "0",
		Doc: "Most client connections the proxy accepts at once; the next is refused with 53300. 0 means no limit (the OS file limit still applies)."},
		kind: intKind{0, 10000000}},
	{Key: Key{Name: "query_wait_timeout", Field: "QueryWaitTimeout", Default: "120s",
		Doc: "Transaction mode: how long a client may wait for a server connection; then its statement fails with 53300 and the client can retry. 0 waits forever."},
		kind: durKind{}},
	{Key: Key{Name: "server_idle_timeout", Field: "ServerIdleTimeout", Default: "600s",
		Doc: "Transaction mode: close pooled server connections idle longer than this (down to `min_pool_size`). 0 turns it off."},
		kind: durKind{}},
	{Key: Key{Name: "server_lifetime", Field: "ServerLifetime", Default: "3600s",
		Doc: "Transaction mode: close a pooled server connection older than this when it is next released. 0 turns it off."},
		kind: durKind{}},
	{Key: Key{Name: "server_connect_timeout", Field: "ServerConnectTimeout", Default: "15s",
		Doc: "Transaction mode: bound on opening and logging in a pooled server connection."},
		kind: durKind{min: time.Millisecond}},
	{Key: Key{Name: "server_check_delay", Field: "ServerCheckDelay", Default: "30s",
		Doc: "Transaction mode: a pooled connection idle longer than this is checked with an empty query before it is handed out; a failed check closes it. 0 checks every time."},
		kind: durKind{}},
	{Key: Key{Name: "max_prepared_statements", Field: "MaxPreparedStatements", Default: "200",
		Doc: "Transaction mode: protocol-level prepared statements kept per server connection (LRU); clients' statements are renamed and prepared on demand. 0 is not allowed: transaction mode always tracks them."},
		kind: intKind{1, 100000}},
	{Key: Key{Name: "max_tenant_server_connections", Field: "MaxTenantServerConnections", Default: "0", Reloadable: true,
		Doc: "Transaction mode: most server connections of one pool that one tenant may hold at once; a client of a tenant at the limit waits (up to `query_wait_timeout`, then 53300) while other tenants are served. 0 means no per-tenant limit. Per proxy process."},
		kind: intKind{0, 100000}},
	{Key: Key{Name: "unsynced_hold_timeout", Field: "UnsyncedHoldTimeout", Default: "10s", Reloadable: true,
		Doc: "Transaction mode: how long a client may hold a server connection outside a transaction block while the server has answered everything and waits for the client's Sync (extended-protocol messages without a Sync); past it the client is ended with 57P05 and the connection closed. 0 turns it off."},
		kind: durKind{}},
	{Key: Key{Name: "idle_transaction_timeout", Field: "IdleTransactionTimeout", Default: "0", Reloadable: true,
		Doc: "Transaction mode: a client idle inside a transaction block longer than this is ended with 25P03 and its transaction rolled back, so that its pooled server connection serves others (PgBouncer's key; tenants can lower their own idle_in_transaction_session_timeout but not this). 0 turns it off."},
		kind: durKind{}},
	{Key: Key{Name: "client_write_timeout", Field: "ClientWriteTimeout", Default: "60s",
		Doc: "Transaction mode: how long a write to a client may wait for the client to read (its socket full); past it the client is ended and its statement cancelled, so a client that stops reading cannot pin a pooled server connection. 0 waits forever. Applies to clients that log in after a reload."},
		kind: durKind{}},
	{Key: Key{Name: "state_audit", Field: "StateAudit", Default: "off",
		Doc: "Testing aid, off in production: after every transaction-mode release, compare the server connection's real session state (session settings, role, prepared statements, cursors, advisory locks, listened channels, transaction status, reported parameters) with what multigres believes; a difference is logged at ERROR, counted, and the connection closed. Needs the function `multigres_audit.session_state` that the test harness installs. Restart to change."},
		kind: boolKind{}},

	// Observability.
	{Key: Key{Name: "admin_listen", Field: "AdminListen", Default: "",
		Doc: "host:port of the admin HTTP server (`/metrics`, `/healthz`, `/readyz`), e.g. `127.0.0.1:9930`; empty turns it off. Restart to change."},
		kind: strKind{}, extra: checkListenAddr},
	{Key: Key{Name: "metrics_max_tenants", Field: "MetricsMaxTenants", Default: "1000",
		Doc: "Most distinct tenants given their own label in the per-tenant metrics; later tenants are counted as `other`. Restart to change."},
		kind: intKind{1, 1000000}},
	{Key: Key{Name: "admin_users", Field: "AdminUsers", Default: "", Reloadable: true,
		Doc: "Comma-separated users who may log in to the admin console (psql to the special database `multigres`); they authenticate like any client and must exist in `auth_file` or `pg_authid`. Empty turns the console off."},
		kind: listKind{}},

	// Per-tenant controls. The tenant is the username's context values
	// joined by value_separator (`acme`, or `list1:user1`).
	{Key: Key{Name: "tenant_allow", Field: "TenantAllow", Default: "", Reloadable: true,
		Doc: "Comma-separated tenants, or patterns in Go `path.Match` syntax (`acme`, `team-*`), allowed to log in; empty allows every tenant. Others are refused with 28000."},
		kind: listKind{elem: checkTenantPattern}},
	{Key: Key{Name: "tenant_deny", Field: "TenantDeny", Default: "", Reloadable: true,
		Doc: "Comma-separated tenants or `path.Match` patterns refused at login with 28000; deny wins over `tenant_allow`."},
		kind: listKind{elem: checkTenantPattern}},
	{Key: Key{Name: "tenant_max_connections", Field: "TenantMaxConnections", Default: "0", Reloadable: true,
		Doc: "Most concurrent client connections per tenant; the next login is refused with 53300. 0 means unlimited."},
		kind: intKind{0, 1000000}},
	{Key: Key{Name: "tenant_rate_limit", Field: "TenantRateLimit", Default: "0", Reloadable: true,
		Doc: "New connections per second per tenant (token bucket, burst = the rate); logins over it are refused with 53300. 0 turns it off."},
		kind: intKind{0, 1000000}},
	{Key: Key{Name: "tenant_statement_timeout", Field: "TenantStatementTimeout", Default: "0", Reloadable: true,
		Doc: "`statement_timeout` set on every tenant server connection with the context; with the guard on, tenants cannot change it. 0 leaves the server's setting. New connections only."},
		kind: durKind{}, extra: checkStatementTimeout},
	{Key: Key{Name: "tenant_idle_timeout", Field: "TenantIdleTimeout", Default: "0", Reloadable: true,
		Doc: "Close tenant connections idle (not in a transaction) longer than this, with 57P05. 0 turns it off. Applies to open connections from their next idle period."},
		kind: durKind{}},

	// Tenants routed across clusters ([cluster NAME] sections; see
	// scaling.md).
	{Key: Key{Name: "tenant_routes", Field: "TenantRoutes", Default: "", Reloadable: true,
		Doc: "Comma-separated `tenant:cluster` items placing tenants on `[cluster NAME]` sections (or `default`, the cluster at `upstream_host`); the tenant is an exact label or a `path.Match` pattern (`acme:eu,big-*:dedicated`), the first matching item wins, and a label containing `:` is split at its last `:`. A reload re-routes transaction-mode clients at their next transaction; use MOVE TENANT to move one without failed transactions (see scaling.md)."},
		kind: listKind{elem: checkTenantRoute}},
	{Key: Key{Name: "database_routes", Field: "DatabaseRoutes", Default: "", Reloadable: true,
		Doc: "Comma-separated `database:cluster` items: connections to the database that no `tenant_routes` item places go to that cluster, bypass users' included."},
		kind: listKind{elem: checkDatabaseRoute}},
	{Key: Key{Name: "default_cluster", Field: "DefaultCluster", Default: "default", Reloadable: true,
		Doc: "Cluster of tenants that no route places; empty refuses them with 28000, naming the tenant. Bypass users go to their database's route, else this cluster, else `default`."},
		kind: strKind{}},
	{Key: Key{Name: "tenant_move_timeout", Field: "TenantMoveTimeout", Default: "30s", Reloadable: true,
		Doc: "How long MOVE TENANT waits for the tenant's open transactions to finish after pausing its new ones; past it the command fails listing them and the pause stays. 0 waits until the command is cancelled."},
		kind: durKind{}},
	{Key: Key{Name: "route_state_file", Field: "RouteStateFile", Default: "",
		Doc: "File where MOVE TENANT keeps its route overrides (`tenant:cluster` lines), written before each switch and read at startup, so that a moved tenant stays moved across restarts; empty keeps them in memory only. Restart to change."},
		kind: strKind{}},

	// The tenant directory: tenant → cluster read from a database (see
	// scaling.md, "A tenant directory").
	{Key: Key{Name: "tenant_directory_query", Field: "TenantDirectoryQuery", Default: "",
		Doc: "Query naming the cluster of the tenant whose label is `$1` (one text column; no row leaves the tenant to `tenant_routes`, `database_routes` and `default_cluster`), for example `SELECT cluster FROM tenant_directory WHERE tenant = $1`; empty turns the directory off. Runs as `auth_user` in `tenant_directory_dbname` on `tenant_directory_cluster`; MOVE TENANT overrides still come first. Restart to change."},
		kind: strKind{}},
	{Key: Key{Name: "tenant_directory_cluster", Field: "TenantDirectoryCluster", Default: "default",
		Doc: "Cluster whose database holds the tenant directory. Restart to change."},
		kind: strKind{nonEmpty: true}},
	{Key: Key{Name: "tenant_directory_dbname", Field: "TenantDirectoryDatabase", Default: "",
		Doc: "Database `tenant_directory_query` runs in; must be set when the query is. Restart to change."},
		kind: strKind{}},
	{Key: Key{Name: "tenant_directory_ttl", Field: "TenantDirectoryTTL", Default: "60s",
		Doc: "How long an answer of the tenant directory (a row, or no row) is used before it is asked again, by new logins and by transaction-mode clients at their next transaction. Restart to change."},
		kind: durKind{min: time.Second}},
	{Key: Key{Name: "tenant_directory_channel", Field: "TenantDirectoryChannel", Default: "",
		Doc: "Channel multigres LISTENs on in the directory's database: a notification whose payload is a tenant label forgets that tenant's answer, an empty payload forgets all, and clients follow at their next transaction. Empty: answers change only by `tenant_directory_ttl` and `REFRESH TENANT`. Restart to change."},
		kind: strKind{}},
	{Key: Key{Name: "tenant_directory_cache_size", Field: "TenantDirectoryCacheSize", Default: "100000",
		Doc: "Most tenant directory answers kept; the least recently stored goes first. Restart to change."},
		kind: intKind{1, 10_000_000}},

	// Context resolvers ([resolver NAME] sections; see operations.md).
	{Key: Key{Name: "resolver_user", Field: "ResolverUser", Default: "",
		Doc: "Role the context resolver queries run as, in the client's database; empty means `auth_user` (and `auth_password`). Restart to change."},
		kind: strKind{}},
	{Key: Key{Name: "resolver_password", Field: "ResolverPassword", Default: "", Secret: true,
		Doc: "Password of `resolver_user`. Restart to change."},
		kind: strKind{verbatim: true}},

	// A fleet of processes behind one load balancer (see docs/scaling.md).
	{Key: Key{Name: "peer_id", Field: "PeerID", Default: "0",
		Doc: "This process's id in a fleet of multigres processes behind one load balancer; 0 turns peering off. The id is written into every cancel key this process hands out, so that a CancelRequest reaching another process of the fleet is forwarded here. Unique in the fleet. Restart to change."},
		kind: intKind{0, MaxPeerID}},
	{Key: Key{Name: "peers", Field: "Peers", Default: "", Reloadable: true,
		Doc: "The processes of the fleet, `id=host:port,...` (their client listeners, reached directly, not through the load balancer): a CancelRequest whose key names one of them is forwarded to it. Needs `peer_id`; this process's own id may be listed (one list for the whole fleet) and is never dialled. Empty: cancel keys of other processes are dropped."},
		kind: listKind{elem: checkPeerEntry}},
}

func init() {
	t := reflect.TypeFor[Config]()
	for i := range keyTable {
		k := &keyTable[i]
		f, ok := t.FieldByName(k.Field)
		if !ok {
			panic("config: key " + k.Name + " names unknown field " + k.Field)
		}
		k.index = f.Index
		k.Env = envPrefix + strings.ToUpper(k.Name)
		k.Flag = strings.ReplaceAll(k.Name, "_", "-")
		k.Type = k.kind.typeName()
		if _, dup := byName[k.Name]; dup {
			panic("config: duplicate key " + k.Name)
		}
		byName[k.Name] = k
	}
}

// gucPart is one dot-separated part of a custom setting name.
var gucPart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*$`)

// checkGUCName requires a custom (placeholder) setting name: at least two
// dot-separated identifier parts. PostgreSQL refuses SET on a name without a
// dot unless it is a built-in setting, and we must never set a built-in one.
func checkGUCName(name string) error {
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return fmt.Errorf("%q must contain a dot, like app.current_tenant_id", name)
	}
	for _, p := range parts {
		if !gucPart.MatchString(p) {
			return fmt.Errorf("%q is not a valid setting name: each dot-separated part must match [A-Za-z_][A-Za-z0-9_$]*", name)
		}
	}
	return nil
}

// checkListenAddr accepts "" (off) or a host:port with a numeric port.
func checkListenAddr(v any) error {
	addr := v.(string)
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, like 127.0.0.1:9930")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number from 0 to 65535")
	}
	return nil
}

// checkTenantPattern requires valid path.Match syntax, so a typo in a
// deny pattern is an error at load time rather than a rule that never
// matches.
func checkTenantPattern(p string) error {
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %v", p, err)
	}
	return nil
}

// checkStatementTimeout keeps the value within PostgreSQL's statement_timeout
// range (whole milliseconds up to INT_MAX).
func checkStatementTimeout(v any) error {
	if d := v.(time.Duration); d > 0 && (d < time.Millisecond || d > 2147483647*time.Millisecond) {
		return fmt.Errorf("must be 0 or from 1ms to 2147483647ms")
	}
	return nil
}

// checkTenantRoute accepts a tenant_routes item, tenant:cluster (whether
// the cluster exists is checked by Validate).
func checkTenantRoute(item string) error {
	_, err := route.ParseRule(item)
	return err
}

// checkDatabaseRoute accepts a database_routes item, database:cluster.
func checkDatabaseRoute(item string) error {
	_, err := route.NewTable(nil, []string{item}, "", nil)
	return err
}

// checkDatabaseName accepts a non-empty database name.
func checkDatabaseName(item string) error {
	if item == "" {
		return fmt.Errorf("a database name must not be empty")
	}
	return nil
}

// checkDatabasePoolMode accepts "db:session" or "db:transaction".
func checkDatabasePoolMode(item string) error {
	db, mode, ok := strings.Cut(item, ":")
	if !ok || db == "" || (mode != "session" && mode != "transaction") {
		return fmt.Errorf("%q must be database:session or database:transaction", item)
	}
	return nil
}

func checkRegexp(v any) error {
	if _, err := regexp.Compile(anchor(v.(string))); err != nil {
		return fmt.Errorf("must be a valid regular expression: %v", err)
	}
	return nil
}

// anchor makes a pattern match whole values only: "[a-z]+" must not accept
// "acme'; DROP" just because a substring matches. A pattern that is already
// ^…$ at the top level is kept as written, so that error messages showing
// it read as configured.
func anchor(pattern string) string {
	if re, err := syntax.Parse(pattern, syntax.Perl); err == nil && re.Op == syntax.OpConcat && len(re.Sub) >= 2 &&
		re.Sub[0].Op == syntax.OpBeginText && re.Sub[len(re.Sub)-1].Op == syntax.OpEndText {
		return pattern
	}
	return "^(?:" + pattern + ")$"
}
