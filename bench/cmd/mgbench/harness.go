package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
	"github.com/multigres-proxy/multigres/bench/internal/stack"
	"golang.org/x/sys/unix"
)

// Throwaway credentials: every server listens on 127.0.0.1 only and is
// destroyed at the end of the run.
const (
	superPassword = "bench_super_password"
	appPassword   = "bench_app_password"
	authPassword  = "bench_auth_password"
)

// Harness is one run: its temp dir, its servers and what it measured.
type Harness struct {
	cfg   *Config
	plans []plan.Suite
	tmp   string
	owner stack.Owner

	pgBin, pgbench, pgbouncer string
	tenantload, idleconns     string
	baselineBin               string
	baseline                  *results.Baseline

	huge    *stack.HugePages
	pg      *stack.Postgres
	servers map[string]*stack.Server // by plan instance
	extra   []*stack.Server          // memory suite instances
	reader  string                   // context reader in force on the signed database
	citus   *citusStack              // the citus suite's servers (citus.go)

	suites []results.Suite
	errors []string
}

func newHarness(cfg *Config) *Harness {
	return &Harness{cfg: cfg, plans: plan.Build(cfg.planOptions()), servers: map[string]*stack.Server{}}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// run measures everything and returns the run's results (not yet saved).
func (h *Harness) run(ctx context.Context) (*results.Run, error) {
	if err := h.prepare(); err != nil {
		return nil, err
	}
	loadBefore := loadAvg()
	if err := h.startAll(ctx); err != nil {
		return nil, err
	}
	logf("fsync=off, synchronous_commit=off, full_page_writes=off (throwaway cluster)")
	if err := h.rounds(ctx); err != nil {
		return nil, err
	}
	if h.cfg.has(results.SuiteMemory) {
		if err := h.memory(ctx); err != nil {
			return nil, err
		}
	}
	h.printLogTails()
	return h.result(loadBefore, loadAvg()), nil
}

// printLogTails shows the end of each multigres log when a run failed:
// the proxy's side of the failure.
func (h *Harness) printLogTails() {
	if len(h.errors) == 0 {
		return
	}
	all := append(h.extra, mapValues(h.servers)...)
	if h.citus != nil {
		all = append(all, mapValues(h.citus.servers)...)
	}
	for _, s := range all {
		if tail := s.Tail(20); tail != "" && strings.HasPrefix(s.Proc.Name, "multigres") {
			fmt.Fprintf(os.Stderr, "%s log (last 20 lines):\n%s\n", s.Proc.Name, tail)
		}
	}
}

func mapValues(m map[string]*stack.Server) []*stack.Server {
	var out []*stack.Server
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// prepare finds the tools, raises the open-file limit, makes the temp dir
// and builds the load generators and the baseline.
func (h *Harness) prepare() error {
	var err error
	if h.owner, err = stack.FindOwner(); err != nil {
		return err
	}
	if h.cfg.has(results.SuiteCitus) {
		if err := citusMissing(); err != nil {
			return err
		}
	}
	if h.pgBin, h.pgbench, err = stack.FindPgBin(); err != nil {
		return err
	}
	if h.cfg.plainStack() {
		if h.pgbouncer, err = stack.FindPgBouncer(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(h.cfg.Multigres); err != nil {
		return fmt.Errorf("%s not found; run make build", h.cfg.Multigres)
	}
	if err := h.raiseFileLimit(); err != nil {
		return err
	}
	if h.tmp, err = os.MkdirTemp("", "multigres-bench."); err != nil {
		return err
	}
	if err := os.Chmod(h.tmp, 0o700); err != nil {
		return err
	}
	if err := h.owner.Chown(h.tmp); err != nil {
		return err
	}
	if err := h.buildTools(); err != nil {
		return err
	}
	return h.writeScripts()
}

// raiseFileLimit: thousands of client connections need a file descriptor
// each in the proxy, PgBouncer and the load generators (root may raise the
// hard limit). Children inherit it.
func (h *Harness) raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	want := lim
	want.Cur = max(lim.Cur, 65536)
	want.Max = max(lim.Max, want.Cur)
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		want = lim
		want.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want)
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if !h.cfg.has(results.SuiteMemory) {
		return nil
	}
	// multigres admits (limit - 256) / 2 clients (a server descriptor per
	// client may be needed); where the hard limit is lower than that
	// needs (a container), the suite measures as many as fit.
	if fit := (int(lim.Cur)-proxyFDReserve)/2 - 16; h.cfg.IdleConns > fit {
		if fit < 1000 {
			return fmt.Errorf("the open-file limit is %d: the memory suite needs about %d (run as root or lower -idle-conns)", lim.Cur, 2*h.cfg.IdleConns+proxyFDReserve)
		}
		logf("open-file limit %d: the memory suite opens %d idle connections, not %d", lim.Cur, fit, h.cfg.IdleConns)
		h.cfg.IdleConns = fit
	}
	return nil
}

// proxyFDReserve is the descriptors multigres keeps for itself before it
// admits clients (internal/frontend's fdReserve).
const proxyFDReserve = 256

func (h *Harness) buildTools() error {
	if h.cfg.has(results.SuiteSwitching) || h.cfg.has(results.SuiteMemory) {
		logf("building bench/tenantload and bench/idleconns")
		h.tenantload = filepath.Join(h.tmp, "tenantload")
		h.idleconns = filepath.Join(h.tmp, "idleconns")
		if err := stack.GoBuild(h.cfg.Root, "./bench/tenantload", h.tenantload); err != nil {
			return err
		}
		if err := stack.GoBuild(h.cfg.Root, "./bench/idleconns", h.idleconns); err != nil {
			return err
		}
	}
	if h.cfg.Baseline == "" {
		return nil
	}
	logf("building multigres at %s (baseline)", h.cfg.Baseline)
	logPath := filepath.Join(h.tmp, "baseline-build.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	bin, short, err := stack.BuildAt(h.cfg.Root, h.cfg.Baseline, h.tmp, logFile)
	if err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\n%s", err, out)
	}
	h.baselineBin, h.baseline = bin, &results.Baseline{Rev: h.cfg.Baseline, Commit: short}
	logf("baseline: multigres %s built from %s", short, h.cfg.Baseline)
	return nil
}

func (h *Harness) writeScripts() error {
	for name, text := range plan.Scripts(h.cfg.Scale) {
		if err := os.WriteFile(filepath.Join(h.tmp, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cleanup stops every process this run started, restores the huge page
// reservation and removes the temp dir (keeping its logs with -keep-logs).
func (h *Harness) cleanup() {
	for _, s := range h.extra {
		s.Stop()
	}
	for _, s := range h.servers {
		s.Stop()
	}
	if h.pg != nil {
		h.pg.Stop()
	}
	if h.citus != nil {
		h.citus.stop()
	}
	if h.huge != nil {
		h.huge.Restore()
	}
	if h.tmp == "" {
		return
	}
	if h.cfg.KeepLogs {
		os.RemoveAll(filepath.Join(h.tmp, "data"))
		logf("logs kept in %s", h.tmp)
		return
	}
	os.RemoveAll(h.tmp)
}

// result assembles the run's results file.
func (h *Harness) result(before, after []float64) *results.Run {
	commit, dirty := stack.Commit(h.cfg.Root)
	for i := range h.suites {
		h.suites[i].Summarize()
	}
	return &results.Run{
		Schema: results.SchemaVersion, Source: results.SourceHarness, Date: time.Now().UTC().Truncate(time.Second),
		Commit: commit, Dirty: dirty, Quick: h.cfg.Quick, Baseline: h.baseline,
		Machine:  h.machine(before, after),
		Settings: h.cfg.settings(),
		Suites:   h.orderedSuites(),
		Errors:   h.errors,
	}
}

func (h *Harness) orderedSuites() []results.Suite {
	var out []results.Suite
	for _, name := range results.SuiteOrder {
		for _, s := range h.suites {
			if s.Name == name {
				out = append(out, s)
			}
		}
	}
	return out
}

func (h *Harness) machine(before, after []float64) results.Machine {
	var u unix.Utsname
	_ = unix.Uname(&u)
	kernel := strings.Join([]string{unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:]),
		unix.ByteSliceToString(u.Machine[:])}, " ")
	m := results.Machine{
		Kernel: kernel, CPUModel: cpuModel(), Cores: runtime.NumCPU(),
		MemoryGiB:  float64(int(float64(stack.MemTotalKiB())/1048576*10+0.5)) / 10,
		HugePages:  h.huge != nil && h.huge.On,
		LoadBefore: before, LoadAfter: after,
	}
	if h.pgbouncer != "" {
		m.PgBouncer = stack.PgBouncerVersion(h.pgbouncer)
	}
	switch {
	case h.pg != nil:
		m.PostgreSQL = h.pg.Version
	case h.citus != nil:
		m.PostgreSQL = h.citus.pg
	}
	if h.citus != nil {
		m.Citus = h.citus.version
	}
	return m
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() []float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	var out []float64
	for _, f := range strings.Fields(string(data)) {
		if len(out) == 3 {
			break
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			break
		}
		out = append(out, v)
	}
	return out
}
