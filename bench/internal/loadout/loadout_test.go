package loadout

import (
	"strings"
	"testing"
)

const okOutput = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 123456
number of failed transactions: 0 (0.000%)
latency average = 1.296 ms
initial connection time = 45.123 ms
tps = 12345.678901 (without initial connection time)
`

const reconnectOutput = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
number of transactions actually processed: 4700
latency average = 34.1 ms
average connection time = 2.101 ms
tps = 470.123 (including reconnection times)
`

func TestParsePgbench(t *testing.T) {
	s := ParsePgbench(okOutput)
	if !s.HasTPS || s.TPS != 12345.678901 || *s.LatencyMS != 1.296 || *s.ConnMS != 45.123 || *s.Processed != 123456 {
		t.Errorf("summary %+v", s)
	}
	s = ParsePgbench(reconnectOutput)
	if s.TPS != 470.123 || *s.ConnMS != 2.101 {
		t.Errorf("-C summary %+v", s)
	}
	if s := ParsePgbench("garbage"); s.HasTPS || s.LatencyMS != nil || s.Processed != nil {
		t.Errorf("garbage parsed as %+v", s)
	}
}

func TestPgbenchFailure(t *testing.T) {
	if got := PgbenchFailure(okOutput, 0, 10); got != "" {
		t.Errorf("a good run failed: %s", got)
	}
	none := strings.Replace(okOutput, "processed: 123456", "processed: 0", 1)
	if got := PgbenchFailure(none, 0, 13); !strings.HasPrefix(got, "no transactions") || !strings.Contains(got, "-T 13") {
		t.Errorf("zero transactions: %q", got)
	}
	refused := "pgbench: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused\n" +
		"pgbench: error: could not create connection for setup\n"
	if got := PgbenchFailure(refused, 0, 10); !strings.HasPrefix(got, "exit 0: pgbench: error: connection") {
		t.Errorf("an error printed with exit 0 must count as a failure: %q", got)
	}
	aborted := okOutput + "client 3 aborted in command 1 (SQL) of script 0; ERROR:  prepared statement \"P0_1\" does not exist\n"
	got := PgbenchFailure(aborted, 2, 10)
	if !strings.HasPrefix(got, "exit 2: client 3 aborted") || strings.Contains(got, "tps =") || strings.Contains(got, "scaling factor") {
		t.Errorf("aborted run: %q", got)
	}
}

func TestParseAgg(t *testing.T) {
	in := "1700000000 120 30000 9000000 100 900 0\n1700000001 130 26000 8000000 90 800 0\n\n"
	got, err := ParseAgg(strings.NewReader(in))
	if err != nil || len(got) != 2 || got[1] != (AggSample{1700000001, 130, 26000, true}) {
		t.Fatalf("ParseAgg: %v %+v", err, got)
	}
	if _, err := ParseAgg(strings.NewReader("x y\n")); err == nil {
		t.Error("a bad line must be an error")
	}
}

// agg builds a process log: count transactions (latency 1 ms each) in
// every second from..to.
func agg(from, to int64, count int64) []AggSample {
	var out []AggSample
	for s := from; s <= to; s++ {
		out = append(out, AggSample{Sec: s, Count: count, SumLatUS: float64(count) * 1000, HasLatSum: true})
	}
	return out
}

func TestWindowTPS(t *testing.T) {
	// Ten processes; the tenth starts late (second 5): seconds 1..9 have
	// the other nine running in between their first and last second, and
	// 9 of 10 is 90%. Running means strictly between first and last.
	var procs [][]AggSample
	for i := 0; i < 9; i++ {
		procs = append(procs, agg(0, 10, 100))
	}
	procs = append(procs, agg(5, 10, 100))
	w, ok := WindowTPS(procs)
	if !ok || w.Quorum != 90 || w.Secs != 9 || w.String() != "9s@90%" {
		t.Fatalf("window %+v ok=%v", w, ok)
	}
	// Seconds 1..4 carry 900 transactions, 5..9 carry 1000: the late
	// process counts from its first logged second on.
	if want := (4*900 + 5*1000) / 9.0; w.TPS != want {
		t.Errorf("TPS %v, want %v", w.TPS, want)
	}
	if w.LatencyMS == nil || *w.LatencyMS != 1 {
		t.Errorf("latency %v, want 1 ms", w.LatencyMS)
	}
}

func TestWindowTPSFallbacks(t *testing.T) {
	// Two processes that never overlap at 90% (both needed) but do at
	// 50% (one of two).
	w, ok := WindowTPS([][]AggSample{agg(0, 4, 10), agg(4, 8, 10)})
	if !ok || w.Quorum != 50 {
		t.Errorf("want a 50%% window, got %+v ok=%v", w, ok)
	}
	if _, ok := WindowTPS([][]AggSample{agg(0, 4, 10), {{Sec: 1, Count: 0}}}); ok {
		t.Error("a process without transactions has no window")
	}
	if _, ok := WindowTPS([][]AggSample{agg(0, 1, 10)}); ok {
		t.Error("a process with no second strictly inside its run has no window")
	}
	if _, ok := WindowTPS(nil); ok {
		t.Error("no processes, no window")
	}
}

func TestKVAndLines(t *testing.T) {
	out := "tenantload: starting\ntps=123.4 txns=1000 switched=1.0000 backends=8\n"
	line, ok := LineWithPrefix(out, "tps=")
	if !ok {
		t.Fatal("no tps= line")
	}
	kv := KV(line)
	if kv["tps"] != "123.4" || kv["backends"] != "8" || len(kv) != 4 {
		t.Errorf("KV %v", kv)
	}
	if _, ok := LineWithPrefix(out, "conns="); ok {
		t.Error("found a line that is not there")
	}
	if got := Head("a\nb\nc\n", 2); got != "a\nb" {
		t.Errorf("Head %q", got)
	}
}
