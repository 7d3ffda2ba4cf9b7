package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func f(v float64) *float64 { return &v }

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want *float64
	}{
		{nil, nil},
		{[]float64{3}, f(3)},
		{[]float64{9, 1, 5}, f(5)},
		{[]float64{4, 1, 3, 2}, f(2.5)},
	} {
		got := Median(tc.in)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRatioOf(t *testing.T) {
	if RatioOf(nil, f(1)) != nil || RatioOf(f(1), nil) != nil || RatioOf(f(1), f(0)) != nil {
		t.Error("missing or zero operands must give nil")
	}
	if v := RatioOf(f(3), f(4)); v == nil || *v != 0.75 {
		t.Errorf("RatioOf(3, 4) = %v", v)
	}
}

// sample is a small transaction suite: two targets, one test, one ratio;
// the PgBouncer cell failed once.
func sample() *Run {
	s := Suite{
		Name: SuiteTransaction, Title: "Transaction pooling",
		Targets:   []Target{{"tx_multigres", "multigres tx"}, {"tx_pgbouncer", "PgBouncer tx"}, {"tx_direct", "direct"}},
		RatioDefs: []RatioDef{{"multigres tx/PgBouncer tx", "tx_multigres", "tx_pgbouncer"}},
		Tests: []Test{{Name: "-S -M simple", Kind: "pgbench", Cells: []Cell{
			{Target: "tx_multigres", Rounds: []Round{
				{Round: 1, TPS: 900, Window: "10s@90%", ClientCPUPct: f(20), BusyPct: f(90), LatencyMS: f(2)},
				{Round: 2, TPS: 1100, Window: "11s@90%", ClientCPUPct: f(50), BusyPct: f(95), LatencyMS: f(4)},
				{Round: 3, TPS: 1000, Window: "9s@90%", ClientCPUPct: f(45), BusyPct: f(92), LatencyMS: f(3)},
			}},
			{Target: "tx_pgbouncer", Failed: 1, Error: "boom", Rounds: []Round{
				{Round: 1, TPS: 1900}, {Round: 3, TPS: 2100},
			}},
		}}},
	}
	s.Summarize()
	return &Run{Schema: SchemaVersion, Source: SourceHarness, Commit: "abc1234",
		Date:     time.Date(2026, 12, 7, 16, 13, 5, 0, time.UTC),
		Machine:  Machine{Kernel: "Linux 6 x86_64", CPUModel: "EPYC", Cores: 2, MemoryGiB: 23.5, PostgreSQL: "15.18", PgBouncer: "1.18.0", HugePages: true},
		Settings: Settings{Suites: []string{"transaction"}, Rounds: 3, Seconds: 10, Scale: 10},
		Suites:   []Suite{s}}
}

func TestSummarize(t *testing.T) {
	r := sample()
	test := r.Suites[0].Tests[0]
	mg := test.Cell("tx_multigres")
	if *mg.MedianTPS != 1000 || *mg.ClientCPUPct != 45 || *mg.BusyPct != 92 || *mg.MedianLatencyMS != 3 {
		t.Errorf("multigres medians: %+v", mg)
	}
	if got := *test.Cell("tx_pgbouncer").MedianTPS; got != 2000 {
		t.Errorf("PgBouncer median %v, want 2000", got)
	}
	if got := test.ratio("multigres tx/PgBouncer tx"); got == nil || *got != 0.5 {
		t.Errorf("ratio %v, want 0.5", got)
	}
}

func TestRenderRun(t *testing.T) {
	out := RenderRun(sample(), 2)
	for _, want := range []string{
		"## 2026-12-07 16:13 UTC",
		"huge pages on), PgBouncer 1.18.0, multigres `abc1234`",
		"| test | multigres tx TPS | PgBouncer tx TPS | multigres tx/PgBouncer tx |",
		"| `-S -M simple` | 1000 | 2000 (1 of 3 failed) | 0.50× |",
		"| `-S -M simple` | 45% / 92% | n/a |",
		"`-S -M simple` multigres tx (45%)",
		"- `-S -M simple`: multigres tx 900, 1100, 1000 (measured over 10s@90%, 11s@90%, 9s@90%); PgBouncer tx 1900, 2100",
		"| `-S -M simple`: multigres tx ≥ 1.2× PgBouncer tx | 0.50× | **missed** |",
		"| `-S -C`: multigres tx ≥ 1.5× PgBouncer tx | – | not measured |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendering lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "direct") {
		t.Errorf("a target no test runs must not get a column:\n%s", out)
	}
}

func TestSwitchingAndMemoryGoals(t *testing.T) {
	sw := Suite{Name: SuiteSwitching, Targets: []Target{{"sw_rotating", "1000 tenants rotating"}, {"sw_one", "1 tenant"}},
		Tests: []Test{{Name: "tenantload -mode simple", Cells: []Cell{
			{Target: "sw_rotating", Rounds: []Round{{TPS: 96}}}, {Target: "sw_one", Rounds: []Round{{TPS: 100}}}}}}}
	sw.Summarize()
	mem := Suite{Name: SuiteMemory, Memory: []MemoryRow{{Target: "multigres", PerConnKiB: 10.5, Conns: 5}}}
	r := &Run{Settings: Settings{IdleConns: 5}, Suites: []Suite{sw, mem}}
	gs := Goals(r)
	if len(gs) != 2 {
		t.Fatalf("goals: %+v", gs)
	}
	if !gs[0].Met || gs[0].What != "switching (simple): 1000 tenants rotating ≥ 0.95× one tenant" {
		t.Errorf("switching goal: %+v", gs[0])
	}
	if gs[1].Met || *gs[1].Measured != 10.5 {
		t.Errorf("memory goal: %+v", gs[1])
	}
}

func TestSwitchedRounds(t *testing.T) {
	b := 8
	c := Cell{Rounds: []Round{{TPS: 10, Switched: f(1), Backends: &b}, {TPS: 12, Switched: f(0.5), Backends: &b}}}
	if got, want := roundsText(c), "10, 12 (switched 100.0%, 50.0%; server backends 8, 8)"; got != want {
		t.Errorf("roundsText = %q, want %q", got, want)
	}
	if roundsText(Cell{}) != "none" {
		t.Error("a cell without rounds reads none")
	}
}

func TestSaveLoadDir(t *testing.T) {
	dir := t.TempDir()
	r := sample()
	p, err := Save(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(p) != "2026-12-07T161305Z-abc1234.json" {
		t.Errorf("file name %s", filepath.Base(p))
	}
	q := sample()
	q.Quick, q.Date = true, q.Date.Add(time.Hour)
	if _, err := Save(dir, q); err != nil {
		t.Fatal(err)
	}
	runs, err := LoadDir(dir, false)
	if err != nil || len(runs) != 1 || runs[0].Quick {
		t.Fatalf("LoadDir without quick: %v, %d runs", err, len(runs))
	}
	got := runs[0].Suites[0].Tests[0].Cell("tx_multigres")
	if *got.MedianTPS != 1000 || got.Rounds[1].Window != "11s@90%" {
		t.Errorf("round trip lost data: %+v", got)
	}
	if runs, _ := LoadDir(dir, true); len(runs) != 2 || !runs[1].Quick {
		t.Errorf("LoadDir with quick: %d runs", len(runs))
	}
	if err := os.WriteFile(filepath.Join(dir, "x.json"), []byte(`{"schema": 99}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir, true); err == nil {
		t.Error("an unknown schema must be refused")
	}
}

func TestLatestPerSuite(t *testing.T) {
	old := sample()
	old.Suites = append(old.Suites, Suite{Name: SuiteMemory, Title: "Memory", Memory: []MemoryRow{{Target: "multigres", Label: "mg", Conns: 3}}})
	newer := sample()
	newer.Date, newer.Commit = newer.Date.Add(24*time.Hour), "def5678"
	out := LatestPerSuite([]*Run{old, newer}, 3)
	i, j := strings.Index(out, "### 2026-12-08"), strings.Index(out, "### 2026-12-07")
	if i < 0 || j < 0 || i > j {
		t.Fatalf("want the newer run first, then the older one for memory:\n%s", out)
	}
	if strings.Count(out, "#### Transaction pooling\n") != 1 || !strings.Contains(out[j:], "#### Memory") {
		t.Errorf("each suite once, from its newest run:\n%s", out)
	}
}

func TestReplaceResults(t *testing.T) {
	doc := "# T\n\n" + BeginMarker + "\nold\n" + EndMarker + "\ntail\n"
	got, err := ReplaceResults(doc, "\nnew\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# T\n\n" + BeginMarker + "\n\nnew\n\n" + EndMarker + "\ntail\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []string{"none", EndMarker + BeginMarker, BeginMarker + BeginMarker + EndMarker} {
		if _, err := ReplaceResults(bad, "x"); err == nil {
			t.Errorf("ReplaceResults(%q) must fail", bad)
		}
	}
}

// A citus-only run names Citus and no PgBouncer; the goals of the
// transaction suites come before the citus suite.
func TestRenderCitus(t *testing.T) {
	r := sample()
	c := Suite{Name: SuiteCitus, Title: "Citus",
		Targets:   []Target{{"citus_super", "superuser"}, {"citus_mg_tx", "multigres tx"}},
		RatioDefs: []RatioDef{{"multigres tx/superuser", "citus_mg_tx", "citus_super"}},
		Tests: []Test{{Name: "read -M simple", Kind: "pgbench", Cells: []Cell{
			{Target: "citus_super", Rounds: []Round{{TPS: 4000}}}, {Target: "citus_mg_tx", Rounds: []Round{{TPS: 2000}}}}}}}
	c.Summarize()
	r.Suites = append(r.Suites, c)
	r.Machine.Citus = "13.2.2"
	out := RenderRun(r, 2)
	if !strings.Contains(out, "huge pages on), PgBouncer 1.18.0, Citus 13.2.2, multigres") ||
		!strings.Contains(out, "| `read -M simple` | 4000 | 2000 | 0.50× |") {
		t.Errorf("citus rendering:\n%s", out)
	}
	if g, c := strings.Index(out, "Transaction pooling goals"), strings.Index(out, "### Citus"); g < 0 || c < g {
		t.Errorf("the goals must come before the citus suite:\n%s", out)
	}
	r.Suites, r.Machine.PgBouncer = r.Suites[1:], ""
	if out := RenderRun(r, 2); !strings.Contains(out, "huge pages on), Citus 13.2.2, multigres") || strings.Contains(out, "goals") {
		t.Errorf("citus-only rendering:\n%s", out)
	}
}
