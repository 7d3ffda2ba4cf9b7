package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := Default()
	want := &Config{
		ListenHost:         "127.0.0.1",
		Port:               6432,
		UpstreamHost:       "127.0.0.1",
		UpstreamPort:       5432,
		TenantSeparator:    ".",
		ValueSeparator:     ":",
		ContextVariables:   []string{"app.current_tenant_id"},
		SuperuserBypass:    []string{"postgres"},
		TenantRoles:        []string{"app_user"},
		TenantValuePattern: `^[A-Za-z0-9_.-]{1,63}$`,
		LogLevel:           "info",
		LogFormat:          "text",
		ClientTLSMode:      "allow",
		ServerTLSMode:      "prefer",
		MaxMessageSize:     1 << 30,
		MaxMessageMemory:   1 << 30,
		HandshakeTimeout:   30 * time.Second,
		ShutdownTimeout:    30 * time.Second,
		AuthType:           "scram-sha-256",
		AuthUser:           "multigres_auth",
		AuthQuery:          "SELECT usename, passwd FROM multigres.user_lookup($1)",
		AuthFailureDelay:   500 * time.Millisecond,
		ServerPassword:     map[string]string{},
		Guard:              true,
		GuardDeniedFunctions: []string{"pg_terminate_backend", "pg_cancel_backend", "lo_*", "loread", "lowrite", "be_lo_*",
			"dblink*", "pg_read_file*", "pg_read_binary_file*", "pg_ls_*", "pg_stat_file", "query_to_xml*",
			"query_to_xmlschema", "cursor_to_xml*", "ts_stat", "ts_rewrite", "table_to_xml*", "schema_to_xml*", "database_to_xml*",
			"pg_prepared_statement", "pg_cursor", "pg_prepared_xact", "pg_lock_status"},
		PoolMode:                 "session",
		PoolModeDatabases:        []string{},
		CitusDatabases:           []string{},
		DefaultPoolSize:          20,
		ReservePoolTimeout:       5 * time.Second,
		QueryWaitTimeout:         120 * time.Second,
		ServerIdleTimeout:        600 * time.Second,
		ServerLifetime:           3600 * time.Second,
		ServerConnectTimeout:     15 * time.Second,
		ServerCheckDelay:         30 * time.Second,
		MaxPreparedStatements:    200,
		UnsyncedHoldTimeout:      10 * time.Second,
		ClientWriteTimeout:       60 * time.Second,
		MetricsMaxTenants:        1000,
		AdminUsers:               []string{},
		TenantAllow:              []string{},
		TenantDeny:               []string{},
		TenantRoutes:             []string{},
		DatabaseRoutes:           []string{},
		DefaultCluster:           "default",
		TenantMoveTimeout:        30 * time.Second,
		TenantDirectoryCluster:   "default",
		TenantDirectoryTTL:       time.Minute,
		TenantDirectoryCacheSize: 100000,
		Peers:                    []string{},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Default() =\n%+v\nwant\n%+v", *c, *want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if re := c.TenantValueRegexp(); !re.MatchString("acme") || re.MatchString("") || re.MatchString(strings.Repeat("a", 64)) {
		t.Errorf("default tenant_value_pattern regexp %v misbehaves", re)
	}
	if got := c.ListenAddr(); got != "127.0.0.1:6432" {
		t.Errorf("ListenAddr() = %q", got)
	}
	if got := c.UpstreamAddr(); got != "127.0.0.1:5432" {
		t.Errorf("UpstreamAddr() = %q", got)
	}
	got, err := Load(nil, nil)
	if err != nil {
		t.Fatalf("Load(nil, nil): %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Load(nil, nil) = %+v, want defaults", *got)
	}
}

// writeFile writes a config file into a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustLoad loads or fails the test.
func mustLoad(t *testing.T, args, environ []string) *Config {
	t.Helper()
	c, err := Load(args, environ)
	if err != nil {
		t.Fatalf("Load(%q, %q): %v", args, environ, err)
	}
	return c
}

