package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
)

// measurement is one run of one (test, target): a round, or a failure.
type measurement struct {
	round results.Round
	err   string  // why the run does not count ("" when it does)
	cpu   float64 // the load generator's CPU seconds
}

// emptySuites are the results of the plan's suites, with a cell for every
// (test, target) and only the targets some test runs.
func (h *Harness) emptySuites() []results.Suite {
	var out []results.Suite
	for _, p := range h.plans {
		s := results.Suite{Name: p.Name, Title: p.Title, Description: p.Description, RatioDefs: p.Ratios}
		if p.Name == results.SuiteSession {
			s.Description += fmt.Sprintf(" Context reader in force on `%s`: `%s`.", plan.SignedDB, h.reader)
		}
		used := map[string]bool{}
		for _, t := range p.Tests {
			rt := results.Test{Name: t.Name, Kind: t.Kind}
			for _, id := range t.Targets {
				rt.Cells = append(rt.Cells, results.Cell{Target: id})
				used[id] = true
			}
			s.Tests = append(s.Tests, rt)
		}
		for _, tg := range p.Targets {
			if used[tg.ID] {
				s.Targets = append(s.Targets, results.Target{ID: tg.ID, Label: tg.Label})
			}
		}
		out = append(out, s)
	}
	return out
}

// rounds runs every test of every suite against each of its targets, once
// per round, in an order rotated per round and test (plan.Order), so slow
// phases of a shared machine spread over all targets instead of hitting one.
func (h *Harness) rounds(ctx context.Context) error {
	h.suites = h.emptySuites()
	runs, tests := 0, 0
	for _, p := range h.plans {
		for _, t := range p.Tests {
			runs += len(t.Targets)
			tests++
		}
	}
	if tests == 0 {
		return nil
	}
	logf("suites: %s; %d round(s) x %d runs (%d tests) x %d s", strings.Join(h.cfg.suiteList, " "), h.cfg.Rounds, runs, tests, h.cfg.Seconds)
	for r := 1; r <= h.cfg.Rounds; r++ {
		logf("round %d/%d", r, h.cfg.Rounds)
		ti := 0
		for si := range h.plans {
			for tj, t := range h.plans[si].Tests {
				for _, k := range plan.Order(r, ti, len(t.Targets)) {
					cell := &h.suites[si].Tests[tj].Cells[k]
					if err := h.runOne(ctx, &h.plans[si], t, *h.plans[si].Target(cell.Target), cell, r); err != nil {
						return err
					}
				}
				ti++
			}
		}
	}
	return nil
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

func (h *Harness) runOne(ctx context.Context, s *plan.Suite, t plan.Test, tg plan.Target, cell *results.Cell, round int) error {
	out := filepath.Join(h.tmp, fmt.Sprintf("run-%d-%s-%s", round, tg.ID, nonWord.ReplaceAllString(t.Name, "_")))
	total0, idle0 := cpuTicks()
	t0 := time.Now()
	var m measurement
	if t.Kind == plan.KindTenantload {
		m = h.runTenantload(ctx, t, tg, out)
	} else {
		m = h.runPgbench(ctx, s.Name, t, tg, out)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	total1, idle1 := cpuTicks()
	wall := time.Since(t0).Seconds()
	if m.err != "" {
		cell.Failed++
		if cell.Error == "" {
			cell.Error = m.err
			h.errors = append(h.errors, fmt.Sprintf("round %d, %s, %s:\n%s", round, t.Name, tg.Label, m.err))
		}
		first, _, _ := strings.Cut(m.err, "\n")
		fmt.Fprintf(os.Stderr, "  %-18s %-30s FAILED (%s)\n", t.Name, tg.Label, first)
		return nil
	}
	busy, client := 0.0, 0.0
	if dt := float64(total1 - total0); dt > 0 {
		busy = 100 * (dt - float64(idle1-idle0)) / dt
	}
	if wall > 0 {
		client = 100 * m.cpu / (wall * float64(runtime.NumCPU()))
	}
	m.round.Round, m.round.ClientCPUPct, m.round.BusyPct = round, &client, &busy
	cell.Rounds = append(cell.Rounds, m.round)
	fmt.Fprintf(os.Stderr, "  %-18s %-30s %10.1f tps (client CPU %.0f%%, machine busy %.0f%%%s)\n",
		t.Name, tg.Label, m.round.TPS, client, busy, extraText(m.round))
	return nil
}

func extraText(r results.Round) string {
	switch {
	case r.Window == "sum":
		return ", no window: sum of pgbench tps"
	case r.Window != "" && r.SumTPS != nil:
		return fmt.Sprintf(", measured over %s of the processes running; sum of pgbench tps %.0f", r.Window, *r.SumTPS)
	case r.Switched != nil && r.Backends != nil:
		return fmt.Sprintf(", %.1f%% switched, %d backends", 100**r.Switched, *r.Backends)
	}
	return ""
}

// cpuTicks are the machine's total and idle (idle + iowait) jiffies.
func cpuTicks() (total, idle uint64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		total += v
		if i == 4 || i == 5 {
			idle += v
		}
	}
	return total, idle
}
