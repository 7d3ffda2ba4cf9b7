package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A Citus cluster for tests: a coordinator and two workers, each a
// throwaway cluster started with shared_preload_libraries = 'citus' on
// 127.0.0.1. How the nodes authenticate each other (docs/scaling.md,
// "Citus"): the workers trust connections from 127.0.0.1 for every role
// (pg_hba.conf), which is how the coordinator's Citus connects to them
// as the tenant role of the transaction; the coordinator keeps
// scram-sha-256 for clients, and its own loopback connections find the
// superuser's password in a .pgpass file (PGPASSFILE in the server's
// environment). A production cluster uses certificates or passwords
// (citus.node_conninfo, pg_dist_authinfo or .pgpass) instead of trust.

// CitusInstallHint says how to get Citus (part of CitusMissing's message
// when it is not installed).
const CitusInstallHint = "install it with ../shared/citus/install.sh (as root; `make test` runs it when that file exists), or see docs/scaling.md"

// CitusMissing says why a Citus cluster cannot start here ("" when it
// can): Citus' library or extension files are missing for the server
// binaries pgtest would use (the message says how to install them), or
// PGTEST_DATABASE_URL points the tests at a server of their own.
func CitusMissing() string {
	if os.Getenv("PGTEST_DATABASE_URL") != "" {
		return "PGTEST_DATABASE_URL is set: tests use that server, which is not a Citus cluster"
	}
	bin, err := FindBinDir()
	if err != nil {
		return err.Error()
	}
	libs := []string{filepath.Join(bin, "..", "lib")}
	shares := []string{}
	if out, err := exec.Command(filepath.Join(bin, "pg_config"), "--pkglibdir", "--sharedir").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) == 2 {
			libs = append(libs, f[0])
			shares = append(shares, f[1])
		}
	}
	if out, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			major, _, _ := strings.Cut(f[len(f)-1], ".")
			shares = append(shares, "/usr/share/postgresql/"+major)
		}
	}
	if !anyExists(libs, "citus.so") || !anyExists(shares, filepath.Join("extension", "citus.control")) {
		return "Citus is not installed for the PostgreSQL server in " + bin + ": " + CitusInstallHint
	}
	return ""
}

func anyExists(dirs []string, name string) bool {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return true
		}
	}
	return false
}

// Citus is a running Citus cluster.
type Citus struct {
	Coordinator *Server
	Workers     []*Server
}

// citusArgs are the settings of every node: Citus preloaded, room for the
// two-phase commits of concurrent tests, logical WAL for shard moves and
// splits, and few shards per table so that tests create tables quickly.
var citusArgs = []string{"-c", "shared_preload_libraries=citus", "-c", "max_prepared_transactions=200",
	"-c", "wal_level=logical", "-c", "citus.shard_count=4", "-c", "max_worker_processes=32"}

// StartCitus starts a coordinator and two workers.
func StartCitus() (*Citus, error) { return StartCitusWith() }

// StartCitusWith is StartCitus with more server settings ("name=value",
// after the usual ones, so they win) on every node: bench/cmd/mgbench
// gives the nodes the shared buffers its data set needs.
func StartCitusWith(settings ...string) (*Citus, error) {
	if why := CitusMissing(); why != "" {
		return nil, errors.New(why)
	}
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	args := append([]string(nil), citusArgs...)
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	c := &Citus{}
	node := func(worker bool) (*Server, error) {
		return startClusterWith(bin, func(s *Server) error {
			s.extraArgs = args
			pgpass := filepath.Join(s.dir, "pgpass")
			if err := os.WriteFile(pgpass, []byte("*:*:*:"+SuperUser+":"+SuperPassword+"\n"), 0o600); err != nil {
				return fmt.Errorf("pgpass: %w", err)
			}
			s.env = []string{"PGPASSFILE=" + pgpass}
			if worker {
				if err := trustLoopback(s); err != nil {
					return err
				}
			}
			return asPostgresUser(nil, s.dir) // the files written here
		})
	}
	if c.Coordinator, err = node(false); err != nil {
		return nil, fmt.Errorf("citus coordinator: %w", err)
	}
	for range 2 {
		w, err := node(true)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("citus worker: %w", err)
		}
		c.Workers = append(c.Workers, w)
	}
	return c, nil
}

// trustLoopback puts a trust line for 127.0.0.1 first in the node's
// pg_hba.conf (the worker side of Citus' connections; see above).
func trustLoopback(s *Server) error {
	path := filepath.Join(s.dir, "data", "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pg_hba.conf: %w", err)
	}
	lines := "# Citus: the coordinator connects as the role of each transaction.\nhost all all 127.0.0.1/32 trust\n"
	if err := os.WriteFile(path, append([]byte(lines), old...), 0o600); err != nil {
		return fmt.Errorf("pg_hba.conf: %w", err)
	}
	return nil
}

// Stop stops every node.
func (c *Citus) Stop() {
	if c.Coordinator != nil {
		c.Coordinator.Stop()
	}
	for _, w := range c.Workers {
		w.Stop()
	}
}

// Nodes are the coordinator and the workers.
func (c *Citus) Nodes() []*Server { return append([]*Server{c.Coordinator}, c.Workers...) }

// CreateDB creates a fresh database on every node, with the citus
// extension, the coordinator and the workers registered in the
// coordinator's metadata; it is dropped at cleanup.
func (c *Citus) CreateDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("c_%d_%d", os.Getpid(), c.Coordinator.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.createDB(ctx, name); err != nil {
		t.Fatalf("pgtest: citus database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for _, s := range c.Nodes() {
			_ = s.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
	})
	return name
}

// CreateDatabase is CreateDB for a program rather than a test: the
// database stays until the cluster stops.
func (c *Citus) CreateDatabase(ctx context.Context, name string) error { return c.createDB(ctx, name) }

func (c *Citus) createDB(ctx context.Context, name string) error {
	for _, s := range c.Nodes() {
		if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+name); err != nil {
			return err
		}
		if err := s.Exec(ctx, name, "CREATE EXTENSION citus"); err != nil {
			return err
		}
	}
	reg := fmt.Sprintf("SELECT citus_set_coordinator_host('127.0.0.1', %d);", c.Coordinator.Port)
	for _, w := range c.Workers {
		reg += fmt.Sprintf("SELECT citus_add_node('127.0.0.1', %d);", w.Port)
	}
	return c.Coordinator.Exec(ctx, name, reg)
}

// The cluster started by MainCitus.
var (
	citusOnce    sync.Mutex
	sharedCitus  *Citus
	citusSkipped string
)

// MainCitus runs a package's tests with a Citus cluster (SharedCitus)
// beside the plain one (Shared), and stops both afterwards. When Citus
// is not installed the tests run without it and SharedCitus skips them,
// saying how to get it.
func MainCitus(m *testing.M) {
	os.Exit(runCitus(m))
}

func runCitus(m *testing.M) int {
	if why := CitusMissing(); why != "" {
		citusSkipped = why
	} else {
		c, err := StartCitus()
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			return 1
		}
		defer c.Stop()
		sharedCitus = c
	}
	return m.Run()
}

// SharedCitus returns the cluster MainCitus started, or skips the test
// when Citus is not installed.
func SharedCitus(t testing.TB) *Citus {
	t.Helper()
	citusOnce.Lock()
	defer citusOnce.Unlock()
	if sharedCitus == nil {
		if citusSkipped == "" {
			t.Fatal("pgtest: SharedCitus called without pgtest.MainCitus in TestMain")
		}
		t.Skip(citusSkipped)
	}
	return sharedCitus
}