// loadErr loads, requires an error and requires it to contain every want.
func loadErr(t *testing.T, args, environ []string, want ...string) error {
	t.Helper()
	_, err := Load(args, environ)
	if err == nil {
		t.Fatalf("Load(%q, %q) succeeded, want error containing %q", args, environ, want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Load(%q, %q) error %q does not contain %q", args, environ, err, w)
		}
	}
	return err
}

func TestKeysCoverStruct(t *testing.T) {
	t.Parallel()
	fields := map[string]int{}
	for f := range reflect.TypeFor[Config]().Fields() {
		fields[f.Name] = 0
	}
	for _, k := range Keys() {
		if _, ok := fields[k.Field]; !ok {
			t.Errorf("key %s names unknown field %s", k.Name, k.Field)
		}
		fields[k.Field]++
		if want := "MULTIGRES_" + strings.ToUpper(k.Name); k.Env != want {
			t.Errorf("key %s: Env = %q, want %q", k.Name, k.Env, want)
		}
		if want := strings.ReplaceAll(k.Name, "_", "-"); k.Flag != want {
			t.Errorf("key %s: Flag = %q, want %q", k.Name, k.Flag, want)
		}
		if k.Doc == "" || k.Type == "" {
			t.Errorf("key %s: missing Doc or Type", k.Name)
		}
	}
	for f, n := range fields {
		if f == "Resolvers" || f == "Clusters" {
			continue // [resolver NAME] and [cluster NAME] sections, not keys
		}
		if n != 1 {
			t.Errorf("field %s is described by %d keys, want exactly 1", f, n)
		}
	}
}

