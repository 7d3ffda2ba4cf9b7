// Package pgtest starts a throwaway PostgreSQL cluster for tests.
//
// A package's TestMain calls Main, which runs initdb into a temporary
// directory with scram-sha-256 authentication, starts postgres on a free
// loopback port, runs the tests and removes everything afterwards, even when
// tests fail. Tests reach the cluster through Shared.
//
// Binaries are found through `pg_config --bindir`, PATH, or
// /usr/lib/postgresql/*/bin. When PGTEST_DATABASE_URL is set, no cluster is
// started and that server (which must accept the given superuser) is used.
//
// PostgreSQL refuses to run as root, so when the tests run as root the
// cluster runs as the "postgres" OS user (or "nobody").
//
// When the native context reader is built (scripts/build-native.sh), every
// cluster can load it: see NativeLibrary.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SuperUser and SuperPassword are the credentials of the cluster's bootstrap
// superuser. They match the seed guide's admin example.
const (
	SuperUser     = "postgres"
	SuperPassword = "postgres_password"
)

// Server is a running PostgreSQL cluster.
type Server struct {
	Host     string
	Port     int
	User     string
	Password string

	dir     string
	keep    bool // StartAt: leave the directory for next time
	cmd     *exec.Cmd
	done    chan error
	logPath string
	dbSeq   atomic.Int64
	stopped sync.Once
	halted  bool // Halt stopped the server; Restart starts it again
	// extraArgs and env are added to the postgres command line and
	// environment (Citus nodes, citus.go).
	extraArgs, env []string
}

var shared *Server

// Shared returns the cluster started by Main.
func Shared() *Server {
	if shared == nil {
		panic("pgtest: Shared called without pgtest.Main in TestMain")
	}
	return shared
}

// Main starts a cluster, runs the package's tests and stops the cluster. It
// never returns. setup, when non-nil, runs once before the tests.
func Main(m *testing.M, setup func(*Server) error) {
	os.Exit(run(m, setup))
}

func run(m *testing.M, setup func(*Server) error) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		return 1
	}
	defer s.Stop()
	shared = s
	if setup != nil {
		if err := setup(s); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest: setup:", err)
			return 1
		}
	}
	return m.Run()
}

