package stack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PGConfig describes the throwaway cluster.
type PGConfig struct {
	Bin       string // server binaries (initdb, postgres)
	Dir       string // the run's temp dir; the cluster lives in Dir/data
	Port      int
	MaxConn   int
	Password  string // of the superuser "postgres"
	HugePages bool   // huge_pages = on (the caller reserved them)
	NativeLib string // ext/multigres_context.so, or "" for none
	Owner     Owner
}

// Postgres is the running cluster.
type Postgres struct {
	Port    int
	Version string
	proc    *Proc
}

// The cluster is tuned like a benchmark box. fsync, synchronous_commit and
// full_page_writes are off: -S never writes, and the data is thrown away.
// shared_buffers holds every database the suites read (bench and its
// copies, about 190 MB each at scale 10): at 256MB the session suite's
// signed target, the only one on bench_signed, read its pages back from
// the OS page cache, which the other targets did not.
const pgConf = `
# bench/cmd/mgbench
dynamic_library_path = '%s'
huge_pages = %s
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = %d
password_encryption = 'scram-sha-256'
shared_buffers = 1GB
effective_cache_size = 2GB
work_mem = 8MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 2GB
checkpoint_timeout = 30min
autovacuum = off
log_min_messages = warning
log_connections = off
log_disconnections = off
ssl = off
`

const pgHBA = "local all all scram-sha-256\nhost  all all 127.0.0.1/32 scram-sha-256\n"

// StartPostgres runs initdb (SCRAM for every login) and starts the cluster.
func StartPostgres(cfg PGConfig) (*Postgres, error) {
	data := filepath.Join(cfg.Dir, "data")
	if err := initdb(cfg, data); err != nil {
		return nil, err
	}
	libpath, err := installLib(cfg)
	if err != nil {
		return nil, err
	}
	huge := "off"
	if cfg.HugePages {
		huge = "on"
	}
	conf := fmt.Sprintf(pgConf, libpath, huge, cfg.Port, cfg.Dir, cfg.MaxConn)
	if err := appendFile(filepath.Join(data, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(pgHBA), 0o600); err != nil {
		return nil, err
	}
	if err := cfg.Owner.Chown(filepath.Join(data, "pg_hba.conf")); err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(cfg.Bin, "postgres"), "-D", data)
	cfg.Owner.Apply(cmd)
	cmd.Env = ChildEnv()
	p, err := Start("PostgreSQL", cmd, filepath.Join(cfg.Dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	pg := &Postgres{Port: cfg.Port, proc: p}
	if err := pg.waitReady(cfg.Password); err != nil {
		p.Stop(syscall.SIGQUIT, 30*time.Second)
		return nil, err
	}
	out, _ := exec.Command(filepath.Join(cfg.Bin, "postgres"), "--version").Output()
	pg.Version = strings.TrimPrefix(strings.TrimSpace(string(out)), "postgres (PostgreSQL) ")
	return pg, nil
}

func initdb(cfg PGConfig, data string) error {
	pwfile := filepath.Join(cfg.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(cfg.Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	if err := cfg.Owner.Chown(pwfile); err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(cfg.Bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile="+pwfile,
		"--auth=scram-sha-256", "-E", "UTF8", "--locale=C")
	cfg.Owner.Apply(cmd)
	cmd.Env = ChildEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// installLib copies the native context reader where the server's OS user
// can load it, and returns the dynamic_library_path.
func installLib(cfg PGConfig) (string, error) {
	if cfg.NativeLib == "" {
		return "$libdir", nil
	}
	if _, err := os.Stat(cfg.NativeLib); err != nil {
		return "$libdir", nil
	}
	data, err := os.ReadFile(cfg.NativeLib)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cfg.Dir, "lib")
	dst := filepath.Join(dir, filepath.Base(cfg.NativeLib))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		return "", err
	}
	return "$libdir:" + dir, cfg.Owner.Chown(dir, dst)
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitReady polls until the server accepts the superuser (60 s at most).
func (pg *Postgres) waitReady(password string) error {
	url := fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", password, pg.Port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-pg.proc.Exited():
			return fmt.Errorf("PostgreSQL exited during startup:\n%s", pg.proc.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL not ready after 60 s: %v\n%s", err, pg.proc.Tail(30))
		}
	}
}

// Stop shuts the cluster down at once (immediate mode: the data is thrown
// away).
func (pg *Postgres) Stop() { pg.proc.Stop(syscall.SIGQUIT, 30*time.Second) }