func TestReloadableSet(t *testing.T) {
	t.Parallel()
	want := []string{"log_level", "log_format", "tls_cert", "tls_key", "client_tls_mode",
		"superuser_bypass", "tenant_roles", "tenant_value_pattern", "auth_type",
		"allow_plaintext_password", "auth_file", "auth_user", "auth_password", "auth_query",
		"auth_dbname", "auth_failure_delay", "server_password", "server_pgpass",
		"handshake_timeout", "shutdown_timeout", "max_message_size", "guard", "guard_denied_functions",
		"admin_users", "max_tenant_server_connections", "unsynced_hold_timeout", "idle_transaction_timeout",
		"tenant_allow", "tenant_deny", "tenant_max_connections", "tenant_rate_limit", "tenant_statement_timeout", "tenant_idle_timeout",
		"tenant_routes", "database_routes", "default_cluster", "tenant_move_timeout", "peers"}
	var got []string
	secret := map[string]bool{}
	for _, k := range Keys() {
		if k.Reloadable {
			got = append(got, k.Name)
		}
		secret[k.Name] = k.Secret
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("reloadable keys = %v, want %v", got, want)
	}
	for name, s := range secret {
		if want := name == "auth_password" || name == "server_password" || name == "resolver_password"; s != want {
			t.Errorf("key %s: Secret = %v, want %v", name, s, want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "multigres.conf", `
port = 7001
listen_host = 0.0.0.0
log_level = debug
upstream_port = 5433
`)
	fileOnly := mustLoad(t, []string{"--config", path}, nil)
	if fileOnly.Port != 7001 || fileOnly.ListenHost != "0.0.0.0" || fileOnly.LogLevel != "debug" || fileOnly.UpstreamPort != 5433 {
		t.Errorf("file values not applied: %+v", fileOnly)
	}
	if fileOnly.UpstreamHost != "127.0.0.1" {
		t.Errorf("key absent from file lost its default: upstream_host = %q", fileOnly.UpstreamHost)
	}

	env := []string{"HOME=/root", "MULTIGRES_PORT=7002", "MULTIGRES_LOG_LEVEL=warn"}
	fileEnv := mustLoad(t, []string{"--config", path}, env)
	if fileEnv.Port != 7002 || fileEnv.LogLevel != "warn" {
		t.Errorf("env did not override file: port %d log_level %q", fileEnv.Port, fileEnv.LogLevel)
	}
	if fileEnv.ListenHost != "0.0.0.0" {
		t.Errorf("file value lost when env sets other keys: listen_host %q", fileEnv.ListenHost)
	}

	all := mustLoad(t, []string{"--config", path, "--port", "7003", "--listen-host=::1"}, env)
	if all.Port != 7003 || all.ListenHost != "::1" {
		t.Errorf("flags did not override env and file: port %d listen_host %q", all.Port, all.ListenHost)
	}
	if all.LogLevel != "warn" || all.UpstreamPort != 5433 {
		t.Errorf("lower layers lost: log_level %q upstream_port %d", all.LogLevel, all.UpstreamPort)
	}
	if got := all.ListenAddr(); got != "[::1]:7003" {
		t.Errorf("ListenAddr() = %q", got)
	}

	// MULTIGRES_CONFIG names the file; --config wins over it.
	viaEnv := mustLoad(t, nil, []string{"MULTIGRES_CONFIG=" + path})
	if viaEnv.Port != 7001 {
		t.Errorf("MULTIGRES_CONFIG not read: port %d", viaEnv.Port)
	}
	other := writeFile(t, "other.conf", "port = 7100\n")
	if c := mustLoad(t, []string{"--config", other}, []string{"MULTIGRES_CONFIG=" + path}); c.Port != 7100 {
		t.Errorf("--config did not win over MULTIGRES_CONFIG: port %d", c.Port)
	}
	loadErr(t, []string{"--config", filepath.Join(t.TempDir(), "missing.conf")}, nil, "missing.conf")
}

func TestFileSyntax(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "multigres.conf", "\uFEFF# leading comment\r\n"+
		"; also a comment\r\n"+
		"\r\n"+
		"[multigres]\r\n"+
		"  Listen_Host   =   '10.0.0.1'  \r\n"+
		"context_variables = app.current_list_id, app.current_user_id\n"+
		"value_separator = \":\"\n"+
		"auth_password = p#ss;word\n"+
		"set_role = ''\n"+
		"tenant_value_pattern = \"^[a-z]+$\"\n"+
		"auth_query=SELECT u, p FROM f($1) WHERE 1 = 1\n"+
		"[ MULTIGRES ]\n"+
		"shutdown_timeout = 45\n")
	c := mustLoad(t, []string{"--config", path}, nil)
	if c.ListenHost != "10.0.0.1" {
		t.Errorf("listen_host = %q", c.ListenHost)
	}
	if !slices.Equal(c.ContextVariables, []string{"app.current_list_id", "app.current_user_id"}) {
		t.Errorf("context_variables = %q", c.ContextVariables)
	}
	if c.ValueSeparator != ":" || c.SetRole != "" || c.TenantValuePattern != "^[a-z]+$" {
		t.Errorf("quoted values: value_separator %q set_role %q pattern %q", c.ValueSeparator, c.SetRole, c.TenantValuePattern)
	}
	if c.AuthPassword != "p#ss;word" {
		t.Errorf("# and ; inside a value must be kept: %q", c.AuthPassword)
	}
	if c.AuthQuery != "SELECT u, p FROM f($1) WHERE 1 = 1" {
		t.Errorf("auth_query = %q", c.AuthQuery)
	}
	if c.ShutdownTimeout != 45*time.Second {
		t.Errorf("bare integer duration: shutdown_timeout = %v, want 45s", c.ShutdownTimeout)
	}
}

func TestFileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ text, want string }{
		{"port = 1\nlisten_hots = x\n", `multigres.conf:2: unknown key "listen_hots" (did you mean "listen_host"?)`},
		{"port = 1\n\nport = 2\n", `multigres.conf:3: key "port" already set on line 1`},
		{"[databases]\nport = 1\n", `multigres.conf:1: unknown section [databases]`},
		{"[multigres\n", `multigres.conf:1: malformed section header`},
		{"just words\n", `multigres.conf:1: expected key = value`},
		{"# c\nport = abc\n", `multigres.conf:2: port: must be 1..65535, got "abc"`},
		{"%include other.ini\n", `multigres.conf:1: expected key = value`},
	}
	for _, tc := range cases {
		path := writeFile(t, "multigres.conf", tc.text)
		loadErr(t, []string{"--config", path}, nil, tc.want)
	}
	// Several problems are reported together.
	path := writeFile(t, "multigres.conf", "nope = 1\nport = 0\nlog_level = loud\n")
	loadErr(t, []string{"--config", path}, nil, `unknown key "nope"`)
	path = writeFile(t, "multigres.conf", "port = 0\nlog_level = loud\n")
	loadErr(t, []string{"--config", path}, nil, "multigres.conf:1: port:", "multigres.conf:2: log_level:")
}

