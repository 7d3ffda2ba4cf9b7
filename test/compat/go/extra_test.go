package compat

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lib/pq"
)

// TestPgxPoolPerTenant is the guide's pool-per-tenant pattern with pgxpool:
// one small pool per tenant, many goroutines sharing each, every query
// seeing only its tenant's rows however connections are reused.
func TestPgxPoolPerTenant(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		pools := map[string]*pgxpool.Pool{}
		for _, tenant := range []string{"acme", "globex"} {
			cfg, err := pgxpool.ParseConfig(e.tenantURL(tenant))
			if err != nil {
				t.Fatalf("pool config: %v", err)
			}
			cfg.MaxConns = 3
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			if err != nil {
				t.Fatalf("pool for %s: %v", tenant, err)
			}
			t.Cleanup(pool.Close)
			pools[tenant] = pool
		}
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for tenant, pool := range pools {
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 5 {
						rows, err := pool.Query(ctx, "SELECT name FROM contacts WHERE id <= $1 ORDER BY name", int32(3+g+i))
						if err != nil {
							errs <- fmt.Errorf("%s: %w", tenant, err)
							return
						}
						got, err := pgx.CollectRows(rows, pgx.RowTo[string])
						if err != nil {
							errs <- fmt.Errorf("%s: %w", tenant, err)
							return
						}
						if !slices.Equal(got, seedNames[tenant]) {
							errs <- fmt.Errorf("%s sees %v through its pool", tenant, got)
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if st := pools["acme"].Stat(); st.TotalConns() > 3 || st.TotalConns() == 0 {
			t.Fatalf("acme's pool holds %d connections", st.TotalConns())
		}
	})
}

// TestPgxPrepareDeallocate: pgx's explicit named Prepare, used several times,
// then Deallocate (a protocol-level Close message) and DeallocateAll (the
// DEALLOCATE ALL statement); the server's pg_prepared_statements (read
// through multigres_audit.session_state, as hardening hides the view) follows,
// and the connection keeps working and stays scoped.
func TestPgxPrepareDeallocate(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		acme := pgxConnect(t, e.tenantURL("acme"), nil)
		// In session mode the client's statements are the server's; in
		// transaction mode the server's are renamed (mg_...) and shared, so
		// the client's view is which of its names still execute.
		prepared := func() int {
			t.Helper()
			if e.mode == "transaction" {
				n := 0
				for _, name := range []string{"by_id", "extra"} {
					if acme.PgConn().ExecPrepared(ctx, name, [][]byte{[]byte("1")}, nil, nil).Read().Err == nil {
						n++
					}
				}
				return n
			}
			var n int
			if err := acme.QueryRow(ctx, "SELECT count(*) FROM (SELECT name, detail AS statement FROM multigres_audit.session_state(NULL, NULL) WHERE kind = 'prepared') ps", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
				t.Fatalf("pg_prepared_statements: %v", err)
			}
			return n
		}
		if _, err := acme.Prepare(ctx, "by_id", "SELECT name FROM contacts WHERE id = $1"); err != nil {
			t.Fatalf("prepare: %v", err)
		}
		for _, id := range []int32{1, 2, 3, 1} {
			got, err := pgxClient(acme).query(ctx, "by_id", id)
			if err != nil {
				t.Fatalf("by_id %d: %v", id, err)
			}
			if want := map[int32][]string{1: {"Alice"}, 2: {"Bob"}}[id]; !slices.Equal(got, want) {
				t.Fatalf("by_id %d: %v, want %v", id, got, want)
			}
		}
		if n := prepared(); n != 1 {
			t.Fatalf("%d prepared statements after Prepare, want 1", n)
		}
		if err := acme.Deallocate(ctx, "by_id"); err != nil {
			t.Fatalf("deallocate: %v", err)
		}
		if n := prepared(); n != 0 {
			t.Fatalf("%d prepared statements after Deallocate, want 0", n)
		}
		checkIsolation(t, e, pgxClient(acme), "acme") // fills pgx's statement cache
		if _, err := acme.Prepare(ctx, "extra", "SELECT name FROM contacts WHERE id = $1"); err != nil {
			t.Fatalf("prepare: %v", err)
		}
		if n := prepared(); n == 0 {
			t.Fatal("the statement cache left nothing on the server")
		}
		if err := acme.DeallocateAll(ctx); err != nil {
			t.Fatalf("deallocate all: %v", err)
		}
		if n := prepared(); n != 0 {
			t.Fatalf("%d prepared statements after DeallocateAll, want 0", n)
		}
		checkIsolation(t, e, pgxClient(acme), "acme")
	})
}

