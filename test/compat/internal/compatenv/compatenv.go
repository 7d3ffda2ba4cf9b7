// Package compatenv is what the client compatibility suites outside Go
// (test/compat/node, java, python and cli) share: a fresh database per pool
// mode with the seed guide's schema and rows, two proxies in front of it,
// the environment variables that tell a child program where everything is,
// and a bounded way to run that program and fail with its output.
//
// The seed, identical for every suite:
//
//   - contacts (the guide's Drizzle schema), protected with
//     multigres_protect('contacts', 'tenant_id'): acme has Alice and Bob,
//     globex has Gina. Serial ids are 1, 2 (acme) and 3 (globex).
//   - audit_log (tenant_id, action), protected; action must not be empty,
//     so a client can make the second insert of a transaction fail.
//   - notes (tenant_id, body): created but not protected and not granted,
//     for the guide's "permission denied for table X".
//   - list_contacts with the guide's two-variable policy: list_id must be
//     app.current_list_id and has_list_access(list_id), which checks
//     app.current_user_id against list_members. user456 is a member of
//     list123 (rows Lena, Liam); user789 of list999 (row Otto).
//
// Proxy serves context_variables = app.current_tenant_id (the default);
// ListProxy serves context_variables = app.current_list_id,app.current_user_id.
// Both use the pool mode under test; in transaction mode with
// default_pool_size = PoolSize.
package compatenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// SeedSQL creates and fills the tables described in the package comment.
const SeedSQL = `
CREATE TABLE contacts (
	id serial PRIMARY KEY,
	tenant_id varchar(255) NOT NULL,
	name text NOT NULL,
	email text);
SELECT multigres_protect('contacts', 'tenant_id');
INSERT INTO contacts (tenant_id, name, email) VALUES
	('acme', 'Alice', 'alice@acme.test'),
	('acme', 'Bob', 'bob@acme.test'),
	('globex', 'Gina', 'gina@globex.test');

CREATE TABLE audit_log (
	id serial PRIMARY KEY,
	tenant_id varchar(255) NOT NULL,
	action text NOT NULL CHECK (action <> ''));
SELECT multigres_protect('audit_log', 'tenant_id');

CREATE TABLE notes (id serial PRIMARY KEY, tenant_id text NOT NULL, body text);

CREATE TABLE list_members (list_id text, user_id text, PRIMARY KEY (list_id, user_id));
INSERT INTO list_members VALUES ('list123', 'user456'), ('list999', 'user789');
CREATE FUNCTION has_list_access(list text) RETURNS boolean
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
	AS $$ SELECT EXISTS (SELECT 1 FROM list_members m
		WHERE m.list_id = list AND m.user_id = current_setting('app.current_user_id', true)) $$;
CREATE TABLE list_contacts (id serial PRIMARY KEY, list_id text NOT NULL, name text NOT NULL);
ALTER TABLE list_contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE list_contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON list_contacts
	FOR ALL TO app_user
	USING (
		list_id = current_setting('app.current_list_id', true)
		AND has_list_access(list_id));
GRANT SELECT, INSERT, UPDATE, DELETE ON list_contacts TO app_user;
GRANT USAGE ON SEQUENCE list_contacts_id_seq TO app_user;
INSERT INTO list_contacts (list_id, name) VALUES ('list123', 'Lena'), ('list123', 'Liam'), ('list999', 'Otto');
`

// ListVariables are the ListProxy's context_variables.
var ListVariables = []string{"app.current_list_id", "app.current_user_id"}

// Env is one pool mode's database and proxies.
type Env struct {
	PG        *pgtest.Server
	DB        string
	Mode      string
	Upstream  string           // "postgres", or "citus" for a Citus coordinator
	Proxy     *proxytest.Proxy // context_variables = app.current_tenant_id
	ListProxy *proxytest.Proxy // context_variables = ListVariables
}

// EachMode runs f as a parallel subtest per pool mode in modes, each with a
// fresh Env whose database got SeedSQL and then extra (when not empty).
func EachMode(t *testing.T, modes []string, extra string, f func(t *testing.T, e *Env)) {
	t.Helper()
	EachModeWith(t, modes, Options{Extra: extra}, f)
}

// Options is what EachModeWith and NewWith set up beyond the plain case.
// The zero value is what EachMode and New do.
type Options struct {
	// Extra is SQL run after SeedSQL, in the same Exec.
	Extra string
	// Citus, when not nil, is the cluster the database is created on
	// (every node): the Env's PG is its coordinator, and both proxies
	// serve the database as a citus_databases one.
	Citus *pgtest.Citus
	// AfterSeed are statements run (as the superuser) after SeedSQL and
	// Extra, one Exec each: e.g. distributing the seed's tables on Citus.
	AfterSeed []string
}

// EachModeWith is EachMode with Options.
func EachModeWith(t *testing.T, modes []string, o Options, f func(t *testing.T, e *Env)) {
	t.Helper()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f(t, NewWith(t, mode, o))
		})
	}
}

// New creates a database with SeedSQL and extra, and starts both proxies
// in pool mode mode. Everything goes away at cleanup.
func New(t *testing.T, mode, extra string) *Env {
	t.Helper()
	return NewWith(t, mode, Options{Extra: extra})
}

// citusDDL serialises the setup of Citus databases: Citus propagates DDL
// to every node, and concurrent propagation of grants on the shared roles
// can fail with "tuple concurrently updated" (as in test/citus).
var citusDDL sync.Mutex