func TestUnknownFlagEnvArg(t *testing.T) {
	t.Parallel()
	loadErr(t, []string{"--listen-hots", "x"}, nil, `unknown flag --listen-hots (did you mean "--listen-host"?)`)
	loadErr(t, []string{"--port"}, nil, "flag --port needs a value")
	loadErr(t, nil, []string{"MULTIGRES_LISTEN_HOTS=x"}, "MULTIGRES_LISTEN_HOTS", `did you mean "MULTIGRES_LISTEN_HOST"`)
	loadErr(t, nil, []string{"MULTIGRES_listen_host=x"}, "MULTIGRES_listen_host")
	loadErr(t, []string{"--port", "7000", "stray"}, nil, `unexpected argument "stray"`)
	// Other variables are none of our business.
	mustLoad(t, nil, []string{"PATH=/bin", "MULTIGRESX=1", "PGPORT=1"})

	_, err := Load([]string{"--help"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: err = %v, want flag.ErrHelp", err)
	}
}

func TestFlagForms(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, []string{"--allow-plaintext-password", "-port=7000", "--superuser-bypass", "postgres, admin", "--port", "7001"}, nil)
	if !c.AllowPlaintextPassword {
		t.Error("bare bool flag did not set true")
	}
	if c.Port != 7001 {
		t.Errorf("repeated flag: last should win, port = %d", c.Port)
	}
	if !slices.Equal(c.SuperuserBypass, []string{"postgres", "admin"}) {
		t.Errorf("superuser_bypass = %q", c.SuperuserBypass)
	}
	c = mustLoad(t, []string{"--allow-plaintext-password=off"}, []string{"MULTIGRES_ALLOW_PLAINTEXT_PASSWORD=yes"})
	if c.AllowPlaintextPassword {
		t.Error("--allow-plaintext-password=off did not override env yes")
	}
}