// TestLibPQCopyIn: lib/pq's COPY FROM STDIN (a prepared "COPY ... FROM
// STDIN" in a transaction). As with pgx, PostgreSQL refuses COPY FROM into
// an RLS-protected table for the tenant (0A000); the bypass user copies.
func TestLibPQCopyIn(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		copyIn := func(db *sql.DB, rows [][2]string) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			defer func() { _ = tx.Rollback() }()
			stmt, err := tx.PrepareContext(ctx, "COPY contacts (tenant_id, name) FROM STDIN")
			if err != nil {
				return fmt.Errorf("prepare copy: %w", err)
			}
			for _, r := range rows {
				if _, err := stmt.ExecContext(ctx, r[0], r[1]); err != nil {
					return fmt.Errorf("copy row: %w", err)
				}
			}
			if _, err := stmt.ExecContext(ctx); err != nil {
				return fmt.Errorf("copy end: %w", err)
			}
			if err := stmt.Close(); err != nil {
				return fmt.Errorf("copy close: %w", err)
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			return nil
		}
		acme := openDB(t, "postgres", e.tenantURL("acme"))
		err := copyIn(acme, [][2]string{{"acme", "pq-copy"}})
		wantState(t, err, "0A000", "tenant lib/pq COPY FROM")
		checkIsolation(t, e, sqlClient(acme), "acme")

		admin := openDB(t, "postgres", e.bypassURL())
		if err := copyIn(admin, [][2]string{{"acme", "pq-copy-acme"}, {"globex", "pq-copy-globex"}}); err != nil {
			t.Fatalf("bypass lib/pq COPY FROM: %v", err)
		}
		got, err := sqlClient(acme).query(ctx, "SELECT name FROM contacts WHERE name LIKE 'pq-copy%'")
		if err != nil || !slices.Equal(got, []string{"pq-copy-acme"}) {
			t.Fatalf("acme sees copied rows %v, %v; want [pq-copy-acme]", got, err)
		}
	})
}

// TestLibPQListener: lib/pq's pq.Listener (its own connection, with
// reconnect logic). The bypass user listens through the proxy and receives
// a notification; a tenant's LISTEN is refused with 42501.
func TestLibPQListener(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		newListener := func(dsn string) *pq.Listener {
			l := pq.NewListener(dsn, 10*time.Millisecond, time.Second, nil)
			t.Cleanup(func() { _ = l.Close() })
			return l
		}
		// A tenant: pq.Listener would retry its failed LISTEN forever on
		// fresh connections (resync), so the refusal is read from the
		// single-connection pq.ListenerConn.
		lc, err := pq.NewListenerConn(e.tenantURL("acme"), make(chan *pq.Notification, 1))
		if err != nil {
			t.Fatalf("tenant ListenerConn: %v", err)
		}
		t.Cleanup(func() { _ = lc.Close() })
		_, err = lc.Listen("events")
		wantState(t, err, "42501", "tenant pq.ListenerConn.Listen")

		l := newListener(e.bypassURL())
		// Listen waits for the listener's connection and retries failures
		// forever, so it is bounded here (Close at cleanup ends it).
		listened := make(chan error, 1)
		go func() { listened <- l.Listen("events") }()
		select {
		case err := <-listened:
			if err != nil {
				t.Fatalf("bypass Listen: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("bypass Listen still waiting for a connection after 5 s")
		}
		admin := openDB(t, "postgres", e.bypassURL())
		if _, err := admin.ExecContext(ctx, "SELECT pg_notify('events', $1)", "through lib/pq"); err != nil {
			t.Fatalf("bypass pg_notify: %v", err)
		}
		select {
		case n := <-l.Notify:
			if n == nil || n.Channel != "events" || n.Extra != "through lib/pq" {
				t.Fatalf("notification %+v", n)
			}
		case <-ctx.Done():
			t.Fatal("no notification")
		case <-time.After(5 * time.Second):
			t.Fatal("no notification within 5 s")
		}
		if err := l.Ping(); err != nil {
			t.Fatalf("listener ping: %v", err)
		}
	})
}

// TestPgxLargeData: results and parameters far larger than one network
// buffer cross the proxy intact, in the simple and the extended protocol:
// a 30 000-row result, a 1 MB value out and a 1 MB bind parameter in.
func TestPgxLargeData(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		for _, m := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			ctx := testCtx(t)
			acme := pgxConnect(t, e.tenantURL("acme"), withExecMode(m))
			rows, err := acme.Query(ctx, "SELECT g FROM generate_series(1, 30000) g")
			if err != nil {
				t.Fatalf("%v: series: %v", m, err)
			}
			nums, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil || len(nums) != 30000 || nums[29999] != 30000 {
				t.Fatalf("%v: series gave %d rows, %v", m, len(nums), err)
			}
			var out string
			if err := acme.QueryRow(ctx, "SELECT repeat('x', 1 << 20)").Scan(&out); err != nil || len(out) != 1<<20 {
				t.Fatalf("%v: 1 MB value: %d bytes, %v", m, len(out), err)
			}
			if m == pgx.QueryExecModeSimpleProtocol {
				continue // pgx would inline the parameter into the SQL text
			}
			big := strings.Repeat("y", 1<<20)
			var id int32
			if err := acme.QueryRow(ctx, "INSERT INTO contacts (tenant_id, name, email) VALUES ('acme', 'big', $1) RETURNING id", big).Scan(&id); err != nil {
				t.Fatalf("%v: 1 MB parameter: %v", m, err)
			}
			var n int
			if err := e.super(t).QueryRow(ctx, "SELECT length(email) FROM contacts WHERE id = $1 AND tenant_id = 'acme'", id).Scan(&n); err != nil || n != 1<<20 {
				t.Fatalf("%v: stored email of %d bytes, %v", m, n, err)
			}
		}
	})
}
