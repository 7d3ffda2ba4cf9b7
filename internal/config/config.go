// Package config holds multigres's settings: one Config struct with
// documented defaults, loaded from a multigres.conf file, MULTIGRES_* env
// vars and --flags (flags > env > file > defaults).
//
// Every key is described once, in the keys table (keys.go). Defaults, flag
// and env names, file parsing, validation, printing, reload classification
// and the reference table in docs/configuration.md are all derived from that
// table, so they cannot drift apart. A test checks that every struct field
// has exactly one key and that the docs table matches the code.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration. The zero value is not useful; start
// from Default or Load. The comment on each field gives its file key; the
// keys table in keys.go holds the default and the documentation.
type Config struct {
	ListenHost         string   // listen_host
	Port               int      // port
	ListenReusePort    bool     // listen_reuseport
	UpstreamHost       string   // upstream_host
	UpstreamPort       int      // upstream_port
	TenantSeparator    string   // tenant_separator
	ValueSeparator     string   // value_separator
	ContextVariables   []string // context_variables
	SuperuserBypass    []string // superuser_bypass
	TenantRoles        []string // tenant_roles
	TenantValuePattern string   // tenant_value_pattern
	SetRole            string   // set_role

	LogLevel  string // log_level
	LogFormat string // log_format

	TLSCert       string // tls_cert
	TLSKey        string // tls_key
	ClientTLSMode string // client_tls_mode
	ServerTLSMode string // server_tls_mode
	ServerTLSCA   string // server_tls_ca

	MaxMessageSize   int64         // max_message_size
	MaxMessageMemory int64         // max_message_memory
	HandshakeTimeout time.Duration // handshake_timeout
	ShutdownTimeout  time.Duration // shutdown_timeout

	AuthType               string            // auth_type
	AllowPlaintextPassword bool              // allow_plaintext_password
	AuthFile               string            // auth_file
	AuthUser               string            // auth_user
	AuthPassword           string            // auth_password
	AuthQuery              string            // auth_query
	AuthDatabase           string            // auth_dbname
	AuthFailureDelay       time.Duration     // auth_failure_delay
	ServerPassword         map[string]string // server_password
	ServerPgpass           string            // server_pgpass

	ContextSigning       bool     // context_signing
	Guard                bool     // guard
	GuardDeniedFunctions []string // guard_denied_functions

	Workers                    int           // workers
	PoolMode                   string        // pool_mode
	PoolModeDatabases          []string      // pool_mode_databases
	CitusDatabases             []string      // citus_databases
	DefaultPoolSize            int           // default_pool_size
	MinPoolSize                int           // min_pool_size
	ReservePoolSize            int           // reserve_pool_size
	ReservePoolTimeout         time.Duration // reserve_pool_timeout
	MaxDBConnections           int           // max_db_connections
	MaxClientConn              int           // max_client_conn
	QueryWaitTimeout           time.Duration // query_wait_timeout
	ServerIdleTimeout          time.Duration // server_idle_timeout
	ServerLifetime             time.Duration // server_lifetime
	ServerConnectTimeout       time.Duration // server_connect_timeout
	ServerCheckDelay           time.Duration // server_check_delay
	MaxPreparedStatements      int           // max_prepared_statements
	MaxTenantServerConnections int           // max_tenant_server_connections
	UnsyncedHoldTimeout        time.Duration // unsynced_hold_timeout
	ClientWriteTimeout         time.Duration // client_write_timeout
	IdleTransactionTimeout     time.Duration // idle_transaction_timeout
	StateAudit                 bool          // state_audit

	AdminListen       string   // admin_listen
	MetricsMaxTenants int      // metrics_max_tenants
	AdminUsers        []string // admin_users

	TenantAllow            []string      // tenant_allow
	TenantDeny             []string      // tenant_deny
	TenantMaxConnections   int           // tenant_max_connections
	TenantRateLimit        int           // tenant_rate_limit
	TenantStatementTimeout time.Duration // tenant_statement_timeout
	TenantIdleTimeout      time.Duration // tenant_idle_timeout

	TenantRoutes      []string      // tenant_routes
	DatabaseRoutes    []string      // database_routes
	DefaultCluster    string        // default_cluster
	TenantMoveTimeout time.Duration // tenant_move_timeout
	RouteStateFile    string        // route_state_file

	TenantDirectoryQuery     string        // tenant_directory_query
	TenantDirectoryCluster   string        // tenant_directory_cluster
	TenantDirectoryDatabase  string        // tenant_directory_dbname
	TenantDirectoryTTL       time.Duration // tenant_directory_ttl
	TenantDirectoryChannel   string        // tenant_directory_channel
	TenantDirectoryCacheSize int           // tenant_directory_cache_size

	ResolverUser     string // resolver_user
	ResolverPassword string // resolver_password

	PeerID int      // peer_id
	Peers  []string // peers

	// Resolvers are the [resolver NAME] sections, in file order. They are
	// not keys: only the config file sets them, and a change needs a
	// restart.
	Resolvers []ResolverConfig
	// Clusters are the [cluster NAME] sections, in file order (the default
	// cluster is upstream_host and upstream_port; see ClusterList). Like
	// resolvers they are file-only and restart-only.
	Clusters []ClusterConfig
}