// NewWith is New with Options.
func NewWith(t *testing.T, mode string, o Options) *Env {
	t.Helper()
	var pg *pgtest.Server
	var db string
	if o.Citus != nil {
		citusDDL.Lock()
		defer citusDDL.Unlock()
		pg = o.Citus.Coordinator
		db = o.Citus.CreateDB(t)
	} else {
		pg = pgtest.Shared()
		db = pg.CreateDB(t)
	}
	proxytest.Setup(t, pg, db)
	timeout := 30 * time.Second
	if o.Citus != nil {
		timeout = 2 * time.Minute // DDL propagated to every node
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := pg.Exec(ctx, db, SeedSQL+o.Extra); err != nil {
		t.Fatalf("compatenv: seed: %v", err)
	}
	for _, sql := range o.AfterSeed {
		if err := pg.Exec(ctx, db, sql); err != nil {
			t.Fatalf("compatenv: %s: %v", sql, err)
		}
	}
	proxyConfig := func(c *config.Config) {
		poolConfig(c, mode)
		if o.Citus != nil {
			c.CitusDatabases = []string{db}
		}
	}
	e := &Env{PG: pg, DB: db, Mode: mode, Upstream: "postgres"}
	if o.Citus != nil {
		e.Upstream = "citus"
	}
	e.Proxy = proxytest.StartProxy(t, pg, proxyConfig)
	e.ListProxy = proxytest.StartProxy(t, pg, func(c *config.Config) {
		proxyConfig(c)
		c.ContextVariables = ListVariables
	})
	return e
}

// PoolSize is default_pool_size in transaction mode: small, so that the
// tenants of a suite take turns on the same few server connections, and
// large enough for the connections a suite keeps idle in a transaction.
const PoolSize = 4

func poolConfig(c *config.Config, mode string) {
	c.PoolMode = mode
	if mode == "transaction" {
		c.DefaultPoolSize = PoolSize
		// A client starved of a server connection fails (53300) well
		// before the child program's own timeout.
		c.QueryWaitTimeout = 30 * time.Second
	}
}

// Vars is the environment a child program gets (on top of a minimal base,
// see Run):
//
//	MG_HOST, MG_PORT        the proxy (context_variables = app.current_tenant_id)
//	MG_LIST_PORT            the proxy with context_variables = app.current_list_id,app.current_user_id
//	MG_PG_HOST, MG_PG_PORT  PostgreSQL itself, for the guide's direct pool
//	MG_DATABASE             the test's database
//	MG_APP_USER, MG_APP_PASSWORD      app_user / app_user_password
//	MG_SUPER_USER, MG_SUPER_PASSWORD  postgres / postgres_password (superuser_bypass)
//	MG_POOL_MODE            session or transaction
func (e *Env) Vars(t *testing.T) []string {
	t.Helper()
	host, port := splitAddr(t, e.Proxy.Addr)
	_, listPort := splitAddr(t, e.ListProxy.Addr)
	return []string{
		"MG_HOST=" + host,
		"MG_PORT=" + port,
		"MG_LIST_PORT=" + listPort,
		"MG_PG_HOST=" + e.PG.Host,
		fmt.Sprintf("MG_PG_PORT=%d", e.PG.Port),
		"MG_DATABASE=" + e.DB,
		"MG_APP_USER=" + proxytest.AppUser,
		"MG_APP_PASSWORD=" + proxytest.AppUserPassword,
		"MG_SUPER_USER=" + pgtest.SuperUser,
		"MG_SUPER_PASSWORD=" + pgtest.SuperPassword,
		"MG_POOL_MODE=" + e.Mode,
		"MG_UPSTREAM=" + e.Upstream,
	}
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("compatenv: address %q: %v", addr, err)
	}
	return host, port
}

// Query returns the first column of every row of sql, run as the
// superuser past the proxy (the ground truth), as text.
func (e *Env) Query(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := e.PG.Connect(t, e.DB)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("compatenv: %s: %v", sql, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("compatenv: %s: %v", sql, err)
		}
		out = append(out, fmt.Sprint(vals[0]))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("compatenv: %s: %v", sql, err)
	}
	return out
}

// Cmd describes one child program run.
type Cmd struct {
	Dir     string        // working directory ("" = the test's package directory)
	Env     []string      // added to the base environment
	Stdin   string        // fed to the program
	Timeout time.Duration // the whole run, including killing it; 0 = 2 minutes
}

// Run runs name with args and returns its combined output. It fails the
// test, with that output, when the program cannot start, exits non-zero or
// outlives the timeout (it and its children are killed then).
//
// The child's environment is PATH, HOME, LANG and TMPDIR from ours, plus
// c.Env: no PG* variable or npm setting of the caller leaks in.
func Run(t *testing.T, c Cmd, name string, args ...string) string {
	t.Helper()
	out, err := RunErr(t, c, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n--- output ---\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// RunErr is Run without failing the test on a non-zero exit; a program
// that cannot be started or that times out still fails it.
func RunErr(t *testing.T, c Cmd, name string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (%v); `make test` installs it through scripts/ensure-deps.sh", name, err)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = c.Dir
	cmd.Env = append(baseEnv(), c.Env...)
	cmd.Stdin = strings.NewReader(c.Stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, so that a timeout kills the program's
	// children too (node --test runs each file in a child process).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err = cmd.Run()
	t.Logf("%s %s: %s", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("%s %s: killed after %s\n--- output ---\n%s", name, strings.Join(args, " "), timeout, out.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("%s %s: %v\n--- output ---\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// RequireFile fails the test when path does not exist, saying how to get it.
func RequireFile(t *testing.T, path, how string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is missing (%v); %s", path, err, how)
	}
}
