package routing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// Move phases, as the writers see them when a transaction starts and when
// its commit is acknowledged.
const (
	phaseBefore   = iota // before MOVE ... PAUSE returned
	phasePaused          // PAUSE returned; the data is being copied
	phaseSwitched        // SWITCH returned
)

// write is one acknowledged commit of a writer.
type write struct {
	client, seq      int
	startPh, ackedPh int32
}

// writer runs write transactions for one tenant connection until stop is
// closed: BEGIN, INSERT its next row, read back how many rows it has
// written (all of them must be visible: the copied ones after a move
// too), COMMIT. Every acknowledged commit is recorded; every failure too.
type writer struct {
	id       int
	conn     *pgx.Conn
	phase    *atomic.Int32
	acked    []write // the writer's goroutine only, until it ends
	failures []error // likewise
	commits  atomic.Int64
	failed   atomic.Int64
}

func (w *writer) run(ctx context.Context, stop <-chan struct{}) {
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		start := w.phase.Load()
		if err := w.transaction(ctx, seq); err != nil {
			w.failures = append(w.failures, fmt.Errorf("client %d seq %d (phase %d): %w", w.id, seq, start, err))
			w.failed.Add(1)
			return // the sequence would no longer match what is stored
		}
		w.acked = append(w.acked, write{client: w.id, seq: seq, startPh: start, ackedPh: w.phase.Load()})
		w.commits.Add(1)
	}
}

func (w *writer) transaction(ctx context.Context, seq int) error {
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, "INSERT INTO ledger (client, seq, note) VALUES ($1, $2, 'write')", w.id, seq); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM ledger WHERE client = $1", w.id).Scan(&n); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	if n != seq {
		return fmt.Errorf("the tenant sees %d of its %d rows", n, seq)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// keys reads the (client, seq) of tenant's written rows on a cluster, as
// superuser (past RLS).
func keys(t *testing.T, conn *pgx.Conn, tenant string) map[[2]int]bool {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT client, seq FROM ledger WHERE tenant_id = $1 AND client > 0", tenant)
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]int]bool{}
	for rows.Next() {
		var k [2]int
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			t.Fatal(err)
		}
		out[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// copyTenant copies tenant's rows from one cluster to another, as an
// operator's tool would while the tenant is paused.
func copyTenant(t *testing.T, from, to *pgx.Conn, tenant string) int64 {
	t.Helper()
	ctx := testCtx(t)
	rows, err := from.Query(ctx, "SELECT tenant_id, client, seq, note FROM ledger WHERE tenant_id = $1 AND client > 0", tenant)
	if err != nil {
		t.Fatal(err)
	}
	data, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatal(err)
	}
	n, err := to.CopyFrom(ctx, pgx.Identifier{"ledger"}, []string{"tenant_id", "client", "seq", "note"}, pgx.CopyFromRows(data))
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	return n
}

