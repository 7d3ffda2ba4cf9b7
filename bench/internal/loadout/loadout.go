// Package loadout reads what the benchmark's load generators print:
// pgbench's summary and its per-second aggregate logs (-l
// --aggregate-interval=1), and the key=value lines of bench/tenantload and
// bench/idleconns. It is pure text processing, tested without PostgreSQL.
package loadout

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Summary is what one pgbench run reports about itself.
type Summary struct {
	TPS       float64 // the "tps = " line; with -C it includes reconnection times
	HasTPS    bool
	LatencyMS *float64 // "latency average = N ms"
	ConnMS    *float64 // "initial connection time" or, with -C, "average connection time"
	Processed *int64   // "number of transactions actually processed"
}

var (
	tpsRe       = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	latencyRe   = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	connRe      = regexp.MustCompile(`(?m)^(?:initial|average) connection time = ([0-9.]+) ms`)
	processedRe = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	abortedRe   = regexp.MustCompile(`(?m)^(client [0-9]+ aborted|pgbench: error)`)
	// settingsRe are pgbench's report lines, left out of a failure's text.
	settingsRe = regexp.MustCompile(`^(pgbench \(|transaction type|scaling factor|query mode|number of (clients|threads|transactions|failed)|` +
		`maximum number|duration|latency|initial connection|average connection|tps = )`)
)

// ParsePgbench reads pgbench's output (PostgreSQL 15's wording).
func ParsePgbench(out string) Summary {
	var s Summary
	if m := tpsRe.FindStringSubmatch(out); m != nil {
		s.TPS, _ = strconv.ParseFloat(m[1], 64)
		s.HasTPS = true
	}
	s.LatencyMS = floatMatch(latencyRe, out)
	s.ConnMS = floatMatch(connRe, out)
	if m := processedRe.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		s.Processed = &n
	}
	return s
}

func floatMatch(re *regexp.Regexp, s string) *float64 {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return nil
	}
	return &v
}

// PgbenchFailure says why a pgbench run does not count, or "" when it
// does: it exited non-zero, printed no TPS, a client aborted, pgbench
// reported an error (it may still exit 0), or it ran no transaction at all
// (its connection took longer than -T). The text is pgbench's own output
// without its report lines, at most six lines.
func PgbenchFailure(out string, exit int, secs int) string {
	s := ParsePgbench(out)
	if exit == 0 && s.Processed != nil && *s.Processed == 0 {
		return fmt.Sprintf("no transactions: a pgbench process ran none (its connections took longer than -T %d?)", secs)
	}
	if exit == 0 && s.HasTPS && !abortedRe.MatchString(out) {
		return ""
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line != "" && !settingsRe.MatchString(line) {
			keep = append(keep, line)
		}
		if len(keep) == 6 {
			break
		}
	}
	return fmt.Sprintf("exit %d: %s", exit, strings.Join(keep, "\n"))
}

// AggSample is one line of a pgbench aggregate log: the interval's start
// (Unix seconds), its transactions and the sum of their latencies (µs).
type AggSample struct {
	Sec       int64
	Count     int64
	SumLatUS  float64
	HasLatSum bool
}

// ParseAgg reads a pgbench aggregate log ("interval_start
// num_transactions sum_latency sum_latency_2 min max ...").
func ParseAgg(r io.Reader) ([]AggSample, error) {
	var out []AggSample
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		sec, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("aggregate log line %q", sc.Text())
		}
		s := AggSample{Sec: sec, Count: n}
		if len(f) > 2 {
			if lat, err := strconv.ParseFloat(f[2], 64); err == nil {
				s.SumLatUS, s.HasLatSum = lat, true
			}
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// Window is the throughput of many pgbench processes over the seconds in
// which (nearly) all of them were running.
type Window struct {
	TPS       float64
	Secs      int
	Quorum    int      // percent of the processes that had to be running
	LatencyMS *float64 // mean latency of the window's transactions
}

// String is the window as the tables show it, e.g. "11s@90%".
func (w Window) String() string { return fmt.Sprintf("%ds@%d%%", w.Secs, w.Quorum) }

// WindowTPS takes one aggregate log per process. A process runs from its
// first to its last second with a transaction, both excluded (partial
// seconds); the result is the mean number of transactions per second of all
// processes together over the seconds in which at least 90% of them were
// running, or 50% when they never overlapped that much. ok is false when a
// process logged no transaction or no second qualifies: then the caller
// falls back to the sum of pgbench's own TPS.
func WindowTPS(procs [][]AggSample) (w Window, ok bool) {
	if len(procs) == 0 {
		return Window{}, false
	}
	first := make([]int64, len(procs))
	last := make([]int64, len(procs))
	per := map[int64]int64{}
	lat := map[int64]float64{}
	latOK := true
	for i, p := range procs {
		seen := false
		for _, s := range p {
			if s.Count <= 0 {
				continue
			}
			if !seen || s.Sec < first[i] {
				first[i] = s.Sec
			}
			if !seen || s.Sec > last[i] {
				last[i] = s.Sec
			}
			seen = true
			per[s.Sec] += s.Count
			lat[s.Sec] += s.SumLatUS
			latOK = latOK && s.HasLatSum
		}
		if !seen {
			return Window{}, false
		}
	}
	return bestWindow(first, last, per, lat, latOK)
}

func bestWindow(first, last []int64, per map[int64]int64, lat map[int64]float64, latOK bool) (Window, bool) {
	lo, hi := first[0], last[0]
	for i := range first {
		lo, hi = min(lo, first[i]), max(hi, last[i])
	}
	for _, q := range []int{90, 50} {
		need := (q*len(first) + 99) / 100 // ceil(q% of the processes)
		var sum int64
		var sumLat float64
		secs := 0
		for t := lo; t <= hi; t++ {
			active := 0
			for i := range first {
				if first[i] < t && t < last[i] {
					active++
				}
			}
			if active >= need {
				sum += per[t]
				sumLat += lat[t]
				secs++
			}
		}
		if secs > 0 {
			w := Window{TPS: float64(sum) / float64(secs), Secs: secs, Quorum: q}
			if latOK && sum > 0 {
				ms := sumLat / float64(sum) / 1000
				w.LatencyMS = &ms
			}
			return w, true
		}
	}
	return Window{}, false
}

// KV reads a line of space-separated key=value pairs.
func KV(line string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

// LineWithPrefix returns the first line of out that starts with prefix.
func LineWithPrefix(out, prefix string) (string, bool) {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line, true
		}
	}
	return "", false
}

// Head returns the first n lines of out.
func Head(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
