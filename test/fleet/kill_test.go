package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// writer is one client committing numbered rows through the balancer,
// reconnecting whenever its connection fails.
type writer struct {
	id     int
	peer   atomic.Int64 // peer id of the current connection; 0 when none
	errors atomic.Int64 // failed connects, statements and commits
	mu     sync.Mutex
	acked  []int // seqs whose COMMIT succeeded
}

func (w *writer) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// run commits one row per transaction until ctx ends. A row counts as
// acknowledged only when its COMMIT returned success; a failure leaves
// the row in doubt (it may or may not have committed) and the seq is not
// reused.
func (w *writer) run(ctx context.Context, f *fleet) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	fail := func() {
		w.errors.Add(1)
		w.peer.Store(0)
		if conn != nil {
			conn.Close(context.Background())
			conn = nil
		}
	}
	for seq := 1; ctx.Err() == nil; seq++ {
		if conn == nil {
			c, err := f.connect(ctx, fmt.Sprintf("app_user.w%d", w.id))
			if err != nil {
				fail()
				// Back off a little: a refused connection fails at once.
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			conn = c
			w.peer.Store(int64(peerOf(c)))
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			fail()
			continue
		}
		if _, err := tx.Exec(ctx, "INSERT INTO fleet_commits (tenant_id, writer, seq) VALUES (current_tenant_id(), $1, $2)", w.id, seq); err != nil {
			_ = tx.Rollback(context.Background())
			fail()
			continue
		}
		if err := tx.Commit(ctx); err != nil {
			fail()
			continue
		}
		w.mu.Lock()
		w.acked = append(w.acked, seq)
		w.mu.Unlock()
	}
}

// TestFleetKillUnderLoad: writers commit through HAProxy; the process
// serving the first writer is killed with SIGKILL. Every commit a writer
// was told succeeded is in the table afterwards, HAProxy's health check
// takes the dead process out, and every writer, those cut off included,
// reconnects through the other two and goes on committing.
func TestFleetKillUnderLoad(t *testing.T) {
	f := startFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := pg.Exec(ctx, f.db, `
		CREATE TABLE fleet_commits (tenant_id text NOT NULL, writer int NOT NULL, seq int NOT NULL, PRIMARY KEY (writer, seq));
		SELECT multigres_protect('fleet_commits', 'tenant_id');`); err != nil {
		t.Fatal(err)
	}

	const writers = 6
	ws := make([]*writer, writers)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stopped := false
	stopWriters := func() {
		if !stopped {
			stopped = true
			stop()
			wg.Wait()
		}
	}
	defer stopWriters()
	for i := range ws {
		ws[i] = &writer{id: i}
		wg.Add(1)
		go func() { defer wg.Done(); ws[i].run(wctx, f) }()
	}
	everyWriterPast := func(want []int) func() (bool, error) {
		return func() (bool, error) {
			for i, w := range ws {
				if w.ackedCount() < want[i] {
					return false, nil
				}
			}
			return true, nil
		}
	}
	waitUntil(t, 30*time.Second, "every writer to commit 20 rows", everyWriterPast(slices.Repeat([]int{20}, writers)))

	// Kill the process serving writer 0, with every writer connected.
	var victim *proc
	waitUntil(t, 10*time.Second, "every writer to be connected", func() (bool, error) {
		for _, w := range ws {
			if w.peer.Load() == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	id := int(ws[0].peer.Load())
	for _, p := range f.procs {
		if p.id == id {
			victim = p
		}
	}
	if victim == nil {
		t.Fatalf("writer 0 is on peer %d, not one of the fleet", id)
	}
	var cut []int // writers on the victim at the kill
	for i, w := range ws {
		if int(w.peer.Load()) == victim.id {
			cut = append(cut, i)
		}
	}
	before := make([]int, writers)
	errsBefore := make([]int64, writers)
	for i, w := range ws {
		before[i] = w.ackedCount()
		errsBefore[i] = w.errors.Load()
	}
	t.Logf("killing peer %d, which serves writers %v", victim.id, cut)
	victim.kill(t)

	waitUntil(t, 10*time.Second, fmt.Sprintf("HAProxy to mark peer %d down", victim.id), func() (bool, error) {
		st, err := f.serverStatus()
		return err == nil && strings.HasPrefix(st[victim.id], "DOWN"), nil
	})
	after := make([]int, writers)
	for i := range after {
		after[i] = before[i] + 20
	}
	waitUntil(t, 30*time.Second, "every writer to commit 20 more rows through the other processes", everyWriterPast(after))
	for _, i := range cut {
		if ws[i].errors.Load() == errsBefore[i] {
			t.Errorf("writer %d was on the killed process but saw no error", i)
		}
		if p := int(ws[i].peer.Load()); p == victim.id {
			t.Errorf("writer %d still on the killed peer %d", i, p)
		}
	}
	stopWriters()

	// Every acknowledged commit is there.
	super, err := pgx.Connect(ctx, pg.SuperURL(f.db))
	if err != nil {
		t.Fatal(err)
	}
	defer super.Close(context.Background())
	rows, err := super.Query(ctx, "SELECT writer, seq, tenant_id FROM fleet_commits")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]int]bool{}
	for rows.Next() {
		var w, seq int
		var tenant string
		if err := rows.Scan(&w, &seq, &tenant); err != nil {
			t.Fatal(err)
		}
		if tenant != fmt.Sprintf("w%d", w) {
			t.Errorf("row (%d, %d) has tenant %q", w, seq, tenant)
		}
		stored[[2]int{w, seq}] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	acked, lost := 0, 0
	for _, w := range ws {
		for _, seq := range w.acked {
			acked++
			if !stored[[2]int{w.id, seq}] {
				lost++
				if lost <= 10 {
					t.Errorf("writer %d: acknowledged commit of seq %d is not in the table", w.id, seq)
				}
			}
		}
	}
	var errs int64
	for _, w := range ws {
		errs += w.errors.Load()
	}
	t.Logf("%d commits acknowledged, %d rows stored, %d lost; %d client errors (the kill)", acked, len(stored), lost, errs)
	if lost > 0 {
		t.Fatalf("%d acknowledged commits lost", lost)
	}
}
