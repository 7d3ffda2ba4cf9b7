package metrics_test

import (
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/metrics"
)

// TestHotPathAllocationFree: the hooks the relay calls per query and per
// state change allocate nothing (their label values are resolved once per
// connection), and the gauges balance.
//
// Not parallel: AllocsPerRun refuses to run in parallel tests.
func TestHotPathAllocationFree(t *testing.T) {
	m := metrics.New(10)
	h := m.Hooks()
	s := h.Session(frontend.SessionInfo{ID: 1, Database: "db", Role: "app_user", Tenant: "acme"})
	h.ConnState(1, frontend.StateNew, frontend.StateStartup)
	h.ConnState(1, frontend.StateStartup, frontend.StateIdle)
	s.Connected(time.Millisecond)
	s.State(frontend.StateConnecting, frontend.StateIdle)
	allocs := testing.AllocsPerRun(1000, func() {
		h.ConnState(1, frontend.StateIdle, frontend.StateActive)
		s.State(frontend.StateIdle, frontend.StateActive)
		s.Query(time.Millisecond)
		s.Transaction(2 * time.Millisecond)
		s.Error()
		h.ConnState(1, frontend.StateActive, frontend.StateIdle)
		s.State(frontend.StateActive, frontend.StateIdle)
		h.Cancel(true)
	})
	if allocs != 0 {
		t.Errorf("hot-path hooks allocate %v times per run, want 0", allocs)
	}
	s.State(frontend.StateIdle, frontend.StateClosed)
	h.ConnState(1, frontend.StateIdle, frontend.StateClosed)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		if mf.GetName() != "multigres_client_connections" && mf.GetName() != "multigres_server_connections" {
			continue
		}
		for _, metric := range mf.GetMetric() {
			seen++
			if v := metric.GetGauge().GetValue(); v != 0 {
				t.Errorf("%s %v = %v after close, want 0", mf.GetName(), metric.GetLabel(), v)
			}
		}
	}
	if seen != 9 { // 7 client states, active and idle of one pool
		t.Errorf("saw %d gauge series, want 9", seen)
	}
}