// TestMoveUnderLoad moves tenant acme from the default cluster to c2
// while four transaction-mode clients of acme commit write transactions
// continuously through the proxy, and a client of globex (which stays)
// does too. Between MOVE ... PAUSE and MOVE ... SWITCH the test copies
// acme's rows to c2. It asserts that no transaction failed, that every
// acknowledged acme commit is on c2, that the default cluster holds
// exactly the acme rows it had when PAUSE returned (so nothing was
// written there after the pause, let alone after the switch), that each
// client saw all its earlier rows in every transaction (so transactions
// after the switch ran on c2, after the copy), and that globex went on
// committing while acme was paused.
func TestMoveUnderLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.DefaultPoolSize = 4
	})
	ctx := testCtx(t)
	oldC, newC := clusters[0].Connect(t, e.db), clusters[1].Connect(t, e.db)
	var phase atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var acme []*writer
	for i := 1; i <= 4; i++ {
		w := &writer{id: i, conn: e.connect(t, "app_user.acme"), phase: &phase}
		acme = append(acme, w)
	}
	globex := &writer{id: 100, conn: e.connect(t, "app_user.globex"), phase: &phase}
	for _, w := range append(slices.Clone(acme), globex) {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, stop) }()
	}
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopAll()
	total := func() int64 {
		var n int64
		for _, w := range acme {
			n += w.commits.Load()
		}
		return n
	}
	failed := func() bool {
		for _, w := range append(slices.Clone(acme), globex) {
			if w.failed.Load() > 0 {
				return true
			}
		}
		return false
	}
	waitUntil(t, 60*time.Second, "200 acme commits before the move", func() bool { return total() >= 200 || failed() })

	con := e.console(t)
	res := show(t, con, "MOVE TENANT acme TO c2 PAUSE")
	phase.Store(phasePaused)
	if len(res) != 1 || res[0]["state"] != "paused" || res[0]["from"] != "default" || res[0]["to"] != "c2" {
		t.Fatalf("MOVE ... PAUSE = %v", res)
	}
	// The rows on the old cluster now are every acme commit before the
	// pause (a writer may count its last one a moment later).
	snapshot := keys(t, oldC, "acme")
	if routes := show(t, con, "SHOW ROUTES"); len(routes) == 0 || routes[0]["source"] != "move" || !strings.HasPrefix(routes[0]["state"], "paused since") {
		t.Errorf("SHOW ROUTES while paused: %v", routes)
	}
	// Only acme is paused: globex commits meanwhile.
	globexAtPause := globex.commits.Load()
	waitUntil(t, 30*time.Second, "a globex commit while acme is paused", func() bool { return globex.commits.Load() > globexAtPause || failed() })
	copied := copyTenant(t, oldC, newC, "acme")
	if int(copied) != len(snapshot) {
		t.Fatalf("copied %d rows, the pause snapshot has %d", copied, len(snapshot))
	}
	if during := len(keys(t, oldC, "acme")) - len(snapshot); during != 0 {
		t.Errorf("acme committed %d transactions on the default cluster while paused", during)
	}
	res = show(t, con, "MOVE TENANT acme TO c2 SWITCH")
	phase.Store(phaseSwitched)
	if len(res) != 1 || res[0]["state"] != "switched" || res[0]["closed"] != "0" {
		t.Fatalf("MOVE ... SWITCH = %v", res)
	}
	atSwitch := total()
	waitUntil(t, 60*time.Second, "200 acme commits after the switch", func() bool { return total() >= atSwitch+200 || failed() })
	stopAll()

	var failures []error
	var acked []write
	for _, w := range append(slices.Clone(acme), globex) {
		failures = append(failures, w.failures...)
	}
	for _, w := range acme {
		acked = append(acked, w.acked...)
	}
	if len(failures) > 0 {
		t.Fatalf("%d failed transactions, want 0: %v", len(failures), errors.Join(failures...))
	}
	onNew, onOld := keys(t, newC, "acme"), keys(t, oldC, "acme")
	afterSwitch := 0
	for _, w := range acked {
		k := [2]int{w.client, w.seq}
		if !onNew[k] {
			t.Errorf("acknowledged write %v (started in phase %d) is not on c2", k, w.startPh)
		}
		if w.startPh == phaseSwitched {
			afterSwitch++
			if onOld[k] {
				t.Errorf("write %v, started after the switch, is on the default cluster", k)
			}
		}
	}
	if len(onOld) != len(snapshot) {
		t.Errorf("the default cluster holds %d acme rows, %d when PAUSE returned: written to after the pause", len(onOld), len(snapshot))
	}
	for k := range onOld {
		if !snapshot[k] {
			t.Errorf("row %v appeared on the default cluster after the pause", k)
		}
	}
	if len(onNew) != len(acked) {
		t.Errorf("c2 holds %d acme rows, %d commits were acknowledged", len(onNew), len(acked))
	}
	if afterSwitch < 100 {
		t.Errorf("only %d transactions started after the switch", afterSwitch)
	}
	t.Logf("acme: %d commits before the pause, 0 while paused, %d after the switch (%d started after SWITCH returned); "+
		"globex: %d commits; failed: %d; rows copied: %d",
		len(snapshot), len(acked)-len(snapshot), afterSwitch, globex.commits.Load(), len(failures), copied)

	// The console shows acme's pool and clients on c2 now.
	for _, r := range show(t, con, "SHOW CLIENTS") {
		if r["tenant"] == "acme" && r["cluster"] != "c2" {
			t.Errorf("SHOW CLIENTS after the move: %v", r)
		}
	}
	if routes := show(t, con, "SHOW ROUTES"); len(routes) == 0 || routes[0]["match"] != "acme" || routes[0]["source"] != "override" || routes[0]["cluster"] != "c2" {
		t.Errorf("SHOW ROUTES after the move: %v", routes)
	}
}

