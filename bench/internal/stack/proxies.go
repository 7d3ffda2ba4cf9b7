package stack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PgBouncerConfig describes one PgBouncer instance.
type PgBouncerConfig struct {
	Bin           string
	Dir           string // the run's temp dir
	Name          string
	Mode          string // pool_mode
	Pool          int    // default_pool_size
	MaxClientConn int
	PGPort        int
	DBs           []string
	// Verifier is app_user's SCRAM verifier from pg_authid: PgBouncer
	// authenticates clients with it and logs in upstream with SCRAM
	// passthrough, like multigres.
	Verifier string
	Owner    Owner
}

// Server is a running proxy.
type Server struct {
	Name string
	Port int
	*Proc
}

// Stop ends the proxy (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() { s.Proc.Stop(syscall.SIGTERM, 10*time.Second) }

const pgbIni = `[databases]
%s
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = %d
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
server_tls_sslmode = disable
client_tls_sslmode = disable
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
`

// StartPgBouncer writes the instance's ini and userlist and starts it in
// the foreground, as the owner.
func StartPgBouncer(cfg PgBouncerConfig) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	users := filepath.Join(cfg.Dir, "userlist-"+cfg.Name+".txt")
	ini := filepath.Join(cfg.Dir, "pgbouncer-"+cfg.Name+".ini")
	var dbs strings.Builder
	for _, db := range cfg.DBs {
		fmt.Fprintf(&dbs, "%s = host=127.0.0.1 port=%d dbname=%s\n", db, cfg.PGPort, db)
	}
	text := fmt.Sprintf(pgbIni, dbs.String(), port, users, cfg.Mode, cfg.Pool, cfg.MaxClientConn)
	if err := writeOwned(cfg.Owner, users, fmt.Sprintf("\"app_user\" \"%s\"\n", cfg.Verifier)); err != nil {
		return nil, err
	}
	if err := writeOwned(cfg.Owner, ini, text); err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Bin, ini) // its log goes to stderr, the log file
	cfg.Owner.Apply(cmd)
	cmd.Env = ChildEnv()
	return startListening("PgBouncer", cfg.Name, cfg.Dir, port, cmd)
}

// startListening starts cmd as what[name], logging to DIR/what-name.log,
// and waits until it listens on port.
func startListening(what, name, dir string, port int, cmd *exec.Cmd) (*Server, error) {
	p, err := Start(what+"["+name+"]", cmd, filepath.Join(dir, strings.ToLower(what)+"-"+name+".log"))
	if err != nil {
		return nil, err
	}
	s := &Server{Name: name, Port: port, Proc: p}
	if err := p.WaitPort(port); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func writeOwned(o Owner, path, text string) error {
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return err
	}
	return o.Chown(path)
}

// MultigresConfig describes one multigres instance.
type MultigresConfig struct {
	Bin          string
	Dir          string
	Name         string
	PGPort       int
	AuthPassword string
	// Flags are extra `multigres serve` flags. Boolean flags take a value
	// only with "=" (--guard=off).
	Flags []string
}

// StartMultigres starts `multigres serve` on a free port.
func StartMultigres(cfg MultigresConfig) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--listen-host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--upstream-host", "127.0.0.1", "--upstream-port", strconv.Itoa(cfg.PGPort),
		"--auth-password", cfg.AuthPassword, "--server-tls-mode", "disable", "--client-tls-mode", "disable",
		"--log-level", "warn"}
	cmd := exec.Command(cfg.Bin, append(args, cfg.Flags...)...)
	cmd.Env = ChildEnv()
	return startListening("multigres", cfg.Name, cfg.Dir, port, cmd)
}

// PgBouncerVersion is `pgbouncer --version`'s number.
func PgBouncerVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").Output()
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimPrefix(strings.TrimSpace(first), "PgBouncer ")
}

// FindPgBouncer returns the pgbouncer binary.
func FindPgBouncer() (string, error) {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", fmt.Errorf("pgbouncer not found; run scripts/ensure-deps.sh pgbouncer")
}