// PoolModeFor is the pool mode of database db: its pool_mode_databases
// entry, or pool_mode.
func (c *Config) PoolModeFor(db string) string {
	for _, item := range c.PoolModeDatabases {
		if name, mode, _ := strings.Cut(item, ":"); name == db {
			return mode
		}
	}
	return c.PoolMode
}

// Redacted is what Print, String and LogValue show instead of a secret.
const Redacted = "<redacted>"

// EnvConfig names the env var that gives the config file path when --config
// is not given.
const EnvConfig = "MULTIGRES_CONFIG"

// envPrefix starts the env var of every key: MULTIGRES_<KEY upper>.
const envPrefix = "MULTIGRES_"

// Default returns the built-in configuration. The values come from the keys
// table, parsed the same way a file value would be.
func Default() *Config {
	c := &Config{}
	for i := range keyTable {
		k := &keyTable[i]
		v, err := k.kind.parse(k.Default)
		if err != nil {
			// The table is code; a bad default is a programming error that
			// TestDefaults catches.
			panic(fmt.Sprintf("config: bad default for %s: %v", k.Name, err))
		}
		k.set(c, v)
	}
	return c
}

// Clone returns a deep copy: slices and maps are not shared with c.
func (c *Config) Clone() *Config {
	n := *c
	n.ContextVariables = slices.Clone(c.ContextVariables)
	n.SuperuserBypass = slices.Clone(c.SuperuserBypass)
	n.TenantRoles = slices.Clone(c.TenantRoles)
	n.ServerPassword = maps.Clone(c.ServerPassword)
	n.AdminUsers = slices.Clone(c.AdminUsers)
	n.TenantAllow = slices.Clone(c.TenantAllow)
	n.PoolModeDatabases = slices.Clone(c.PoolModeDatabases)
	n.CitusDatabases = slices.Clone(c.CitusDatabases)
	n.TenantDeny = slices.Clone(c.TenantDeny)
	n.TenantRoutes = slices.Clone(c.TenantRoutes)
	n.DatabaseRoutes = slices.Clone(c.DatabaseRoutes)
	n.Clusters = slices.Clone(c.Clusters)
	n.Peers = slices.Clone(c.Peers)
	n.Resolvers = slices.Clone(c.Resolvers)
	for i := range n.Resolvers {
		n.Resolvers[i].Params = slices.Clone(c.Resolvers[i].Params)
		n.Resolvers[i].Sets = slices.Clone(c.Resolvers[i].Sets)
	}
	return &n
}

// ListenAddr is the host:port the proxy listens on. listen_host "*" means
// every interface.
func (c *Config) ListenAddr() string {
	h := c.ListenHost
	if h == "*" {
		h = ""
	}
	return net.JoinHostPort(h, strconv.Itoa(c.Port))
}

