package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
)

// Config holds every knob of a run. Each flag falls back to an environment
// variable (BENCH_*, MULTIGRES_BIN, MULTIGRES_NATIVE_LIB), and a flag given on the command
// line wins over both.
type Config struct {
	Suites        string
	Rounds        int
	Seconds       int
	Ramp          int
	Scale         int
	Clients       int
	Threads       int
	TxClients     int
	PoolSize      int
	TxPoolMode    string
	MgTxFlags     string
	SwitchConns   int
	SwitchTenants int
	SwitchModes   string
	IdleConns     int
	CitusClients  int
	HugePages     bool
	KeepLogs      bool
	Multigres     string
	NativeLib     string
	Baseline      string
	Out           string
	Quick         bool

	Root       string   // the source tree
	suiteList  []string // Suites, expanded and checked
	switchList []string
}

// quickValues are -quick's settings of the knobs not set by flag or
// environment: one round of 3 s per run (+2 s ramp), 200 switching and
// 1,000 idle connections.
var quickValues = map[string]int{"rounds": 1, "seconds": 3, "ramp": 2, "switch-conns": 200, "idle-conns": 1000}

// knobs registers flags whose defaults come from the environment.
type knobs struct {
	fs      *flag.FlagSet
	getenv  func(string) (string, bool)
	fromEnv map[string]bool
	errs    []error
}

func (k *knobs) env(name, env string) (string, bool) {
	v, ok := k.getenv(env)
	if ok {
		k.fromEnv[name] = true
	}
	return v, ok
}

func (k *knobs) intVar(p *int, name, env string, def int, usage string) {
	if v, ok := k.env(name, env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			k.errs = append(k.errs, fmt.Errorf("%s=%q: not a number", env, v))
		}
		def = n
	}
	k.fs.IntVar(p, name, def, usage+" (env "+env+")")
}

func (k *knobs) stringVar(p *string, name, env, def, usage string) {
	if v, ok := k.env(name, env); ok {
		def = v
	}
	k.fs.StringVar(p, name, def, usage+" (env "+env+")")
}

func (k *knobs) boolVar(p *bool, name, env string, def bool, usage string) {
	if v, ok := k.env(name, env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			k.errs = append(k.errs, fmt.Errorf("%s=%q: not 1/0/true/false", env, v))
		}
		def = b
	}
	k.fs.BoolVar(p, name, def, usage+" (env "+env+")")
}

func (c *Config) register(k *knobs) {
	k.stringVar(&c.Suites, "suites", "BENCH_SUITES", "transaction switching memory",
		`suites to run, space or comma separated: transaction, switching, memory, session, citus; "all" is the first four `+
			`(citus needs Citus installed: make bench-citus)`)
	k.intVar(&c.Rounds, "rounds", "BENCH_ROUNDS", 3, "interleaved rounds; every round runs every test against each of its targets")
	k.intVar(&c.Seconds, "seconds", "BENCH_SECONDS", 10, "pgbench -T and tenantload -duration of each run, in seconds")
	k.intVar(&c.Ramp, "ramp", "BENCH_RAMP", 3,
		"extra -T seconds of the transaction suite's pgbench runs (their TPS is taken over the seconds in which every process ran)")
	k.intVar(&c.Scale, "scale", "BENCH_SCALE", 10, "pgbench -i -s")
	k.intVar(&c.Clients, "clients", "BENCH_CLIENTS", 16, "session suite: pgbench -c")
	k.intVar(&c.Threads, "threads", "BENCH_THREADS", 2, "pgbench -j of the single-pgbench targets")
	k.intVar(&c.TxClients, "tx-clients", "BENCH_TX_CLIENTS", 64,
		"transaction suite: clients (= pgbench processes); switching suite: transactions in flight")
	k.intVar(&c.PoolSize, "pool-size", "BENCH_POOL_SIZE", 8, "default_pool_size of multigres and PgBouncer in transaction mode")
	k.stringVar(&c.TxPoolMode, "tx-pool-mode", "BENCH_TX_POOL_MODE", "transaction",
		`pool mode of the "multigres tx" instances (session only to test the harness)`)
	k.stringVar(&c.MgTxFlags, "mg-tx-flags", "BENCH_MG_TX_FLAGS", "",
		`extra "multigres serve" flags of the transaction-mode instances, space separated (e.g. --workers=1)`)
	k.intVar(&c.SwitchConns, "switch-conns", "BENCH_SWITCH_CONNS", 1000, "switching suite: client connections")
	k.intVar(&c.SwitchTenants, "switch-tenants", "BENCH_SWITCH_TENANTS", 1000,
		"switching suite: tenants rotating (at most -switch-conns)")
	k.stringVar(&c.SwitchModes, "switch-modes", "BENCH_SWITCH_MODES", "simple extended",
		"switching suite: protocols (simple, extended, prepared)")
	k.intVar(&c.IdleConns, "idle-conns", "BENCH_IDLE_CONNS", 10000, "memory suite: idle client connections")
	k.intVar(&c.CitusClients, "citus-clients", "BENCH_CITUS_CLIENTS", 4, "citus suite: pgbench -c")
	k.boolVar(&c.HugePages, "huge-pages", "BENCH_HUGE_PAGES", true,
		"reserve huge pages for shared_buffers when possible (root); the previous reservation is restored at the end")
	k.boolVar(&c.KeepLogs, "keep-logs", "BENCH_KEEP_LOGS", false, "keep the temp dir's logs (pgbench, PgBouncer, multigres)")
	k.stringVar(&c.Multigres, "multigres", "MULTIGRES_BIN", "bin/multigres", "the multigres binary under test (make build)")
	k.stringVar(&c.NativeLib, "native-lib", "MULTIGRES_NATIVE_LIB", "ext/multigres_context.so",
		"native context reader the cluster may load (make native); missing: the PL/pgSQL reader")
	k.stringVar(&c.Baseline, "baseline", "BENCH_BASELINE", "",
		"also build multigres at this git revision and run it side by side with the current build (e.g. HEAD~1)")
	k.stringVar(&c.Out, "out", "BENCH_RESULTS", "bench/results", "directory of the results files")
	k.fs.BoolVar(&c.Quick, "quick", false,
		"smoke test: 1 round of 3 s (+2 s ramp), 200 switching and 1,000 idle connections, unless set otherwise; "+
			"the results file is marked quick and named *-quick.json")
}

