// Package stack starts and stops the servers a benchmark run measures: a
// throwaway PostgreSQL cluster, PgBouncer and multigres instances, each on
// a free 127.0.0.1 port, and reserves huge pages for PostgreSQL's shared
// buffers when it can. PostgreSQL and PgBouncer refuse to run as root: as
// root they run as the postgres OS user (Owner).
//
// Every child gets SIGKILL when the harness dies (Pdeathsig), and Stop
// ends it by its own process id.
package stack

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// Owner is the OS user that runs PostgreSQL and PgBouncer: the postgres
// user when the harness runs as root, else the harness's own user.
type Owner struct {
	uid, gid uint32
	switchTo bool
}

// FindOwner returns the owner for this process.
func FindOwner() (Owner, error) {
	if os.Geteuid() != 0 {
		return Owner{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return Owner{}, errors.New("running as root needs the postgres OS user (PostgreSQL refuses to run as root)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return Owner{uid: uint32(uid), gid: uint32(gid), switchTo: true}, nil
}

// Chown gives the paths to the owner (a no-op unless running as root).
func (o Owner) Chown(paths ...string) error {
	if !o.switchTo {
		return nil
	}
	for _, p := range paths {
		if err := os.Lchown(p, int(o.uid), int(o.gid)); err != nil {
			return err
		}
	}
	return nil
}

// Apply makes cmd run as the owner.
func (o Owner) Apply(cmd *exec.Cmd) {
	ensureAttr(cmd)
	if o.switchTo {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: o.uid, Gid: o.gid}
	}
}

func ensureAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// ChildEnv is the environment of every child: no PG* connection defaults
// from the caller's environment, plaintext without GSS (the same TCP path
// for every target, so the comparison is about the proxies, not about
// encryption), and none of the harness's own MULTIGRES_* settings
// (multigres reads MULTIGRES_* as configuration and refuses unknown ones).
func ChildEnv(extra ...string) []string {
	drop := map[string]bool{"PGOPTIONS": true, "PGSERVICE": true, "PGHOST": true, "PGPORT": true, "PGUSER": true,
		"PGDATABASE": true, "PGPASSFILE": true, "PGPASSWORD": true, "PGSSLMODE": true, "PGGSSENCMODE": true,
		"PGCONNECT_TIMEOUT": true, "MULTIGRES_BIN": true, "MULTIGRES_NATIVE_LIB": true}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	env = append(env, "PGSSLMODE=disable", "PGGSSENCMODE=disable", "PGCONNECT_TIMEOUT=10")
	return append(env, extra...)
}

var (
	portsMu sync.Mutex
	used    = map[int]bool{}
)

// FreePort returns an unused TCP port on 127.0.0.1 below the ephemeral
// range (so that no client connection can be holding it by the time a
// server binds it), different from every port handed out before.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for i := 0; i < 500; i++ {
		p := 20000 + rand.IntN(12000)
		if used[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		used[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found")
}

// Proc is a running child process.
type Proc struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	stopped sync.Once
}

// Start starts cmd, its output going to logPath, with Pdeathsig set.
func Start(name string, cmd *exec.Cmd, logPath string) (*Proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	ensureAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Stop sends sig, waits up to limit, then kills. Safe to call twice.
func (p *Proc) Stop(sig syscall.Signal, limit time.Duration) {
	p.stopped.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(limit):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// Tail is the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitPort waits (up to 30 s) until something accepts TCP connections on
// 127.0.0.1:port, failing early if p exits.
func (p *Proc) WaitPort(port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", p.Name, p.err, addr, p.Tail(20))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not listen on %s within 30 s:\n%s", p.Name, addr, p.Tail(20))
}

// FindPgBin locates PostgreSQL's server binaries the way the rest of the
// tree does (internal/pgtest): pg_config --bindir, PATH, then the newest
// /usr/lib/postgresql/*/bin.
func FindPgBin() (bin, pgbench string, err error) {
	bin, err = pgtest.FindBinDir()
	if err != nil {
		return "", "", err
	}
	pgbench = filepath.Join(bin, "pgbench")
	if _, err := os.Stat(pgbench); err != nil {
		if pgbench, err = exec.LookPath("pgbench"); err != nil {
			return "", "", errors.New("pgbench not found; run scripts/ensure-deps.sh postgres")
		}
	}
	return bin, pgbench, nil
}

// Command is a load generator's command: the child environment plus env,
// killed when ctx ends or the harness dies.
func Command(ctx context.Context, bin string, args []string, env ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = ChildEnv(env...)
	ensureAttr(cmd)
	return cmd
}