func TestValueForms(t *testing.T) {
	t.Parallel()
	cases := []struct {
		key, value string
		check      func(*Config) bool
	}{
		{"max_message_size", "1048576", func(c *Config) bool { return c.MaxMessageSize == 1<<20 }},
		{"max_message_size", "64kB", func(c *Config) bool { return c.MaxMessageSize == 64<<10 }},
		{"max_message_size", "16 MB", func(c *Config) bool { return c.MaxMessageSize == 16<<20 }},
		{"max_message_size", "1GB", func(c *Config) bool { return c.MaxMessageSize == 1<<30 }},
		{"max_message_size", "1024B", func(c *Config) bool { return c.MaxMessageSize == 1024 }},
		{"handshake_timeout", "5", func(c *Config) bool { return c.HandshakeTimeout == 5*time.Second }},
		{"handshake_timeout", "1m30s", func(c *Config) bool { return c.HandshakeTimeout == 90*time.Second }},
		{"auth_failure_delay", "0", func(c *Config) bool { return c.AuthFailureDelay == 0 }},
		{"auth_failure_delay", "250ms", func(c *Config) bool { return c.AuthFailureDelay == 250*time.Millisecond }},
		{"allow_plaintext_password", "ON", func(c *Config) bool { return c.AllowPlaintextPassword }},
		{"allow_plaintext_password", "1", func(c *Config) bool { return c.AllowPlaintextPassword }},
		{"allow_plaintext_password", "true", func(c *Config) bool { return c.AllowPlaintextPassword }},
		{"log_level", "DEBUG", func(c *Config) bool { return c.LogLevel == "debug" }},
		{"superuser_bypass", "", func(c *Config) bool { return len(c.SuperuserBypass) == 0 }},
		{"tenant_roles", "app_user, reporting", func(c *Config) bool {
			return slices.Equal(c.TenantRoles, []string{"app_user", "reporting"})
		}},
		{"server_password", "app_user:s3cr:et, reporting:pw2", func(c *Config) bool {
			return reflect.DeepEqual(c.ServerPassword, map[string]string{"app_user": "s3cr:et", "reporting": "pw2"})
		}},
		{"listen_host", "*", func(c *Config) bool { return c.ListenAddr() == ":6432" }},
		{"tenant_separator", "__", func(c *Config) bool { return c.TenantSeparator == "__" }},
		{"pool_mode", "session", func(c *Config) bool { return c.PoolMode == "session" }},
		{"admin_listen", "127.0.0.1:9930", func(c *Config) bool { return c.AdminListen == "127.0.0.1:9930" }},
		{"admin_listen", "[::1]:0", func(c *Config) bool { return c.AdminListen == "[::1]:0" }},
		{"metrics_max_tenants", "2", func(c *Config) bool { return c.MetricsMaxTenants == 2 }},
		{"listen_reuseport", "on", func(c *Config) bool { return c.ListenReusePort }},
		{"listen_reuseport", "off", func(c *Config) bool { return !c.ListenReusePort }},
	}
	for _, tc := range cases {
		path := writeFile(t, "multigres.conf", tc.key+" = "+tc.value+"\n")
		for _, c := range []*Config{
			mustLoad(t, []string{"--config", path}, nil),
			mustLoad(t, nil, []string{"MULTIGRES_" + strings.ToUpper(tc.key) + "=" + tc.value}),
			mustLoad(t, []string{"--" + strings.ReplaceAll(tc.key, "_", "-") + "=" + tc.value}, nil),
		} {
			if !tc.check(c) {
				t.Errorf("%s = %q: unexpected result %+v", tc.key, tc.value, c)
			}
		}
	}
}

