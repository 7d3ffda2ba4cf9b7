package results

import (
	"fmt"
	"sort"
	"strings"
)

// heavyClientPct is the load generator's share of the machine from which a
// cell is flagged: there the client, not the target, may set the pace.
const heavyClientPct = 40

// RenderRun is the Markdown of one run: a heading at level (2 = "##"), the
// machine and settings, one section per suite, the goals and the failures.
func RenderRun(r *Run, level int) string {
	var b strings.Builder
	h := strings.Repeat("#", level)
	fmt.Fprintf(&b, "%s %s\n\n", h, r.Date.UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString(header(r))
	goalsDone := false
	for _, name := range SuiteOrder {
		s := r.Suite(name)
		if s == nil {
			continue
		}
		// The goals close the transaction pooling suites.
		if !goalsDone && (name == SuiteSession || name == SuiteCitus) {
			b.WriteString(goalsSection(r, h+"#"))
			goalsDone = true
		}
		fmt.Fprintf(&b, "\n%s# %s\n", h, s.Title)
		if s.Description != "" {
			fmt.Fprintf(&b, "\n%s\n", s.Description)
		}
		if name == SuiteMemory {
			b.WriteString("\n" + memoryTable(s))
		} else {
			b.WriteString(suiteBody(s))
		}
	}
	if !goalsDone {
		b.WriteString(goalsSection(r, h+"#"))
	}
	b.WriteString(errorsSection(r))
	return b.String()
}

func header(r *Run) string {
	m := r.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "- Machine: `%s`, %s, %d cores, %.1f GiB RAM", m.Kernel, orUnknown(m.CPUModel), m.Cores, m.MemoryGiB)
	if len(m.LoadBefore) > 0 {
		fmt.Fprintf(&b, "; load average %s before, %s after", loads(m.LoadBefore), loads(m.LoadAfter))
	}
	b.WriteString(".\n")
	huge := "off"
	if m.HugePages {
		huge = "on"
	}
	dirty := ""
	if r.Dirty {
		dirty = ", with uncommitted changes"
	}
	st := r.Settings
	fmt.Fprintf(&b, "- PostgreSQL %s (fsync, synchronous_commit and full_page_writes off, huge pages %s), %smultigres `%s`%s; "+
		"suites: %s; %d interleaved round(s) of %d s per run; scale %d; median per cell.\n",
		m.PostgreSQL, huge, otherServers(m), r.Commit, dirty, strings.Join(st.Suites, " "), st.Rounds, st.Seconds, st.Scale)
	if r.Baseline != nil {
		fmt.Fprintf(&b, "- Baseline: multigres built from `%s` (`%s`), run side by side with this build: the \"baseline\" columns.\n",
			r.Baseline.Rev, r.Baseline.Commit)
	}
	if r.Quick {
		b.WriteString("- Quick run: a smoke test of the harness, not a measurement.\n")
	}
	if r.Source == SourceHistory {
		b.WriteString("- Figures converted from the run log that docs/benchmarks.md kept before bench/results existed.\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// otherServers names the servers besides PostgreSQL that the run measured
// ("PgBouncer 1.18.0, Citus 13.2.2, "): a citus-only run starts no PgBouncer.
func otherServers(m Machine) string {
	out := ""
	if m.PgBouncer != "" {
		out += "PgBouncer " + m.PgBouncer + ", "
	}
	if m.Citus != "" {
		out += "Citus " + m.Citus + ", "
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

func loads(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(parts, " ")
}

// columns are the suite's targets that some test runs, in target order.
func columns(s *Suite) []Target {
	var out []Target
	for _, tg := range s.Targets {
		for i := range s.Tests {
			if s.Tests[i].Cell(tg.ID) != nil {
				out = append(out, tg)
				break
			}
		}
	}
	return out
}

func suiteBody(s *Suite) string {
	var b strings.Builder
	b.WriteString("\n" + tpsTable(s))
	if hasCPU(s) {
		b.WriteString("\nLoad generator CPU (% of the machine's cores) / machine busy, medians:\n\n" + cpuTable(s))
		b.WriteString("\n" + heavyClients(s) + "\n")
	}
	if hasLatency(s) {
		b.WriteString("\nLatency, median of each run's average (ms):\n\n" + latencyTable(s))
	}
	b.WriteString("\nTPS of every run, in round order:\n\n" + runsList(s))
	return b.String()
}

func tableHead(first string, cols []string) string {
	head := "| " + first + " |"
	sep := "|---|"
	for _, c := range cols {
		head += " " + c + " |"
		sep += "---:|"
	}
	return head + "\n" + sep + "\n"
}

func tpsTable(s *Suite) string {
	cols := columns(s)
	var names []string
	for _, c := range cols {
		names = append(names, c.Label+" TPS")
	}
	for _, d := range s.RatioDefs {
		names = append(names, d.Label)
	}
	var b strings.Builder
	b.WriteString(tableHead("test", names))
	for _, t := range s.Tests {
		row := "| `" + t.Name + "` |"
		for _, c := range cols {
			row += " " + tpsCell(t.Cell(c.ID)) + " |"
		}
		for _, d := range s.RatioDefs {
			row += " " + ratioCell(t.ratio(d.Label)) + " |"
		}
		b.WriteString(row + "\n")
	}
	return b.String()
}

func (t *Test) ratio(label string) *float64 {
	for _, r := range t.Ratios {
		if r.Label == label {
			return r.Value
		}
	}
	return nil
}

func tpsCell(c *Cell) string {
	if c == nil {
		return "–"
	}
	v := "n/a"
	if c.MedianTPS != nil {
		v = fmt.Sprintf("%.0f", *c.MedianTPS)
	}
	if c.Failed > 0 {
		v += fmt.Sprintf(" (%d of %d failed)", c.Failed, c.Failed+len(c.Rounds))
	}
	return v
}

func ratioCell(v *float64) string {
	if v == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f×", *v)
}

func hasCPU(s *Suite) bool {
	for _, t := range s.Tests {
		for _, c := range t.Cells {
			if c.ClientCPUPct != nil {
				return true
			}
		}
	}
	return false
}

func hasLatency(s *Suite) bool {
	for _, t := range s.Tests {
		for _, c := range t.Cells {
			if c.MedianLatencyMS != nil {
				return true
			}
		}
	}
	return false
}

// cellTable renders one text per (test, column); "–" where the target does
// not run the test.
func cellTable(s *Suite, text func(*Cell) string) string {
	cols := columns(s)
	var names []string
	for _, c := range cols {
		names = append(names, c.Label)
	}
	var b strings.Builder
	b.WriteString(tableHead("test", names))
	for _, t := range s.Tests {
		row := "| `" + t.Name + "` |"
		for _, col := range cols {
			c := t.Cell(col.ID)
			if c == nil {
				row += " – |"
				continue
			}
			row += " " + text(c) + " |"
		}
		b.WriteString(row + "\n")
	}
	return b.String()
}

func cpuTable(s *Suite) string {
	return cellTable(s, func(c *Cell) string {
		if c.ClientCPUPct == nil || c.BusyPct == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.0f%% / %.0f%%", *c.ClientCPUPct, *c.BusyPct)
	})
}

func latencyTable(s *Suite) string {
	return cellTable(s, func(c *Cell) string {
		if c.MedianLatencyMS == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.3f", *c.MedianLatencyMS)
	})
}

func heavyClients(s *Suite) string {
	var heavy []string
	for _, t := range s.Tests {
		for _, c := range t.Cells {
			if c.ClientCPUPct != nil && *c.ClientCPUPct >= heavyClientPct {
				heavy = append(heavy, fmt.Sprintf("`%s` %s (%.0f%%)", t.Name, s.Label(c.Target), *c.ClientCPUPct))
			}
		}
	}
	if len(heavy) == 0 {
		return fmt.Sprintf("The load generator took less than %d%% of the machine in every cell.", heavyClientPct)
	}
	return fmt.Sprintf("The load generator took at least %d%% of the machine in: %s; there it competes with the target for the CPU and may set the pace.",
		heavyClientPct, strings.Join(heavy, ", "))
}

func runsList(s *Suite) string {
	var b strings.Builder
	for _, t := range s.Tests {
		var parts []string
		for _, c := range t.Cells {
			parts = append(parts, s.Label(c.Target)+" "+roundsText(c))
		}
		fmt.Fprintf(&b, "- `%s`: %s\n", t.Name, strings.Join(parts, "; "))
	}
	return b.String()
}

func roundsText(c Cell) string {
	if len(c.Rounds) == 0 {
		return "none"
	}
	var tps, win, sw, be []string
	for _, r := range c.Rounds {
		tps = append(tps, fmt.Sprintf("%.0f", r.TPS))
		if r.Window != "" {
			win = append(win, r.Window)
		}
		if r.Switched != nil && r.Backends != nil {
			sw = append(sw, fmt.Sprintf("%.1f%%", 100**r.Switched))
			be = append(be, fmt.Sprintf("%d", *r.Backends))
		}
	}
	out := strings.Join(tps, ", ")
	switch {
	case len(win) > 0:
		out += " (measured over " + strings.Join(win, ", ") + ")"
	case len(sw) > 0:
		out += " (switched " + strings.Join(sw, ", ") + "; server backends " + strings.Join(be, ", ") + ")"
	}
	return out
}

func memoryTable(s *Suite) string {
	var b strings.Builder
	b.WriteString("| proxy | idle connections | baseline VmRSS | VmRSS with them | KiB per idle connection | VmHWM | VmRSS after closing | login time |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range s.Memory {
		fmt.Fprintf(&b, "| %s | %d | %d KiB | %d KiB | %.2f | %d KiB | %d KiB | %.2f s |\n",
			m.Label, m.Conns, m.BaselineKiB, m.LoadedKiB, m.PerConnKiB, m.HWMKiB, m.ClosedKiB, m.ConnectS)
	}
	return b.String()
}

func goalsSection(r *Run, h string) string {
	gs := Goals(r)
	if len(gs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s Transaction pooling goals\n\n| goal | measured | result |\n|---|---:|---|\n", h)
	for _, g := range gs {
		measured, verdict := "–", "not measured"
		if g.Measured != nil {
			measured = fmt.Sprintf("%.2f%s", *g.Measured, g.Unit)
			verdict = "**missed**"
			if g.Met {
				verdict = "**met**"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", g.What, measured, verdict)
	}
	return b.String()
}

func errorsSection(r *Run) string {
	if len(r.Errors) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nFailed runs (first failure of each cell):\n\n")
	for _, e := range r.Errors {
		b.WriteString("```\n" + strings.TrimRight(e, "\n") + "\n```\n")
	}
	return b.String()
}

// LatestPerSuite renders, for each suite, the newest run that measured it
// (runs in any order): runs that are the newest for several suites are
// rendered once, with those suites, newest run first.
func LatestPerSuite(runs []*Run, level int) string {
	newest := map[string]*Run{}
	for _, r := range runs {
		for _, s := range r.Suites {
			if cur := newest[s.Name]; cur == nil || r.Date.After(cur.Date) {
				newest[s.Name] = r
			}
		}
	}
	picked := map[*Run][]Suite{}
	var order []*Run
	for _, name := range SuiteOrder {
		r := newest[name]
		if r == nil {
			continue
		}
		if _, ok := picked[r]; !ok {
			order = append(order, r)
		}
		picked[r] = append(picked[r], *r.Suite(name))
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Date.After(order[j].Date) })
	var parts []string
	for _, r := range order {
		cp := *r
		cp.Suites = picked[r]
		parts = append(parts, RenderRun(&cp, level))
	}
	return strings.Join(parts, "\n")
}