// parseConfig reads args (after the subcommand) and the environment.
func parseConfig(args []string, getenv func(string) (string, bool), root string) (*Config, error) {
	c := &Config{Root: root}
	k := &knobs{fs: flag.NewFlagSet("mgbench run", flag.ContinueOnError), getenv: getenv, fromEnv: map[string]bool{}}
	k.fs.Usage = func() { usage(k.fs) }
	c.register(k)
	if err := k.fs.Parse(args); err != nil {
		return nil, err
	}
	if k.fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", k.fs.Arg(0))
	}
	if len(k.errs) > 0 {
		return nil, errors.Join(k.errs...)
	}
	if c.Quick {
		c.applyQuick(k)
	}
	return c, c.check()
}

func (c *Config) applyQuick(k *knobs) {
	set := map[string]bool{}
	k.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, v := range quickValues {
		if !set[name] && !k.fromEnv[name] {
			_ = k.fs.Set(name, strconv.Itoa(v))
		}
	}
}

func (c *Config) check() error {
	c.suiteList = strings.Fields(strings.ReplaceAll(c.Suites, ",", " "))
	if len(c.suiteList) == 1 && c.suiteList[0] == "all" {
		c.suiteList = append([]string(nil), results.AllSuites...)
	}
	for _, s := range c.suiteList {
		if !contains(results.SuiteOrder, s) {
			return fmt.Errorf("unknown suite %q", s)
		}
	}
	c.switchList = strings.Fields(c.SwitchModes)
	for _, m := range c.switchList {
		if !contains([]string{"simple", "extended", "prepared"}, m) {
			return fmt.Errorf("unknown switching mode %q", m)
		}
	}
	switch {
	case len(c.suiteList) == 0:
		return errors.New("no suites")
	case c.Rounds < 1 || c.Seconds < 1 || c.Ramp < 0 || c.Scale < 1:
		return errors.New("-rounds, -seconds and -scale must be at least 1, -ramp at least 0")
	case c.Clients < 1 || c.Threads < 1 || c.TxClients < 1 || c.PoolSize < 1 || c.SwitchConns < 1 || c.IdleConns < 1 || c.CitusClients < 1:
		return errors.New("client, thread, pool and connection counts must be at least 1")
	case c.TxPoolMode != "transaction" && c.TxPoolMode != "session":
		return fmt.Errorf("-tx-pool-mode %q: transaction or session", c.TxPoolMode)
	case c.SwitchConns < c.TxClients && contains(c.suiteList, results.SuiteSwitching):
		return errors.New("-switch-conns must be at least -tx-clients (each worker owns connections)")
	}
	// Connection k is tenant k mod tenants + 1: no more tenants than
	// connections.
	c.SwitchTenants = max(1, min(c.SwitchTenants, c.SwitchConns))
	c.Multigres = c.abs(c.Multigres)
	c.NativeLib = c.abs(c.NativeLib)
	c.Out = c.abs(c.Out)
	return nil
}

func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Root, p)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// planOptions are the knobs that shape the plan.
func (c *Config) planOptions() plan.Options {
	return plan.Options{Suites: c.suiteList, Seconds: c.Seconds, Ramp: c.Ramp, Scale: c.Scale, Clients: c.Clients, Threads: c.Threads, TxClients: c.TxClients,
		PoolSize: c.PoolSize, TxPoolMode: c.TxPoolMode, MgTxFlags: c.MgTxFlags, SwitchConns: c.SwitchConns,
		SwitchTenants: c.SwitchTenants, SwitchModes: c.switchList, IdleConns: c.IdleConns, CitusClients: c.CitusClients,
		Baseline: c.Baseline != ""}
}

// settings are the knobs as a results file records them.
func (c *Config) settings() results.Settings {
	return results.Settings{Suites: c.suiteList, Rounds: c.Rounds, Seconds: c.Seconds, Ramp: c.Ramp, Scale: c.Scale,
		Clients: c.Clients, Threads: c.Threads, TxClients: c.TxClients, PoolSize: c.PoolSize, TxPoolMode: c.TxPoolMode,
		MgTxFlags: c.MgTxFlags, SwitchConns: c.SwitchConns, SwitchTenants: c.SwitchTenants, SwitchModes: c.switchList,
		IdleConns: c.IdleConns, CitusClients: c.citusClients()}
}

// citusClients is -citus-clients when the citus suite runs (a results file
// records only the knobs its suites used), else 0.
func (c *Config) citusClients() int {
	if c.has(results.SuiteCitus) {
		return c.CitusClients
	}
	return 0
}

func (c *Config) has(suite string) bool { return contains(c.suiteList, suite) }

// plainStack reports whether a suite besides citus runs: those share one
// throwaway PostgreSQL cluster (and PgBouncer), which a citus-only run
// does not start.
func (c *Config) plainStack() bool {
	for _, s := range c.suiteList {
		if s != results.SuiteCitus {
			return true
		}
	}
	return false
}

// findRoot is the source tree: the nearest directory upwards with this
// module's go.mod.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/multigres-proxy/multigres\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run mgbench inside the multigres source tree")
		}
		dir = parent
	}
}