// Start starts a new cluster, or attaches to PGTEST_DATABASE_URL.
func Start() (*Server, error) {
	if u := os.Getenv("PGTEST_DATABASE_URL"); u != "" {
		return attach(u)
	}
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := startCluster(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func attach(raw string) (*Server, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("PGTEST_DATABASE_URL: %w", err)
	}
	s := &Server{Host: cfg.Host, Port: int(cfg.Port), User: cfg.User, Password: cfg.Password}
	return s, s.installAudit()
}

// FindBinDir locates the PostgreSQL server binaries.
func FindBinDir() (string, error) {
	var candidates []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	globbed, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(globbed)))
	candidates = append(candidates, globbed...)
	for _, dir := range candidates {
		if isExec(filepath.Join(dir, "initdb")) && isExec(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found via pg_config, PATH or /usr/lib/postgresql/*/bin; " +
		"install them with `apt-get install postgresql` or set PGTEST_DATABASE_URL")
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func startCluster(bin string) (*Server, error) {
	return startClusterWith(bin, nil)
}

// startClusterWith is startCluster with prepare run between initdb and the
// first start (to add configuration).
func startClusterWith(bin string, prepare func(*Server) error) (*Server, error) {
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	s := &Server{Host: "127.0.0.1", User: SuperUser, Password: SuperPassword, dir: dir, done: make(chan error, 1)}
	if err := s.initdb(bin); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if prepare != nil {
		if err := prepare(s); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.Port = port
	if err := s.launch(bin); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.installAudit(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// StartAt starts a cluster kept in dir (created by initdb on first use,
// reused afterwards) on port. Stop leaves dir in place. multigres demo uses
// it for its ./.multigres-demo cluster.
func StartAt(dir string, port int) (*Server, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("cluster dir: %w", err)
	}
	s := &Server{Host: "127.0.0.1", Port: port, User: SuperUser, Password: SuperPassword, dir: abs, keep: true,
		done: make(chan error, 1)}
	if _, err := os.Stat(filepath.Join(abs, "data", "PG_VERSION")); err != nil {
		if err := s.initdb(bin); err != nil {
			return nil, err
		}
	} else if err := asPostgresUser(&exec.Cmd{}, abs); err != nil {
		return nil, err
	}
	if err := s.launch(bin); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) initdb(bin string) error {
	pwfile := filepath.Join(s.dir, "pw")
	if err := os.WriteFile(pwfile, []byte(SuperPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("write pwfile: %w", err)
	}
	data := filepath.Join(s.dir, "data")
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", SuperUser,
		"--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	if err := asPostgresUser(cmd, s.dir); err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

func (s *Server) launch(bin string) error {
	s.logPath = filepath.Join(s.dir, "postgres.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()
	args := []string{"-D", filepath.Join(s.dir, "data"),
		"-p", strconv.Itoa(s.Port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + s.dir, "-c", "fsync=off",
		"-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB",
		"-c", "max_prepared_transactions=10", "-c", "log_min_messages=warning"}
	libDir, err := s.installNativeLibrary()
	if err != nil {
		return err
	}
	if libDir != "" {
		args = append(args, "-c", "dynamic_library_path=$libdir:"+libDir)
	}
	args = append(args, s.extraArgs...)
	s.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := asPostgresUser(s.cmd, s.dir); err != nil {
		return err
	}
	if len(s.env) > 0 {
		if s.cmd.Env == nil {
			s.cmd.Env = os.Environ()
		}
		s.cmd.Env = append(s.cmd.Env, s.env...)
	}
	s.cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	return s.waitReady(30 * time.Second)
}

// NativeLibrary is the native context reader built by
// scripts/build-native.sh (ext/multigres_context.so in this source tree, or
// $MULTIGRES_NATIVE_LIB), or "" when there is none. Clusters started here
// can load it, so `multigres init --context-signing` installs the native
// reader in them (docs/operations.md, "Native context reader").
func NativeLibrary() string {
	if p := os.Getenv("MULTIGRES_NATIVE_LIB"); p != "" {
		return p
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	p := filepath.Join(filepath.Dir(file), "..", "..", "ext", "multigres_context.so")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// installNativeLibrary copies NativeLibrary into the cluster's directory
// (which the server's OS user owns; the source tree may not be readable to
// it) and returns that directory, or "" when there is no library.
func (s *Server) installNativeLibrary() (string, error) {
	src := NativeLibrary()
	if src == "" {
		return "", nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("native library: %w", err)
	}
	dir := filepath.Join(s.dir, "lib")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("native library: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), data, 0o755); err != nil {
		return "", fmt.Errorf("native library: %w", err)
	}
	return dir, nil
}

// waitReady polls until the server accepts a connection, the process exits,
// or the deadline passes.
func (s *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, s.URL(s.User, s.Password, "postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case werr := <-s.done:
			s.done <- werr
			log, _ := os.ReadFile(s.logPath)
			return fmt.Errorf("postgres exited during startup: %v\n%s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s: %w", limit, err)
		}
	}
}

// Stop shuts the cluster down (fast shutdown, then kill) and removes its
// directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopped.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil && !s.halted {
			_ = s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
		if s.dir != "" && !s.keep {
			os.RemoveAll(s.dir)
		}
	})
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL returns a connection URL for user on database db.
func (s *Server) URL(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: s.Addr(), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// SuperURL is the superuser's URL for database db.
func (s *Server) SuperURL(db string) string { return s.URL(s.User, s.Password, db) }

// Exec runs sql as the superuser on database db.
func (s *Server) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, s.SuperURL(db))
	if err != nil {
		return fmt.Errorf("connect %s: %w", db, err)
	}
	defer conn.Close(context.Background())
	if len(args) == 0 {
		_, err = conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	} else {
		_, err = conn.Exec(ctx, sql, args...)
	}
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

// CreateDB creates a fresh database for one test and drops it at cleanup,
// so tests can run in parallel without seeing each other's tables.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), s.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return name
}

// Connect opens a superuser connection to db, closed at cleanup.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.SuperURL(db))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) connectSuper(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.SuperURL("postgres"))
}

// asPostgresUser makes cmd (when non-nil) run as an unprivileged user when
// we are root, since postgres refuses to start as root, and hands dir to
// that user.
func asPostgresUser(cmd *exec.Cmd, dir string) error {
	if cmd == nil {
		cmd = &exec.Cmd{}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() != 0 {
		return nil
	}
	var u *user.User
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		if u, err = user.Lookup(name); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("running as root and no postgres/nobody user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		return fmt.Errorf("chown %s: %w", dir, err)
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	cmd.Env = append(os.Environ(), "HOME="+dir)
	return nil
}

// StateAuditSQL installs multigres_audit.session_state, which the proxy
// calls after each transaction-mode release with state_audit on
// (internal/frontend/txaudit.go); every cluster pgtest starts has it in
// template1, so every test database does. It must be SECURITY DEFINER:
// hardening revokes the functions behind pg_prepared_statements and
// pg_cursors from tenant roles. It reports only its caller's own session.
// Test databases only: on a shared connection it would show a tenant the
// statements of the tenants before. Tests that check their own session's
// statements or cursors (hidden from tenants by hardening) read them here.
const StateAuditSQL = `
CREATE SCHEMA IF NOT EXISTS multigres_audit;
GRANT USAGE ON SCHEMA multigres_audit TO PUBLIC;
CREATE OR REPLACE FUNCTION multigres_audit.session_state(names text[], vals text[])
RETURNS TABLE(kind text, name text, detail text)
LANGUAGE plpgsql SECURITY DEFINER
AS $$
DECLARE
    i int;
    canon text;
BEGIN
    -- A reset and a local set of one setting in one transaction leave it
    -- marked as set by the session, at its default value: 'default' rows
    -- say the value is the one RESET gives.
    RETURN QUERY SELECT CASE WHEN s.setting IS NOT DISTINCT FROM s.reset_val THEN 'default' ELSE 'setting' END,
        s.name::text, pg_catalog.current_setting(s.name)
        FROM pg_catalog.pg_settings s WHERE s.source = 'session';
    RETURN QUERY SELECT 'prepared'::text, p.name::text, p.statement FROM pg_catalog.pg_prepared_statements p;
    RETURN QUERY SELECT 'cursor'::text, c.name::text, c.statement FROM pg_catalog.pg_cursors c;
    RETURN QUERY SELECT 'lock'::text, l.classid::text || ':' || l.objid::text || ':' || l.objsubid::text, l.mode
        FROM pg_catalog.pg_locks l WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'advisory';
    RETURN QUERY SELECT 'listen'::text, ch::text, NULL::text FROM pg_catalog.pg_listening_channels() ch;
    RETURN QUERY SELECT 'report'::text, n, pg_catalog.current_setting(n, true)
        FROM pg_catalog.unnest(ARRAY['application_name', 'client_encoding', 'DateStyle', 'IntervalStyle',
            'TimeZone', 'standard_conforming_strings', 'integer_datetimes', 'is_superuser', 'server_encoding',
            'server_version', 'session_authorization', 'default_transaction_read_only', 'in_hot_standby']) n;
    FOR i IN 1 .. coalesce(pg_catalog.array_length(names, 1), 0) LOOP
        canon := NULL;
        BEGIN
            -- Local to a subtransaction that is rolled back: only the
            -- canonical spelling of the model's value (or of the default,
            -- for 'multigres:default') is kept.
            canon := pg_catalog.set_config(names[i], NULLIF(vals[i], 'multigres:default'), true);
            RAISE EXCEPTION 'undo';
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
        kind := 'canon'; name := names[i]; detail := canon;
        RETURN NEXT;
    END LOOP;
END
$$;
GRANT EXECUTE ON FUNCTION multigres_audit.session_state(text[], text[]) TO PUBLIC;
`

// installAudit puts StateAuditSQL in template1 (so every database created
// later has it) and in postgres.
func (s *Server) installAudit() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, db := range []string{"template1", "postgres"} {
		if err := s.Exec(ctx, db, StateAuditSQL); err != nil {
			return fmt.Errorf("install the state audit in %s: %w", db, err)
		}
	}
	return nil
}

// Restart stops the server and starts it again on the same port and data:
// a fast shutdown (SIGINT, as pg_ctl restart -m fast), or with crash an
// immediate one (SIGQUIT: backends die without a clean exit, and the
// server recovers at start). Clusters started by Start or StartAt only.
func (s *Server) Restart(crash bool) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("restart: not a cluster started here")
	}
	sig := syscall.SIGINT
	if crash {
		sig = syscall.SIGQUIT
	}
	if !s.halted {
		if err := s.cmd.Process.Signal(sig); err != nil {
			return fmt.Errorf("restart: signal: %w", err)
		}
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			return errors.New("restart: the server did not stop within 30 s")
		}
	}
	s.halted = false
	bin, err := FindBinDir()
	if err != nil {
		return err
	}
	return s.launch(bin)
}

// Signal sends sig to the postmaster (SIGSTOP and SIGCONT make a server
// that accepts nothing new while its backends go on). Clusters started by
// Start or StartAt only.
func (s *Server) Signal(sig os.Signal) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("signal: not a cluster started here")
	}
	return s.cmd.Process.Signal(sig)
}

// Halt stops the server (fast shutdown) without removing its data, so
// that Restart can start it again.
func (s *Server) Halt() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return errors.New("halt: not a cluster started here")
	}
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return err
	}
	select {
	case <-s.done:
		s.halted = true
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("halt: the server did not stop within 30 s")
	}
}
