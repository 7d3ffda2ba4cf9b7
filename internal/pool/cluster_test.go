package pool

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
)

// TestClusterPools: the same database and role on two clusters are two
// pools, each with its own max_db_connections budget, and each reports its
// cluster.
func TestClusterPools(t *testing.T) {
	t.Parallel()
	set := newSet(t, 1)
	lim := Limits{Size: 5, WaitTimeout: 200 * time.Millisecond}
	a := set.Get(Key{Cluster: "c1", Database: "postgres", Role: "r"}, dialer(t, "postgres"), lim)
	b := set.Get(Key{Cluster: "c2", Database: "postgres", Role: "r"}, dialer(t, "postgres"), lim)
	if a == b {
		t.Fatal("one pool for two clusters")
	}
	ca, cb := acquire(t, a), acquire(t, b) // one slot of "postgres" on each cluster
	defer a.Release(ca, true)
	defer b.Release(cb, true)
	if _, err := a.Acquire(ctx(t)); !errors.Is(err, ErrWaitTimeout) {
		t.Errorf("a second connection of c1/postgres: %v, want the wait timeout (max_db_connections per cluster)", err)
	}
	seen := map[string]bool{}
	for _, st := range set.Stats() {
		seen[st.Cluster] = st.Open == 1
	}
	if !seen["c1"] || !seen["c2"] {
		t.Errorf("stats per cluster: %v (%+v)", seen, set.Stats())
	}
	for _, sv := range set.Servers() {
		if sv.Cluster != "c1" && sv.Cluster != "c2" {
			t.Errorf("server without its cluster: %+v", sv)
		}
	}
	if k := b.Key(); k != (Key{Cluster: "c2", Database: "postgres", Role: "r"}) {
		t.Errorf("Key() = %+v", k)
	}
}

// TestJoinKeepsDialer: a client joining an existing pool from another
// cluster's login does not replace the pool's dialer; Get does.
func TestJoinKeepsDialer(t *testing.T) {
	t.Parallel()
	set := newSet(t, 0)
	key := Key{Cluster: "c1", Database: "postgres", Role: "j"}
	lim := Limits{Size: 2, WaitTimeout: 5 * time.Second}
	broken := func(context.Context) (*backend.Conn, error) { return nil, errors.New("credentials of another cluster") }
	p := set.Get(key, dialer(t, "postgres"), lim)
	if q := set.Join(key, broken, lim); q != p {
		t.Fatal("Join made a second pool")
	}
	c := acquire(t, p) // dials with the first dialer
	p.Release(c, false)
	// Join on a new key creates the pool with its dialer.
	fresh := set.Join(Key{Cluster: "c2", Database: "postgres", Role: "j"}, broken, lim)
	if _, err := fresh.Acquire(ctx(t)); err == nil {
		t.Error("a new pool did not use the joining client's dialer")
	}
	set.Get(key, broken, lim)
	if _, err := p.Acquire(ctx(t)); err == nil {
		t.Error("Get did not replace the dialer")
	}
}