// TestValueErrors checks that every bad value is refused with an error that
// names the key and says why.
func TestValueErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ key, value, want string }{
		{"port", "abc", `port: must be 1..65535, got "abc"`},
		{"port", "0", `port: must be 1..65535, got "0"`},
		{"port", "65536", `port: must be 1..65535`},
		{"upstream_port", "-1", `upstream_port: must be 1..65535`},
		{"listen_host", "", `listen_host: must not be empty`},
		{"upstream_host", " ", `upstream_host: must not be empty`},
		{"tenant_separator", "", `tenant_separator: must not be empty`},
		{"value_separator", "", `value_separator: must not be empty`},
		{"context_variables", "", `context_variables: must list at least one name`},
		{"context_variables", "tenant_id", `context_variables: "tenant_id" must contain a dot`},
		{"context_variables", "app.1x", `context_variables: "app.1x" is not a valid setting name`},
		{"context_variables", "app.x-y", `context_variables: "app.x-y" is not a valid setting name`},
		{"context_variables", "app..x", `context_variables: "app..x" is not a valid setting name`},
		{"context_variables", "app.a,App.A", `context_variables: "App.A" is listed twice`},
		{"context_variables", "app.a,,app.b", `context_variables: item 2 is empty`},
		{"superuser_bypass", "postgres,postgres", `superuser_bypass: "postgres" is listed twice`},
		{"tenant_roles", "", `tenant_roles: must list at least one name`},
		{"tenant_value_pattern", "([a-z]", `tenant_value_pattern: must be a valid regular expression`},
		{"tenant_value_pattern", "", `tenant_value_pattern: must not be empty`},
		{"log_level", "loud", `log_level: must be one of debug, info, warn, error, got "loud"`},
		{"log_format", "xml", `log_format: must be one of text, json`},
		{"client_tls_mode", "prefer", `client_tls_mode: must be one of disable, allow, require`},
		{"server_tls_mode", "verify-ca", `server_tls_mode: must be one of disable, prefer, require, verify-full`},
		{"max_message_size", "1000", `max_message_size: must be a size from 1kB`},
		{"max_message_size", "4GB", `max_message_size: must be a size from 1kB to 1GB`},
		{"max_message_size", "1073741825", `max_message_size: must be a size from 1kB to 1GB`},
		{"max_message_size", "1gb", `max_message_size: must be a size`},
		{"max_message_size", "-5kB", `max_message_size: must be a size`},
		{"handshake_timeout", "0", `handshake_timeout: must be at least 1ms`},
		{"handshake_timeout", "soon", `handshake_timeout: must be a duration`},
		{"shutdown_timeout", "-1s", `shutdown_timeout: must not be negative`},
		{"shutdown_timeout", "-1", `shutdown_timeout: must not be negative`},
		{"auth_failure_delay", "1.5", `auth_failure_delay: must be a duration`},
		{"auth_type", "cert", `auth_type: must be one of scram-sha-256, md5, password, trust`},
		{"allow_plaintext_password", "maybe", `allow_plaintext_password: must be on, off`},
		{"server_password", "app_user", `server_password: entry 1 must be role:password (value not shown)`},
		{"server_password", "a:x,a:y", `server_password: role "a" is listed twice (value not shown)`},
		{"server_password", ":pw", `server_password: entry 1 must be role:password`},
		{"pool_mode", "statement", `pool_mode: must be one of session, transaction`},
		{"pool_mode_databases", "app=transaction", `pool_mode_databases: "app=transaction" must be database:session or database:transaction`},
		{"max_prepared_statements", "0", `max_prepared_statements: must be 1..100000`},
		{"admin_listen", "9930", `admin_listen: must be host:port, like 127.0.0.1:9930, got "9930"`},
		{"admin_listen", "localhost:http", `admin_listen: port must be a number from 0 to 65535`},
		{"admin_listen", "localhost:70000", `admin_listen: port must be a number from 0 to 65535`},
		{"metrics_max_tenants", "0", `metrics_max_tenants: must be 1..1000000`},
	}
	for _, tc := range cases {
		env := "MULTIGRES_" + strings.ToUpper(tc.key)
		flagName := "--" + strings.ReplaceAll(tc.key, "_", "-")
		err := loadErr(t, []string{flagName + "=" + tc.value}, nil, tc.want, "(from "+flagName+")")
		if tc.key == "server_password" && strings.Contains(err.Error(), tc.value) {
			t.Errorf("secret value %q echoed in error %q", tc.value, err)
		}
		loadErr(t, nil, []string{env + "=" + tc.value}, tc.want, "(from "+env+")")
		path := writeFile(t, "multigres.conf", tc.key+" = '"+tc.value+"'\n")
		loadErr(t, []string{"--config", path}, nil, "multigres.conf:1: "+tc.want)
	}
}