// UpstreamAddr is the host:port of the PostgreSQL server.
func (c *Config) UpstreamAddr() string {
	return net.JoinHostPort(c.UpstreamHost, strconv.Itoa(c.UpstreamPort))
}

// TenantValueRegexp compiles tenant_value_pattern, anchored so that it
// must match a whole value. It panics if the pattern does not compile, which
// Validate rules out; call it on a validated Config.
func (c *Config) TenantValueRegexp() *regexp.Regexp {
	return regexp.MustCompile(anchor(c.TenantValuePattern))
}

// Validate checks every value and the rules that span several keys. Each
// error names the key. Load calls it; call it again after changing a Config
// by hand. It reads tls_cert/tls_key, server_tls_ca, auth_file and
// server_pgpass to catch a bad path at startup rather than at first use.
func (c *Config) Validate() error {
	var errs []error
	for i := range keyTable {
		k := &keyTable[i]
		if err := k.check(k.get(c)); err != nil {
			errs = append(errs, k.valueError(err, k.kind.format(k.get(c))))
		}
	}
	if len(errs) > 0 {
		// Cross-field rules assume each value is sane on its own.
		return errors.Join(errs...)
	}
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.TenantSeparator == c.ValueSeparator {
		add("tenant_separator: must differ from value_separator, both are %q", c.TenantSeparator)
	}
	for _, r := range c.TenantRoles {
		if strings.Contains(r, c.TenantSeparator) {
			add("tenant_roles: role %q contains tenant_separator %q, so usernames for it cannot be split", r, c.TenantSeparator)
		}
		if slices.Contains(c.SuperuserBypass, r) {
			add("tenant_roles: role %q is also in superuser_bypass; a role is either a tenant role or a bypass user", r)
		}
	}

	if (c.TLSCert == "") != (c.TLSKey == "") {
		add("tls_cert, tls_key: set both or neither")
	} else if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			add("tls_cert, tls_key: cannot load key pair: %v", err)
		}
	}
	if c.ClientTLSMode == "require" && c.TLSCert == "" {
		add("client_tls_mode: require needs tls_cert and tls_key")
	}
	if c.ServerTLSCA != "" {
		if err := checkCAFile(c.ServerTLSCA); err != nil {
			add("server_tls_ca: %v", err)
		}
	}

	if c.AuthFile != "" {
		if err := checkReadable(c.AuthFile); err != nil {
			add("auth_file: %v", err)
		}
	} else if c.AuthType != "trust" {
		if c.AuthUser == "" {
			add("auth_user: must be set when auth_file is empty (auth_query runs as this role)")
		}
		if !strings.Contains(c.AuthQuery, "$1") {
			add("auth_query: must take the user name as $1")
		}
	}
	if c.ServerPgpass != "" {
		if err := checkReadable(c.ServerPgpass); err != nil {
			add("server_pgpass: %v", err)
		}
	}
	if len(c.Resolvers) > 0 {
		if u, _ := c.ResolverRole(); u == "" {
			add("resolver_user: must be set (or auth_user) when resolvers are configured")
		}
	}
	errs = append(errs, c.validateResolvers()...)
	errs = append(errs, c.validateClusters()...)
	errs = append(errs, c.validatePeers()...)
	errs = append(errs, c.validateCitus()...)
	return errors.Join(errs...)
}

func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

func checkCAFile(path string) error {
	pem, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no PEM certificate found", path)
	}
	return nil
}

// WriteTo prints the configuration as multigres.conf lines, `key = value`,
// in table order, with secrets shown as <redacted>. The output (secrets
// aside) loads back to the same configuration. It implements io.WriterTo.
func (c *Config) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for i := range keyTable {
		k := &keyTable[i]
		v := k.kind.format(k.get(c))
		if k.Secret && v != "" {
			v = Redacted
		}
		fmt.Fprintf(&b, "%s = %s\n", k.Name, quoteValue(v))
	}
	c.writeResolvers(&b)
	c.writeClusters(&b)
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// String returns the redacted printout, so that a Config passed to fmt by
// mistake never shows a password.
func (c Config) String() string {
	var b strings.Builder
	_, _ = c.WriteTo(&b)
	return b.String()
}

