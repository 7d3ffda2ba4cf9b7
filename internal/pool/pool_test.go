package pool

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// dialer logs in to the shared throwaway cluster as its superuser.
func dialer(t *testing.T, db string) Dialer {
	t.Helper()
	pg := pgtest.Shared()
	return func(ctx context.Context) (*backend.Conn, error) {
		return backend.Dial(ctx, backend.DialOptions{Addr: pg.Addr(),
			Params:      []backend.Param{{Name: "user", Value: pg.User}, {Name: "database", Value: db}},
			Credentials: backend.Credentials{Password: pg.Password}})
	}
}

func newSet(t *testing.T, maxDB int) *Set {
	t.Helper()
	s := NewSet(maxDB)
	t.Cleanup(s.Close)
	return s
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func acquire(t *testing.T, p *Pool) *Conn {
	t.Helper()
	c, err := p.Acquire(ctx(t))
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	return c
}

// TestSizeAndHandoff: a full pool queues waiters in order and hands a
// released connection straight to the longest waiter.
func TestSizeAndHandoff(t *testing.T) {
	t.Parallel()
	p := newSet(t, 0).Get(Key{Database: "postgres", Role: "r1"}, dialer(t, "postgres"), Limits{Size: 2, WaitTimeout: 10 * time.Second})
	a, b := acquire(t, p), acquire(t, p)
	if a.PID == b.PID {
		t.Fatal("two clients got the same server connection")
	}
	got := make(chan *Conn, 2)
	for range 2 {
		go func() {
			c, err := p.Acquire(context.Background())
			if err != nil {
				t.Errorf("waiter: %v", err)
			}
			got <- c
		}()
	}
	waitFor(t, func() bool { return p.set.Stats()[0].Waits == 2 })
	p.Release(a, true)
	first := <-got
	if first.PID != a.PID {
		t.Fatalf("waiter got backend %d, want the released %d", first.PID, a.PID)
	}
	if st := p.set.Stats()[0]; st.Open != 2 || st.Waits != 1 {
		t.Fatalf("stats %+v, want 2 open, 1 waiting", st)
	}
	p.Release(b, true)
	p.Release(<-got, true)
	p.Release(first, true)
	if st := p.set.Stats()[0]; st.Open != 2 || st.Idle != 2 || st.Waits != 0 {
		t.Fatalf("stats %+v after all released", st)
	}
}

// TestWaitTimeoutAndReserve: a waiter gives up after WaitTimeout; with a
// reserve, it gets an extra connection after ReserveTimeout instead.
func TestWaitTimeoutAndReserve(t *testing.T) {
	t.Parallel()
	set := newSet(t, 0)
	p := set.Get(Key{Database: "postgres", Role: "r2"}, dialer(t, "postgres"), Limits{Size: 1, WaitTimeout: 200 * time.Millisecond})
	held := acquire(t, p)
	start := time.Now()
	if _, err := p.Acquire(ctx(t)); !errors.Is(err, ErrWaitTimeout) {
		t.Fatalf("got %v, want ErrWaitTimeout", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	p.Release(held, true)

	r := set.Get(Key{Database: "postgres", Role: "r3"}, dialer(t, "postgres"), Limits{Size: 1, ReserveSize: 1, ReserveTimeout: 50 * time.Millisecond, WaitTimeout: 5 * time.Second})
	a := acquire(t, r)
	b := acquire(t, r) // from the reserve
	if a.PID == b.PID {
		t.Fatal("reserve gave the held connection")
	}
	r.Release(a, true)
	r.Release(b, true)
}

// TestMaxDBConnections: pools of one database share max_db_connections; a
// connection closed in one pool lets a waiter of another dial.
func TestMaxDBConnections(t *testing.T) {
	t.Parallel()
	set := newSet(t, 1)
	p1 := set.Get(Key{Database: "postgres", Role: "a"}, dialer(t, "postgres"), Limits{Size: 5, WaitTimeout: 10 * time.Second})
	p2 := set.Get(Key{Database: "postgres", Role: "b"}, dialer(t, "postgres"), Limits{Size: 5, WaitTimeout: 10 * time.Second})
	c1 := acquire(t, p1)
	got := make(chan error, 1)
	go func() {
		c, err := p2.Acquire(context.Background())
		if err == nil {
			p2.Release(c, true)
		}
		got <- err
	}()
	waitFor(t, func() bool {
		for _, st := range set.Stats() {
			if st.Role == "b" && st.Waits == 1 {
				return true
			}
		}
		return false
	})
	p1.Release(c1, false) // closed: frees the database slot
	if err := <-got; err != nil {
		t.Fatalf("second pool: %v", err)
	}
}

// TestHealthCheckAndLifetime: a connection whose backend died is replaced
// by the check; one past its lifetime is closed on release; idle ones past
// IdleTimeout are reaped.
func TestHealthCheckAndLifetime(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	set := newSet(t, 0)
	p := set.Get(Key{Database: "postgres", Role: "h"}, dialer(t, "postgres"), Limits{Size: 1, WaitTimeout: 5 * time.Second, CheckDelay: 0})
	c := acquire(t, p)
	dead := c.PID
	p.Release(c, true)
	if err := pg.Exec(ctx(t), "postgres", "SELECT pg_terminate_backend($1::int)", int(dead)); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t, "postgres")
	waitFor(t, func() bool {
		var n int
		_ = conn.QueryRow(ctx(t), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int(dead)).Scan(&n)
		return n == 0
	})
	c = acquire(t, p)
	if c.PID == dead {
		t.Fatal("the check handed out a dead connection")
	}
	p.Release(c, true)

	l := set.Get(Key{Database: "postgres", Role: "l"}, dialer(t, "postgres"), Limits{Size: 1, Lifetime: time.Nanosecond, CheckDelay: time.Hour})
	c = acquire(t, l)
	l.Release(c, true)
	if st := statsOf(set, "l"); st.Open != 0 {
		t.Fatalf("connection past its lifetime kept: %+v", st)
	}

	i := set.Get(Key{Database: "postgres", Role: "i"}, dialer(t, "postgres"), Limits{Size: 2, IdleTimeout: 10 * time.Millisecond, CheckDelay: time.Hour})
	a, b := acquire(t, i), acquire(t, i)
	i.Release(a, true)
	i.Release(b, true)
	waitFor(t, func() bool { return statsOf(set, "i").Open == 0 })
}

func statsOf(s *Set, role string) Stats {
	for _, st := range s.Stats() {
		if st.Role == role {
			return st
		}
	}
	return Stats{}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		<-tick.C
	}
}