// selfSigned writes a throwaway certificate and key and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestValidateCrossField(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSigned(t)
	c := mustLoad(t, []string{"--tls-cert", certFile, "--tls-key", keyFile, "--client-tls-mode", "require",
		"--server-tls-mode", "verify-full", "--server-tls-ca", certFile}, nil)
	if c.TLSCert != certFile || c.ClientTLSMode != "require" || c.ServerTLSCA != certFile {
		t.Errorf("TLS settings not applied: %+v", c)
	}
	userlist := writeFile(t, "userlist.txt", `"app_user" "SCRAM-SHA-256$4096:..."`+"\n")
	c = mustLoad(t, []string{"--auth-file", userlist, "--auth-query", "", "--auth-user", ""}, nil)
	if c.AuthFile != userlist {
		t.Errorf("auth_file = %q", c.AuthFile)
	}
	missing := filepath.Join(t.TempDir(), "missing")

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--tenant-separator", ":"}, `tenant_separator: must differ from value_separator, both are ":"`},
		{[]string{"--tenant-separator", "_"}, `tenant_roles: role "app_user" contains tenant_separator "_"`},
		{[]string{"--tenant-roles", "postgres"}, `tenant_roles: role "postgres" is also in superuser_bypass`},
		{[]string{"--tls-cert", certFile}, "tls_cert, tls_key: set both or neither"},
		{[]string{"--tls-key", keyFile}, "tls_cert, tls_key: set both or neither"},
		{[]string{"--tls-cert", keyFile, "--tls-key", keyFile}, "tls_cert, tls_key: cannot load key pair"},
		{[]string{"--tls-cert", missing, "--tls-key", keyFile}, "tls_cert, tls_key: cannot load key pair"},
		{[]string{"--client-tls-mode", "require"}, "client_tls_mode: require needs tls_cert and tls_key"},
		{[]string{"--server-tls-ca", missing}, "server_tls_ca: open " + missing},
		{[]string{"--server-tls-ca", keyFile}, "server_tls_ca: " + keyFile + ": no PEM certificate found"},
		{[]string{"--auth-file", missing}, "auth_file: open " + missing},
		{[]string{"--server-pgpass", missing}, "server_pgpass: open " + missing},
		{[]string{"--auth-query", "SELECT 1"}, "auth_query: must take the user name as $1"},
		{[]string{"--auth-user", ""}, "auth_user: must be set when auth_file is empty"},
	}
	for _, tc := range cases {
		loadErr(t, tc.args, nil, tc.want)
	}
	// trust needs no credential source.
	mustLoad(t, []string{"--auth-type", "trust", "--auth-query", ""}, nil)
	// password without TLS is allowed at config level; the proxy refuses it per connection.
	mustLoad(t, []string{"--auth-type", "password"}, nil)

	// Validate also catches values set by hand.
	for _, mutate := range []struct {
		f    func(*Config)
		want string
	}{
		{func(c *Config) { c.Port = 0 }, `port: must be 1..65535, got "0"`},
		{func(c *Config) { c.LogLevel = "INFO" }, `log_level: must be one of`},
		{func(c *Config) { c.ContextVariables = nil }, `context_variables: must list at least one name`},
		{func(c *Config) { c.ContextVariables = []string{" app.x"} }, `context_variables: item " app.x" must not contain commas`},
		{func(c *Config) { c.HandshakeTimeout = 0 }, `handshake_timeout: must be at least 1ms`},
		{func(c *Config) { c.MaxMessageSize = 10 }, `max_message_size: must be a size`},
		{func(c *Config) { c.ServerPassword = map[string]string{"r": "a,b"} }, `server_password: password for role "r"`},
	} {
		c := Default()
		mutate.f(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), mutate.want) {
			t.Errorf("Validate() = %v, want %q", err, mutate.want)
		}
		if err != nil && strings.Contains(err.Error(), "a,b") {
			t.Errorf("secret echoed by Validate: %v", err)
		}
	}
}

func TestTenantValueRegexpIsAnchored(t *testing.T) {
	t.Parallel()
	for _, pattern := range []string{"[a-z]+|[0-9]+", "^[a-z]+|[0-9]+$", "^[a-z]+$|^[0-9]+$", "(?m)^([a-z]+|[0-9]+)$"} {
		c := mustLoad(t, []string{"--tenant-value-pattern", pattern}, nil)
		re := c.TenantValueRegexp()
		for v, want := range map[string]bool{"acme": true, "42": true, "acme'; DROP TABLE x": false,
			"x42": false, "": false, "acme\n42": false, "42\nx": false} {
			if got := re.MatchString(v); got != want {
				t.Errorf("pattern %q (compiled %q) on %q = %v, want %v", pattern, re, v, got, want)
			}
		}
	}
	// An anchored pattern is kept as written, for readable error details.
	if got := Default().TenantValueRegexp().String(); got != `^[A-Za-z0-9_.-]{1,63}$` {
		t.Errorf("default pattern rewritten to %q", got)
	}
}

