// Package results is the data model of a benchmark run (bench/cmd/mgbench):
// one JSON file per run under bench/results/, and the pure functions that
// summarise it (medians, ratios, goals) and render it as Markdown, for the
// terminal and for docs/benchmarks.md.
//
// Nothing here starts a process or opens a connection, so it is tested
// without PostgreSQL.
package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// SchemaVersion is the version of the JSON layout written by this package.
const SchemaVersion = 1

// Where a run's figures come from.
const (
	SourceHarness = "bench/cmd/mgbench"
	SourceHistory = "docs/benchmarks.md history"
)

// Suite names, in the order the harness runs and renders them.
const (
	SuiteTransaction = "transaction"
	SuiteSwitching   = "switching"
	SuiteMemory      = "memory"
	SuiteSession     = "session"
	SuiteCitus       = "citus"
)

// SuiteOrder is the rendering order of the suites.
var SuiteOrder = []string{SuiteTransaction, SuiteSwitching, SuiteMemory, SuiteSession, SuiteCitus}

// AllSuites are the suites "-suites all" runs: every suite that needs only
// PostgreSQL and PgBouncer. The citus suite needs Citus installed, so it
// runs only when named.
var AllSuites = []string{SuiteTransaction, SuiteSwitching, SuiteMemory, SuiteSession}

