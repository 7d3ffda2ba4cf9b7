package results

import (
	"fmt"
	"sort"
)

// Median of xs (the mean of the two middle values for an even count), or
// nil for none.
func Median(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	m := s[n/2]
	if n%2 == 0 {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return &m
}

// RatioOf is a/b, or nil when either is missing or b is not positive.
func RatioOf(a, b *float64) *float64 {
	if a == nil || b == nil || *b <= 0 {
		return nil
	}
	v := *a / *b
	return &v
}

// Summarize sets the cell's medians from its rounds.
func (c *Cell) Summarize() {
	var tps, lat, cpu, busy []float64
	for _, r := range c.Rounds {
		tps = append(tps, r.TPS)
		if r.LatencyMS != nil {
			lat = append(lat, *r.LatencyMS)
		}
		if r.ClientCPUPct != nil {
			cpu = append(cpu, *r.ClientCPUPct)
		}
		if r.BusyPct != nil {
			busy = append(busy, *r.BusyPct)
		}
	}
	c.MedianTPS = Median(tps)
	c.MedianLatencyMS = Median(lat)
	c.ClientCPUPct = Median(cpu)
	c.BusyPct = Median(busy)
}

// MedianTPS is the median TPS of (test, target), or nil when the target did
// not run that test or every run failed.
func (t *Test) MedianTPS(target string) *float64 {
	if c := t.Cell(target); c != nil {
		return c.MedianTPS
	}
	return nil
}

// Summarize sets every cell's medians and every test's ratio values from
// the suite's ratio definitions.
func (s *Suite) Summarize() {
	for i := range s.Tests {
		t := &s.Tests[i]
		for j := range t.Cells {
			t.Cells[j].Summarize()
		}
		t.Ratios = nil
		for _, d := range s.RatioDefs {
			t.Ratios = append(t.Ratios, Ratio{Label: d.Label, Value: RatioOf(t.MedianTPS(d.Num), t.MedianTPS(d.Den))})
		}
	}
}

// Goal is one line of the transaction pooling goals: a ratio or a figure
// measured in a run and the bound it should meet.
type Goal struct {
	What     string
	Measured *float64
	Unit     string // "×" or " KiB"
	Met      bool
}

// Goals are the transaction pooling goals that the run's suites measured,
// in a fixed order.
func Goals(r *Run) []Goal {
	var gs []Goal
	if s := r.Suite(SuiteTransaction); s != nil {
		gs = append(gs, transactionGoals(s)...)
	}
	if s := r.Suite(SuiteSwitching); s != nil {
		gs = append(gs, switchingGoals(s)...)
	}
	if s := r.Suite(SuiteMemory); s != nil {
		gs = append(gs, memoryGoal(s, r.Settings.IdleConns))
	}
	return gs
}

func ratioGoal(what string, v *float64, ok func(float64) bool) Goal {
	return Goal{What: what, Measured: v, Unit: "×", Met: v != nil && ok(*v)}
}

func testTPS(s *Suite, test, target string) *float64 {
	if t := s.Test(test); t != nil {
		return t.MedianTPS(target)
	}
	return nil
}

func transactionGoals(s *Suite) []Goal {
	const mg, pgb = "tx_multigres", "tx_pgbouncer"
	var gs []Goal
	for _, m := range []string{"simple", "extended"} {
		test := "-S -M " + m
		gs = append(gs, ratioGoal(fmt.Sprintf("`%s`: multigres tx ≥ 1.2× PgBouncer tx", test),
			RatioOf(testTPS(s, test, mg), testTPS(s, test, pgb)), func(v float64) bool { return v >= 1.2 }))
	}
	gs = append(gs, ratioGoal("multigres tx `-M prepared` > PgBouncer tx `-M extended`",
		RatioOf(testTPS(s, "-S -M prepared", mg), testTPS(s, "-S -M extended", pgb)), func(v float64) bool { return v > 1 }))
	gs = append(gs, ratioGoal("`-S -C`: multigres tx ≥ 1.5× PgBouncer tx",
		RatioOf(testTPS(s, "-S -C -M simple", mg), testTPS(s, "-S -C -M simple", pgb)), func(v float64) bool { return v >= 1.5 }))
	return gs
}

func switchingGoals(s *Suite) []Goal {
	var gs []Goal
	for _, t := range s.Tests {
		mode := t.Name
		if len(mode) > len("tenantload -mode ") {
			mode = mode[len("tenantload -mode "):]
		}
		gs = append(gs, ratioGoal(fmt.Sprintf("switching (%s): %s ≥ 0.95× one tenant", mode, s.Label("sw_rotating")),
			RatioOf(t.MedianTPS("sw_rotating"), t.MedianTPS("sw_one")), func(v float64) bool { return v >= 0.95 }))
	}
	return gs
}

func memoryGoal(s *Suite, conns int) Goal {
	g := Goal{What: fmt.Sprintf("≤ 10 KiB VmRSS per idle client connection (%d)", conns), Unit: " KiB"}
	for _, m := range s.Memory {
		if m.Target == "multigres" {
			v := m.PerConnKiB
			g.Measured, g.Met = &v, v <= 10
			if conns == 0 {
				g.What = fmt.Sprintf("≤ 10 KiB VmRSS per idle client connection (%d)", m.Conns)
			}
		}
	}
	return g
}
