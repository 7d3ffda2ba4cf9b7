package frontend

import (
	"testing"
	"time"
)

// TestConsoleCountersAllocationFree: the server's own per-connection
// Session (and the tee with a hook's) allocates nothing per query, and the
// counters add up.
//
// Not parallel: AllocsPerRun refuses to run in parallel tests.
func TestConsoleCountersAllocationFree(t *testing.T) {
	s := &Server{}
	c := &clientConn{srv: s}
	st := s.adm.agg.open(c, SessionInfo{Database: "db", Role: "app_user", Tenant: "acme"})
	var sess Session = teeSession{st, st}
	allocs := testing.AllocsPerRun(100, func() {
		sess.State(StateIdle, StateActive)
		sess.Query(time.Millisecond)
		sess.Transaction(2 * time.Millisecond)
		sess.Error()
	})
	if allocs != 0 {
		t.Errorf("allocations per query: %v", allocs)
	}
	stats := s.Stats()
	if len(stats) != 1 || stats[0].Queries != 202 || stats[0].Xacts != 202 || stats[0].QueryTime != 202*time.Millisecond {
		t.Errorf("Stats = %+v", stats) // AllocsPerRun runs once more to warm up
	}
	tenants := s.Tenants()
	if len(tenants) != 1 || tenants[0].Tenant != "acme" || tenants[0].Connections != 1 || tenants[0].Errors != 202 {
		t.Errorf("Tenants = %+v", tenants)
	}
	st.State(StateIdle, StateClosed)
	if got := s.Tenants()[0].Connections; got != 0 {
		t.Errorf("connections after close = %d", got)
	}
}