// Run is one benchmark run: one JSON file.
type Run struct {
	Schema   int       `json:"schema"`
	Source   string    `json:"source"`
	Date     time.Time `json:"date"`
	Commit   string    `json:"commit"`
	Dirty    bool      `json:"dirty,omitempty"`
	Quick    bool      `json:"quick,omitempty"`
	Baseline *Baseline `json:"baseline,omitempty"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Suites   []Suite   `json:"suites"`
	// Errors holds the first failure of each failed cell, as text.
	Errors []string `json:"errors,omitempty"`
	// Notes are free text: what a history entry said besides its tables
	// (its reading, how the binary was built).
	Notes []string `json:"notes,omitempty"`
}

// Baseline is the other multigres build a run compared against.
type Baseline struct {
	Rev    string `json:"rev"`    // as given to -baseline
	Commit string `json:"commit"` // short hash it resolved to
}

// Machine describes where a run ran.
type Machine struct {
	Kernel     string    `json:"kernel"` // uname -srm
	CPUModel   string    `json:"cpu_model"`
	Cores      int       `json:"cores"`
	MemoryGiB  float64   `json:"memory_gib"`
	PostgreSQL string    `json:"postgresql"`
	PgBouncer  string    `json:"pgbouncer"`
	Citus      string    `json:"citus,omitempty"` // the citus suite's Citus version
	HugePages  bool      `json:"huge_pages"`
	LoadBefore []float64 `json:"load_before,omitempty"`
	LoadAfter  []float64 `json:"load_after,omitempty"`
}

// Settings are the knobs a run used (bench/cmd/mgbench -help).
type Settings struct {
	Suites        []string `json:"suites"`
	Rounds        int      `json:"rounds"`
	Seconds       int      `json:"seconds"`
	Ramp          int      `json:"ramp,omitempty"`
	Scale         int      `json:"scale"`
	Clients       int      `json:"clients,omitempty"`
	Threads       int      `json:"threads,omitempty"`
	TxClients     int      `json:"tx_clients,omitempty"`
	PoolSize      int      `json:"pool_size,omitempty"`
	TxPoolMode    string   `json:"tx_pool_mode,omitempty"`
	MgTxFlags     string   `json:"mg_tx_flags,omitempty"`
	SwitchConns   int      `json:"switch_conns,omitempty"`
	SwitchTenants int      `json:"switch_tenants,omitempty"`
	SwitchModes   []string `json:"switch_modes,omitempty"`
	IdleConns     int      `json:"idle_conns,omitempty"`
	CitusClients  int      `json:"citus_clients,omitempty"`
}

// Suite is one suite's results: a table of tests by targets, or for the
// memory suite a list of rows.
type Suite struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Description is the method paragraph rendered under the title.
	Description string      `json:"description,omitempty"`
	Targets     []Target    `json:"targets,omitempty"`
	RatioDefs   []RatioDef  `json:"ratio_defs,omitempty"`
	Tests       []Test      `json:"tests,omitempty"`
	Memory      []MemoryRow `json:"memory,omitempty"`
}

// Target is one column: a way for the load to reach PostgreSQL.
type Target struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

// RatioDef is one ratio column: median TPS of Num divided by Den's.
type RatioDef struct {
	Label string `json:"label"`
	Num   string `json:"num"`
	Den   string `json:"den"`
}

// Test is one row: one load shape against some of the suite's targets.
type Test struct {
	Name   string  `json:"name"` // as shown, e.g. "-S -M simple"
	Kind   string  `json:"kind"` // pgbench or tenantload
	Cells  []Cell  `json:"cells"`
	Ratios []Ratio `json:"ratios,omitempty"`
}

// Cell is one (test, target) measurement over the rounds.
type Cell struct {
	Target    string   `json:"target"`
	MedianTPS *float64 `json:"median_tps"`
	// MedianLatencyMS is the median of the rounds' average latency, when
	// the load generator reports one.
	MedianLatencyMS *float64 `json:"median_latency_ms,omitempty"`
	// ClientCPUPct is the median share of the machine's cores the load
	// generator used; BusyPct the median share of the machine that was busy.
	ClientCPUPct *float64 `json:"client_cpu_pct,omitempty"`
	BusyPct      *float64 `json:"busy_pct,omitempty"`
	Rounds       []Round  `json:"rounds"`
	Failed       int      `json:"failed,omitempty"`
	Error        string   `json:"error,omitempty"`
}

// Round is one good run of a cell. Failed runs are only counted (Cell.Failed).
type Round struct {
	Round        int      `json:"round,omitempty"`
	TPS          float64  `json:"tps"`
	LatencyMS    *float64 `json:"latency_ms,omitempty"`
	ClientCPUPct *float64 `json:"client_cpu_pct,omitempty"`
	BusyPct      *float64 `json:"busy_pct,omitempty"`
	// Window is how a multi-process TPS was measured: "11s@90%" (seconds
	// in which at least 90% of the processes ran), or "sum".
	Window string `json:"window,omitempty"`
	// SumTPS is the plain sum of the processes' own TPS (multi-process
	// targets), for comparison with the windowed figure.
	SumTPS   *float64 `json:"sum_tps,omitempty"`
	Switched *float64 `json:"switched,omitempty"` // tenantload: share of switched transactions
	Backends *int     `json:"backends,omitempty"` // tenantload: server backends seen
}

// Ratio is the value of one RatioDef in one test (nil: not measured).
type Ratio struct {
	Label string   `json:"label"`
	Value *float64 `json:"value"`
}

// MemoryRow is one memory-suite measurement (bench/idleconns).
type MemoryRow struct {
	Target      string  `json:"target"`
	Label       string  `json:"label"`
	Conns       int     `json:"conns"`
	BaselineKiB int64   `json:"baseline_kib"`
	LoadedKiB   int64   `json:"loaded_kib"`
	PerConnKiB  float64 `json:"per_conn_kib"`
	HWMKiB      int64   `json:"hwm_kib"`
	ClosedKiB   int64   `json:"closed_kib"`
	ConnectS    float64 `json:"connect_s"`
}

// FileName is the name of a run's file: UTC timestamp and short commit,
// with a "-quick" suffix for smoke runs, so names sort by date.
func FileName(r *Run) string {
	name := r.Date.UTC().Format("2006-01-02T150405Z") + "-" + safe(r.Commit)
	if r.Quick {
		name += "-quick"
	}
	return name + ".json"
}

func safe(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			return c
		}
		return '_'
	}, s)
}

// Save writes r into dir as FileName(r) and returns the path.
func Save(dir string, r *Run) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, FileName(r))
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// Load reads one run file.
func Load(path string) (*Run, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Schema != SchemaVersion {
		return nil, fmt.Errorf("%s: schema %d, this program reads %d", path, r.Schema, SchemaVersion)
	}
	return &r, nil
}

// LoadDir reads every *.json run in dir, oldest first; quick (smoke) runs
// only when withQuick.
func LoadDir(dir string, withQuick bool) ([]*Run, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var runs []*Run
	for _, p := range paths {
		r, err := Load(p)
		if err != nil {
			return nil, err
		}
		if r.Quick && !withQuick {
			continue
		}
		runs = append(runs, r)
	}
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].Date.Before(runs[j].Date) })
	return runs, nil
}

// Suite returns the run's suite of that name, or nil.
func (r *Run) Suite(name string) *Suite {
	for i := range r.Suites {
		if r.Suites[i].Name == name {
			return &r.Suites[i]
		}
	}
	return nil
}

// Test returns the suite's test of that name, or nil.
func (s *Suite) Test(name string) *Test {
	for i := range s.Tests {
		if s.Tests[i].Name == name {
			return &s.Tests[i]
		}
	}
	return nil
}

// Cell returns the test's cell of that target, or nil (not run).
func (t *Test) Cell(target string) *Cell {
	for i := range t.Cells {
		if t.Cells[i].Target == target {
			return &t.Cells[i]
		}
	}
	return nil
}

// Label returns the target's label, or its id.
func (s *Suite) Label(id string) string {
	for _, t := range s.Targets {
		if t.ID == id {
			return t.Label
		}
	}
	return id
}