// LogValue makes slog print the configuration as a group with secrets
// redacted.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(keyTable))
	for i := range keyTable {
		k := &keyTable[i]
		v := k.kind.format(k.get(&c))
		if k.Secret && v != "" {
			v = Redacted
		}
		attrs = append(attrs, slog.String(k.Name, v))
	}
	return slog.GroupValue(attrs...)
}

// quoteValue quotes v when the file parser would otherwise change it: empty,
// surrounding blanks, or surrounding quotes.
func quoteValue(v string) string {
	if v != "" && strings.TrimSpace(v) == v && v[0] != '"' && v[0] != '\'' {
		return v
	}
	if strings.HasSuffix(v, `"`) {
		return "'" + v + "'"
	}
	return `"` + v + `"`
}

// Reloadable compares two configurations key by key and returns the names of
// the changed keys, split into those a SIGHUP can apply live and those that
// need a restart. Both lists are in table order.
//
// Keys are compared by value, so a changed file behind an unchanged path
// (a renewed tls_cert, an edited auth_file) is not listed; a reload should
// re-read such files anyway.
func Reloadable(old, next *Config) (applied, needRestart []string) {
	for i := range keyTable {
		k := &keyTable[i]
		if k.kind.format(k.get(old)) == k.kind.format(k.get(next)) {
			continue
		}
		if k.Reloadable {
			applied = append(applied, k.Name)
		} else {
			needRestart = append(needRestart, k.Name)
		}
	}
	if !reflect.DeepEqual(old.Resolvers, next.Resolvers) {
		needRestart = append(needRestart, "[resolver]")
	}
	if !slices.Equal(old.Clusters, next.Clusters) {
		needRestart = append(needRestart, "[cluster]")
	}
	return applied, needRestart
}

// ApplyReload is what a SIGHUP handler should switch to: a copy of next in
// which every key that needs a restart keeps its value from old, so that a
// changed port or context_variables does not half-apply to new connections
// only. applied and needRestart are as from Reloadable. The result is
// validated again, since mixing old and new values can break a rule
// between keys; on error, keep old.
func ApplyReload(old, next *Config) (effective *Config, applied, needRestart []string, err error) {
	applied, needRestart = Reloadable(old, next)
	effective = next.Clone()
	kept := old.Clone()
	for _, name := range needRestart {
		if name == "[resolver]" {
			effective.Resolvers = kept.Resolvers
			continue
		}
		if name == "[cluster]" {
			effective.Clusters = kept.Clusters
			continue
		}
		k := byName[name]
		k.set(effective, k.get(kept))
	}
	if err := effective.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("reload: %w", err)
	}
	return effective, applied, needRestart, nil
}

// get returns the field of c that k describes.
func (k *keyDef) get(c *Config) any {
	return reflect.ValueOf(c).Elem().FieldByIndex(k.index).Interface()
}

// set stores v (of the field's exact type) into c.
func (k *keyDef) set(c *Config, v any) {
	reflect.ValueOf(c).Elem().FieldByIndex(k.index).Set(reflect.ValueOf(v))
}

// check applies the kind's constraints and the key's own rule to v.
func (k *keyDef) check(v any) error {
	if err := k.kind.check(v); err != nil {
		return err
	}
	if k.extra != nil {
		return k.extra(v)
	}
	return nil
}

// valueError names the key and the reason, and shows the value unless the
// key is secret.
func (k *keyDef) valueError(reason error, raw string) error {
	if k.Secret {
		return fmt.Errorf("%s: %w (value not shown)", k.Name, reason)
	}
	return fmt.Errorf("%s: %w, got %q", k.Name, reason, raw)
}