// TestMoveTimeoutReportsAndSessions: PAUSE reports the transaction still
// open when tenant_move_timeout passes and keeps the tenant paused; the
// open transaction commits (on the old cluster, before the switch); a
// session-mode connection of the tenant is ended at the switch with
// 57P01, and a new one reaches the new cluster. A RELOAD that does not
// route the tenant keeps the override; one that routes it there too
// absorbs it.
func TestMoveTimeoutReportsAndSessions(t *testing.T) {
	t.Parallel()
	var cfg *config.Config
	e := newEnv(t, func(c *config.Config) {
		c.TenantMoveTimeout = 300 * time.Millisecond
		cfg = c
	})
	ctx := testCtx(t)
	sess := e.connect(t, "app_user.big-corp")
	if got := where(t, sess); !slices.Equal(got, []string{"default"}) {
		t.Fatalf("big-corp starts on %v", got)
	}
	open := e.connect(t, "app_user.big-corp")
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO ledger (client, seq, note) VALUES (7, 1, 'open')"); err != nil {
		t.Fatal(err)
	}
	con := e.console(t)
	_, err = con.Exec(ctx, "MOVE TENANT big-corp TO c3 PAUSE")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "55006" || !strings.Contains(pe.Message, `tenant "big-corp" still has 1 client(s)`) ||
		!strings.Contains(pe.Detail, "idle_in_transaction on cluster default") || !strings.Contains(pe.Hint, "RESUME TENANT big-corp") {
		t.Fatalf("PAUSE with an open transaction: %v (%+v)", err, pe)
	}
	// The open transaction finishes; a new login of the tenant waits.
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit of the open transaction during the pause: %v", err)
	}
	if res := show(t, con, "MOVE TENANT big-corp TO c3 PAUSE"); len(res) != 1 || res[0]["state"] != "paused" || res[0]["from"] != "default" {
		t.Fatalf("PAUSE again once the transaction ended: %v", res)
	}
	late := make(chan error, 1)
	go func() {
		conn, err := e.tryConnect(t, "app_user.big-corp", proxytest.AppUserPassword)
		if err == nil {
			var got []string
			got, err = whereErr(conn)
			if err == nil && !slices.Equal(got, []string{"c3"}) {
				err = fmt.Errorf("a login that waited for the move reached %v", got)
			}
		}
		late <- err
	}()
	waitUntil(t, 10*time.Second, "the late login to wait", func() bool {
		for _, r := range show(t, con, "SHOW CLIENTS") {
			if r["state"] == "waiting" && r["tenant"] == "big-corp" {
				return true
			}
		}
		return false
	})
	res := show(t, con, "MOVE TENANT big-corp TO c3 SWITCH")
	if len(res) != 1 || res[0]["state"] != "switched" || res[0]["closed"] != "2" {
		t.Fatalf("SWITCH = %v (want both session connections closed)", res)
	}
	if err := <-late; err != nil {
		t.Fatalf("login during the move: %v", err)
	}
	var n int
	err = sess.QueryRow(ctx, "SELECT count(*) FROM ledger").Scan(&n)
	if !errors.As(err, &pe) || pe.Code != "57P01" || pe.Message != `terminating connection: tenant "big-corp" moved to cluster "c3"` {
		t.Fatalf("session connection after the switch: %v", err)
	}
	var onOld int
	if err := clusters[0].Connect(t, e.db).QueryRow(ctx, "SELECT count(*) FROM ledger WHERE client = 7").Scan(&onOld); err != nil || onOld != 1 {
		t.Errorf("the transaction open at the pause committed %d rows on the default cluster (%v), want 1", onOld, err)
	}

	// RELOAD: an unrelated change keeps the override, agreeing rules absorb it.
	next := cfg.Clone()
	next.TenantRoutes = []string{"acme:c2"}
	if _, err := e.proxy.Server.Reload(next); err != nil {
		t.Fatal(err)
	}
	if got := where(t, e.connect(t, "app_user.big-corp")); !slices.Equal(got, []string{"c3"}) {
		t.Errorf("after a reload big-corp reached %v, want [c3] (the override stays)", got)
	}
	next = next.Clone()
	next.TenantRoutes = []string{"acme:c2", "big-*:c3"}
	if _, err := e.proxy.Server.Reload(next); err != nil {
		t.Fatal(err)
	}
	routes := show(t, con, "SHOW ROUTES")
	if len(routes) == 0 || routes[0]["source"] != "tenant_routes" {
		t.Errorf("SHOW ROUTES after a reload that agrees: %v (the override should be gone)", routes)
	}
}

