package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestFleetCancel: 30 clients connected through HAProxy each run
// pg_sleep(30); each is then cancelled with pgx's CancelRequest, which
// dials the balancer, so the request lands on any of the three processes.
// Every cancel stops its own query with 57014 within a bound and never
// anyone else's (a query that ends before its own cancel was sent fails
// the test), every client's session goes on afterwards, and the
// processes' counters show cancels forwarded between peers and none lost.
func TestFleetCancel(t *testing.T) {
	f := startFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	super, err := pgx.Connect(ctx, pg.SuperURL(f.db))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(context.Background())

	const clients = 30
	const sleep = "SELECT pg_sleep(30)"
	conns := make([]*pgx.Conn, clients)
	perPeer := map[int]int{}
	for i := range conns {
		c, err := f.connect(ctx, fmt.Sprintf("app_user.c%d", i))
		if err != nil {
			t.Fatalf("client %d: connect through the balancer: %v", i, err)
		}
		defer c.Close(context.Background())
		conns[i] = c
		perPeer[peerOf(c)]++
	}
	// Round robin spread the clients over the three processes, and each
	// key names the process that issued it.
	for _, p := range f.procs {
		if perPeer[p.id] == 0 {
			t.Fatalf("no client reached peer %d (clients per peer id: %v)", p.id, perPeer)
		}
	}
	if len(perPeer) != fleetSize {
		t.Fatalf("cancel keys name peer ids %v, want only 1..%d", perPeer, fleetSize)
	}

	// sent[i] is closed just before client i's cancel is sent; a query
	// that ends while it is open was cancelled by someone else's request.
	sent := make([]chan struct{}, clients)
	ended := make([]chan error, clients)
	var early sync.Map // client → its error, for queries that ended before their cancel
	// On the way out (a failure included) the queries still running are
	// abandoned before their connections close.
	qctx, qcancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	defer func() { qcancel(); running.Wait() }()
	for i, c := range conns {
		sent[i], ended[i] = make(chan struct{}), make(chan error, 1)
		running.Add(1)
		go func() {
			defer running.Done()
			_, err := c.Exec(qctx, sleep)
			select {
			case <-sent[i]:
			default:
				early.Store(i, err)
			}
			ended[i] <- err
		}()
	}
	waitUntil(t, 20*time.Second, fmt.Sprintf("%d sleeps to run", clients), func() (bool, error) {
		var n int
		err := super.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query = $2",
			f.db, sleep).Scan(&n)
		return n == clients, err
	})

	seed := time.Now().UnixNano()
	order := rand.New(rand.NewPCG(uint64(seed), 0)).Perm(clients)
	t.Logf("cancel order (seed %d): %v", seed, order)
	for k, i := range order {
		close(sent[i])
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := conns[i].PgConn().CancelRequest(cctx)
		ccancel()
		if err != nil {
			t.Fatalf("cancel %d (client %d): %v", k, i, err)
		}
		select {
		case err := <-ended[i]:
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "57014" {
				t.Fatalf("cancel %d (client %d on peer %d): query ended with %v, want 57014", k, i, peerOf(conns[i]), err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("cancel %d (client %d on peer %d): query still running 5 s after its cancel", k, i, peerOf(conns[i]))
		}
		early.Range(func(j, err any) bool {
			t.Fatalf("client %d's query ended before its own cancel was sent (after cancel %d, for client %d): %v", j, k, i, err)
			return false
		})
	}
	// The sessions survive, each still its own tenant.
	for i, c := range conns {
		var tenant string
		if err := c.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&tenant); err != nil || tenant != fmt.Sprintf("c%d", i) {
			t.Fatalf("client %d after its cancel: tenant %q, %v", i, tenant, err)
		}
	}

	// Each cancel was served once by the process that issued the key; the
	// ones that landed elsewhere went there in one forward.
	local, _ := f.metric(t, `multigres_cancels_total{forwarded="true"}`)
	forwarded, byPeer := f.metric(t, `multigres_peer_cancel_forwards_total{result="ok"}`)
	t.Logf("cancels served by the issuing process: %v; forwarded between peers: %v (from each peer: %v)", local, forwarded, byPeer)
	if local != clients {
		t.Errorf("cancels served by their issuing process: %v, want %d", local, clients)
	}
	if forwarded < 1 || forwarded > clients {
		t.Errorf("forwarded cancels: %v, want 1..%d (round robin sends most cancels to another process)", forwarded, clients)
	}
	for _, result := range []string{"failed", "dropped", "unknown_peer"} {
		if n, _ := f.metric(t, `multigres_peer_cancel_forwards_total{result="`+result+`"}`); n != 0 {
			t.Errorf("forwards %s: %v, want 0", result, n)
		}
	}
	if n, _ := f.metric(t, `multigres_cancels_total{forwarded="false"}`); n != 0 {
		t.Errorf("cancels that matched no query: %v, want 0", n)
	}
}