func TestReloadable(t *testing.T) {
	t.Parallel()
	old := Default()
	applied, restart := Reloadable(old, old.Clone())
	if len(applied) != 0 || len(restart) != 0 {
		t.Errorf("identical configs: applied %v restart %v", applied, restart)
	}
	n := old.Clone()
	n.LogLevel = "debug"
	n.ServerPassword["app_user"] = "pw"
	n.TenantRoles = append(n.TenantRoles, "reporting")
	n.Port = 7000
	n.ContextVariables = []string{"app.a", "app.b"}
	n.HandshakeTimeout = time.Second
	applied, restart = Reloadable(old, n)
	if want := []string{"log_level", "tenant_roles", "handshake_timeout", "server_password"}; !slices.Equal(applied, want) {
		t.Errorf("applied = %v, want %v", applied, want)
	}
	if want := []string{"port", "context_variables"}; !slices.Equal(restart, want) {
		t.Errorf("needRestart = %v, want %v", restart, want)
	}
	// nil and empty mean the same thing and are not a change.
	n = old.Clone()
	n.ServerPassword = nil
	if applied, restart := Reloadable(old, n); len(applied)+len(restart) != 0 {
		t.Errorf("nil vs empty map reported as change: %v %v", applied, restart)
	}
}

func TestApplyReload(t *testing.T) {
	t.Parallel()
	old := Default()
	next := old.Clone()
	next.Port = 7000
	next.ContextVariables = []string{"app.a", "app.b"}
	next.LogLevel = "debug"
	next.TenantRoles = []string{"reporting"}
	eff, applied, restart, err := ApplyReload(old, next)
	if err != nil {
		t.Fatal(err)
	}
	if eff.Port != 6432 || !slices.Equal(eff.ContextVariables, []string{"app.current_tenant_id"}) {
		t.Errorf("restart keys were applied: port %d context_variables %q", eff.Port, eff.ContextVariables)
	}
	if eff.LogLevel != "debug" || !slices.Equal(eff.TenantRoles, []string{"reporting"}) {
		t.Errorf("reloadable keys not applied: log_level %q tenant_roles %q", eff.LogLevel, eff.TenantRoles)
	}
	if !slices.Equal(applied, []string{"log_level", "tenant_roles"}) || !slices.Equal(restart, []string{"port", "context_variables"}) {
		t.Errorf("applied %v restart %v", applied, restart)
	}
	eff.ContextVariables[0] = "app.changed"
	if old.ContextVariables[0] != "app.current_tenant_id" {
		t.Error("ApplyReload result shares memory with old")
	}

	// tenant_separator needs a restart; a new tenant role that contains the
	// old separator is refused, though it fits the new separator.
	next = old.Clone()
	next.TenantSeparator = "@"
	next.TenantRoles = []string{"app.user"}
	if err := next.Validate(); err != nil {
		t.Fatalf("next alone should be valid: %v", err)
	}
	if _, _, _, err := ApplyReload(old, next); err == nil || !strings.Contains(err.Error(), `tenant_roles: role "app.user" contains tenant_separator "."`) {
		t.Errorf("ApplyReload with mixed rules: err = %v", err)
	}
}

func TestClone(t *testing.T) {
	t.Parallel()
	a := Default()
	a.ServerPassword["x"] = "y"
	b := a.Clone()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Clone differs from original")
	}
	b.ContextVariables[0] = "app.changed"
	b.SuperuserBypass[0] = "changed"
	b.TenantRoles[0] = "changed"
	b.ServerPassword["x"] = "changed"
	if a.ContextVariables[0] != "app.current_tenant_id" || a.SuperuserBypass[0] != "postgres" ||
		a.TenantRoles[0] != "app_user" || a.ServerPassword["x"] != "y" {
		t.Errorf("Clone shares memory with the original: %+v", a)
	}
}

func TestUsageListsEveryFlag(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	Usage(&b)
	for _, k := range Keys() {
		if !strings.Contains(b.String(), "--"+k.Flag+" ") || !strings.Contains(b.String(), k.Env) {
			t.Errorf("Usage lacks --%s or %s", k.Flag, k.Env)
		}
	}
}