func whereErr(conn *pgx.Conn) ([]string, error) {
	rows, err := conn.Query(context.Background(), "SELECT note FROM ledger WHERE client = 0 ORDER BY note")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// TestResumeTenantCallsMoveOff: RESUME TENANT lifts the pause without
// switching, and the tenant's waiting transaction runs where it was.
func TestResumeTenantCallsMoveOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.PoolMode = "transaction" })
	conn := e.connect(t, "app_user.acme")
	where(t, conn)
	con := e.console(t)
	show(t, con, "MOVE TENANT acme TO c2 PAUSE")
	done := make(chan []string, 1)
	go func() {
		got, err := whereErr(conn)
		if err != nil {
			got = []string{err.Error()}
		}
		done <- got
	}()
	waitUntil(t, 10*time.Second, "the transaction to wait", func() bool {
		for _, r := range show(t, con, "SHOW CLIENTS") {
			if r["state"] == "waiting" && r["tenant"] == "acme" {
				return true
			}
		}
		return false
	})
	if _, err := con.Exec(testCtx(t), "RESUME TENANT acme"); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !slices.Equal(got, []string{"default"}) {
		t.Errorf("after RESUME TENANT acme's transaction reached %v, want [default]", got)
	}
	if _, err := con.Exec(testCtx(t), "RESUME TENANT acme"); pgCode(err) != "55000" {
		t.Errorf("RESUME TENANT twice: %v", err)
	}
}

// TestMoveWithServerPassword: a tenant role whose verifier differs between
// the clusters (another password on each) moves with the server_password
// configured for it: SCRAM passthrough keys from the old cluster's
// verifier could not log in on the new one.
func TestMoveWithServerPassword(t *testing.T) {
	t.Parallel()
	role := uniqueName("tr")
	ctx := testCtx(t)
	for i, pg := range clusters {
		if err := pg.Exec(ctx, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw-%s'", role, clusterNames[i])); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = pg.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+role)
		})
	}
	e := newEnv(t, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantRoles = []string{"app_user", role}
		c.ServerPassword = map[string]string{role: "pw-c3"}
	})
	for _, pg := range clusters {
		conn := pg.Connect(t, e.db)
		if err := mgsql.Init(ctx, conn, mgsql.Options{TenantRoles: []string{"app_user", role}, AuthPassword: proxytest.AuthPassword, Harden: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "SELECT multigres_protect('ledger', 'tenant_id')"); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := e.tryConnect(t, role+".acme", "pw-default")
	if err != nil {
		t.Fatal(err)
	}
	if got := where(t, conn); !slices.Equal(got, []string{"default"}) {
		t.Fatalf("before the move: %v", got)
	}
	show(t, e.console(t), "MOVE TENANT acme TO c3")
	if got := where(t, conn); !slices.Equal(got, []string{"c3"}) {
		t.Errorf("after the move the client reached %v, want [c3]", got)
	}
}

// TestMoveWithContextSigning: with context_signing, each database on each
// cluster has its own signing key; a transaction-mode client that follows
// its tenant signs its context with the new cluster's key, or the readers
// there would see no context and the tenant no rows.
func TestMoveWithContextSigning(t *testing.T) {
	t.Parallel()
	e := newEnvInit(t, func(o *mgsql.Options) { o.ContextSigning = true }, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.ContextSigning = true
	})
	conn := e.connect(t, "app_user.acme")
	if got := where(t, conn); !slices.Equal(got, []string{"default"}) {
		t.Fatalf("before the move: %v", got)
	}
	show(t, e.console(t), "MOVE TENANT acme TO c2")
	if got := where(t, conn); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("after the move the client read %v, want [c2]", got)
	}
	if got := where(t, e.connect(t, "app_user.acme")); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("a new login read %v, want [c2]", got)
	}
}
