package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

// txMode is transaction pooling with a pool of size n.
func txMode(n int) func(*config.Config) {
	return func(c *config.Config) {
		c.PoolMode = "transaction"
		c.DefaultPoolSize = n
	}
}

// serverConns counts the test database's backends logged in as app_user.
func (e *env) serverConns(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.super(t).QueryRow(testCtx(t), "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = 'app_user'", e.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTxBasic: tenants share one server connection, each sees only its own
// rows, in every pgx query mode.
func TestTxBasic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	acme := e.connect(t, "app_user.acme")
	globex := e.connect(t, "app_user.globex")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeCacheStatement} {
		for range 3 {
			if got := namesMode(t, acme, mode); !eq(got, []string{"Alice", "Bob"}) {
				t.Fatalf("acme (%v) sees %v", mode, got)
			}
			if got := namesMode(t, globex, mode); !eq(got, []string{"Gina"}) {
				t.Fatalf("globex (%v) sees %v", mode, got)
			}
		}
	}
	if n := e.serverConns(t); n != 1 {
		t.Fatalf("%d server connections for two clients with default_pool_size = 1", n)
	}
}

func namesMode(t *testing.T, conn *pgx.Conn, mode pgx.QueryExecMode) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), "SELECT name FROM contacts WHERE id > $1 ORDER BY name", mode, 0)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("query (%v): %v", mode, err)
	}
	return out
}

// TestTxIsolationUnderConcurrency: 200 clients of 50 tenants run random
// reads and writes through 5 server connections for 20 s (5 s with
// -short). Every row read is the reader's tenant's, every write lands
// under the writer's tenant.
func TestTxIsolationUnderConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(5))
	e.exec(t, `CREATE TABLE items (id bigserial PRIMARY KEY, tenant_id text NOT NULL DEFAULT current_tenant_id(), writer text NOT NULL);
		SELECT multigres_protect('items', 'tenant_id');`)
	dur := 20 * time.Second
	if testing.Short() {
		dur = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+60*time.Second)
	defer cancel()
	const clients, tenants = 200, 50
	conns := make([]*pgx.Conn, clients)
	for i := range conns {
		cfg, err := pgx.ParseConfig(e.url(fmt.Sprintf("app_user.t%d", i%tenants), "app_user_password"))
		if err != nil {
			t.Fatal(err)
		}
		// Mix the protocol paths: statement cache, simple, describe-exec.
		cfg.DefaultQueryExecMode = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol,
			pgx.QueryExecModeDescribeExec}[i%3]
		if conns[i], err = pgx.ConnectConfig(ctx, cfg); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer conns[i].Close(context.Background())
	}
	stop := time.Now().Add(dur)
	var ops, bad atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tenant := fmt.Sprintf("t%d", i%tenants)
			me := fmt.Sprintf("c%d", i)
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for time.Now().Before(stop) {
				if err := txStep(ctx, conn, rng, tenant, me, &bad); err != nil {
					errs <- fmt.Errorf("client %d (%s): %w", i, tenant, err)
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if bad.Load() > 0 {
		t.Fatalf("%d rows of another tenant seen", bad.Load())
	}
	// Every row is stored under the tenant of the client that wrote it.
	var misplaced, total int
	if err := e.super(t).QueryRow(testCtx(t), `SELECT count(*) FILTER (WHERE tenant_id <> 't' || (substr(writer, 2)::int % 50)), count(*) FROM items`).Scan(&misplaced, &total); err != nil {
		t.Fatal(err)
	}
	if misplaced != 0 || total == 0 {
		t.Fatalf("%d of %d rows stored under another tenant", misplaced, total)
	}
	if n := e.serverConns(t); n > 5 {
		t.Fatalf("%d server connections, pool size 5", n)
	}
	t.Logf("%d operations, %d rows, over 5 server connections", ops.Load(), total)
}

// txStep is one random operation: a read, an insert, an update, or a
// transaction of several.
func txStep(ctx context.Context, conn *pgx.Conn, rng *rand.Rand, tenant, me string, bad *atomic.Int64) error {
	check := func(rows pgx.Rows) error {
		for rows.Next() {
			var tid string
			if err := rows.Scan(&tid); err != nil {
				return err
			}
			if tid != tenant {
				bad.Add(1)
			}
		}
		return rows.Err()
	}
	switch rng.IntN(4) {
	case 0:
		rows, err := conn.Query(ctx, "SELECT tenant_id FROM items WHERE id > $1 ORDER BY id DESC LIMIT 20", rng.IntN(100))
		if err != nil {
			return err
		}
		return check(rows)
	case 1:
		_, err := conn.Exec(ctx, "INSERT INTO items (writer) VALUES ($1)", me)
		return err
	case 2:
		// An update can only touch the tenant's rows; RETURNING shows which.
		// One row, so that clients cannot deadlock each other.
		rows, err := conn.Query(ctx, "UPDATE items SET writer = writer WHERE id = (SELECT max(id) FROM items) RETURNING tenant_id")
		if err != nil {
			return err
		}
		return check(rows)
	default:
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO items (writer) VALUES ($1)", me); err != nil {
				return err
			}
			var tid string
			if err := tx.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&tid); err != nil {
				return err
			}
			if tid != tenant {
				bad.Add(1)
			}
			rows, err := tx.Query(ctx, "SELECT tenant_id FROM items ORDER BY id DESC LIMIT 5")
			if err != nil {
				return err
			}
			return check(rows)
		})
	}
}

// TestTxClientKilledMidTransaction: a client holding a row lock, with an
// uncommitted insert and a session SET made before, is killed; the next
// client on the same (only) server connection sees none of it. Temporary
// tables and WITH HOLD cursors cannot be made at all.
func TestTxClientKilledMidTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	victim := e.connect(t, "app_user.acme")
	mustExec(t, victim, "SET application_name = 'killed-client'")
	mustExec(t, victim, "SET search_path = pg_catalog, public")
	tx, err := victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid() FROM contacts WHERE name = 'Alice' FOR UPDATE").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx.Conn(), "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Uncommitted')")
	_, err = tx.Exec(ctx, "CREATE TEMP TABLE scratch (x int)")
	wantPgError(t, err, "0A000", "temporary objects that outlive the transaction are not allowed in transaction pooling")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err = victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "DECLARE held CURSOR WITH HOLD FOR SELECT name FROM contacts")
	wantPgError(t, err, "0A000", "WITH HOLD cursors are not allowed in transaction pooling: the cursor would outlive the transaction")
	_ = tx.Rollback(ctx)
	tx, err = victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, tx.Conn(), "SELECT 1 FROM contacts WHERE name = 'Alice' FOR UPDATE")
	mustExec(t, tx.Conn(), "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Uncommitted')")
	// Kill: the TCP connection drops without a Terminate.
	if err := victim.PgConn().Conn().(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	victim.PgConn().Conn().Close()

	next := e.connect(t, "app_user.acme")
	var nextPID int
	var appName, searchPath string
	if err := next.QueryRow(ctx, "SELECT pg_backend_pid(), current_setting('application_name'), current_setting('search_path')").Scan(&nextPID, &appName, &searchPath); err != nil {
		t.Fatal(err)
	}
	if nextPID != pid {
		t.Fatalf("next client on backend %d, killed client was on %d: the connection was not reused", nextPID, pid)
	}
	if appName == "killed-client" || searchPath == "pg_catalog, public" {
		t.Fatalf("the killed client's settings leaked: application_name %q, search_path %q", appName, searchPath)
	}
	// The row lock is gone: NOWAIT succeeds at once.
	mustExec(t, next, "BEGIN")
	mustExec(t, next, "SELECT 1 FROM contacts WHERE name = 'Alice' FOR UPDATE NOWAIT")
	mustExec(t, next, "COMMIT")
	if got := names(t, next, "SELECT name FROM contacts WHERE name = 'Uncommitted'"); len(got) != 0 {
		t.Fatalf("the killed client's transaction committed: %v", got)
	}
	// pg_cursors itself is hidden from tenants by hardening; the test
	// harness's audit function reads it for this session.
	if got := names(t, next, "SELECT name FROM multigres_audit.session_state(NULL, NULL) WHERE kind = 'cursor' AND name <> ''"); len(got) != 0 {
		t.Fatalf("cursors left behind: %v", got)
	}
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(testCtx(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestTxPreparedStatements: pgx's statement cache, with more clients than
// server connections, and clients that give the same statement name to
// different SQL.
func TestTxPreparedStatements(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(2)(c)
		c.MaxPreparedStatements = 3 // force evictions and re-prepares
	})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- preparedClient(ctx, e, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Same name, different SQL, on one server connection.
	a, b := e.connect(t, "app_user.acme"), e.connect(t, "app_user.globex")
	if _, err := a.Prepare(ctx, "s", "SELECT name FROM contacts ORDER BY name"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx, "s", "SELECT count(*)::text FROM contacts"); err != nil {
		t.Fatal(err)
	}
	if got := namesStmt(t, a, "s"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme's s: %v", got)
	}
	if got := namesStmt(t, b, "s"); !eq(got, []string{"1"}) {
		t.Fatalf("globex's s: %v", got)
	}
	// A duplicate name is PostgreSQL's error; an unknown one too.
	_, err := a.PgConn().Prepare(ctx, "s", "SELECT 1", nil)
	wantPgError(t, err, "42P05", `prepared statement "s" already exists`)
	err = a.PgConn().ExecPrepared(ctx, "nope", nil, nil, nil).Read().Err
	wantPgError(t, err, "26000", `prepared statement "nope" does not exist`)
	// DEALLOCATE ALL forgets the client's statements.
	mustExec(t, a, "DEALLOCATE ALL")
	err = a.PgConn().ExecPrepared(ctx, "s", nil, nil, nil).Read().Err
	wantPgError(t, err, "26000", `prepared statement "s" does not exist`)
	if got := namesStmt(t, b, "s"); !eq(got, []string{"1"}) {
		t.Fatalf("globex's s after acme's DEALLOCATE ALL: %v", got)
	}
}

func namesStmt(t *testing.T, conn *pgx.Conn, stmt string) []string {
	t.Helper()
	res := conn.PgConn().ExecPrepared(testCtx(t), stmt, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("execute %s: %v", stmt, res.Err)
	}
	var out []string
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out
}

func preparedClient(ctx context.Context, e *env, i int) error {
	tenant := []string{"acme", "globex"}[i%2]
	want := map[string]int{"acme": 2, "globex": 1}[tenant]
	cfg, err := pgx.ParseConfig(e.url("app_user."+tenant, "app_user_password"))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for j := range 40 {
		var n int
		// Five distinct statements per client, more than the LRU holds.
		sql := fmt.Sprintf("SELECT count(*) + %d - %d FROM contacts WHERE id > $1", j%5, j%5)
		if err := conn.QueryRow(ctx, sql, 0).Scan(&n); err != nil {
			return fmt.Errorf("client %d query %d: %w", i, j, err)
		}
		if n != want {
			return fmt.Errorf("client %d (%s) counted %d rows, want %d", i, tenant, n, want)
		}
	}
	return nil
}

// TestTxPoolExhaustion: with the only server connection held by an open
// transaction, another client's statement fails with 53300 within
// query_wait_timeout, and works once the transaction ends.
func TestTxPoolExhaustion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.QueryWaitTimeout = 300 * time.Millisecond
	})
	ctx := testCtx(t)
	holder := e.connect(t, "app_user.acme")
	waiter := e.connect(t, "app_user.globex")
	mustExec(t, holder, "BEGIN")
	start := time.Now()
	_, err := waiter.Exec(ctx, "SELECT 1")
	took := time.Since(start)
	pe := wantPgError(t, err, "53300", "no server connection became free within query_wait_timeout (300ms)")
	if pe.Hint == "" || took < 300*time.Millisecond || took > 5*time.Second {
		t.Fatalf("error after %v, hint %q", took, pe.Hint)
	}
	// The extended protocol gets the error at its first message and the
	// connection stays usable.
	_, err = waiter.Exec(ctx, "SELECT $1::int", 1)
	wantPgError(t, err, "53300", "")
	mustExec(t, holder, "COMMIT")
	if got := names(t, waiter, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("after the pool freed up: %v", got)
	}
}

// TestTxCancel: a CancelRequest reaches the server connection running the
// client's query; one sent while the client is idle cancels nothing.
func TestTxCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	super := e.super(t)
	acme := e.connect(t, "app_user.acme")
	const sleep = "SELECT pg_sleep(10)"
	done := make(chan error, 1)
	go func() {
		_, err := acme.Exec(ctx, sleep)
		done <- err
	}()
	e.waitActive(t, ctx, super, sleep)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := acme.PgConn().CancelRequest(cctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		wantPgError(t, err, "57014", "canceling statement due to user request")
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not stop the query")
	}
	// Idle: the cancel must not touch another client's query on the
	// shared server connection.
	other := e.connect(t, "app_user.globex")
	go func() {
		_, err := other.Exec(ctx, "SELECT pg_sleep(0.5)")
		done <- err
	}()
	e.waitActive(t, ctx, super, "SELECT pg_sleep(0.5)")
	if err := acme.PgConn().CancelRequest(cctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("an idle client's cancel hit another client's query: %v", err)
	}
}

// TestTxSettings: session SETs outside a transaction follow the client
// from server connection to server connection and stay its own; other
// session state is refused with a clear error.
func TestTxSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	a, err := e.connectWith(t, "app_user.acme", "app_user_password", func(c *pgx.ConnConfig) {
		c.RuntimeParams["application_name"] = "from-startup"
	})
	if err != nil {
		t.Fatal(err)
	}
	b := e.connect(t, "app_user.globex")
	setting := func(conn *pgx.Conn, name string) string {
		t.Helper()
		var v string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := setting(a, "application_name"); v != "from-startup" {
		t.Fatalf("startup application_name: %q", v)
	}
	if v := setting(b, "application_name"); v == "from-startup" {
		t.Fatal("a's startup parameter reached b")
	}
	mustExec(t, a, "SET statement_timeout = '7s'")
	mustExec(t, a, "SET search_path TO \"$user\", public")
	mustExec(t, b, "SET TIME ZONE 'Asia/Tokyo'")
	for range 2 {
		if v := setting(a, "statement_timeout"); v != "7s" {
			t.Fatalf("a's statement_timeout: %q", v)
		}
		if v := setting(a, "search_path"); v != `"$user", public` {
			t.Fatalf("a's search_path: %q", v)
		}
		if v := setting(b, "statement_timeout"); v == "7s" {
			t.Fatal("a's statement_timeout reached b")
		}
		if v := setting(b, "TimeZone"); v != "Asia/Tokyo" {
			t.Fatalf("b's TimeZone: %q", v)
		}
		if v := setting(a, "TimeZone"); v == "Asia/Tokyo" {
			t.Fatal("b's TimeZone reached a")
		}
	}
	mustExec(t, a, "RESET statement_timeout")
	if v := setting(a, "statement_timeout"); v == "7s" {
		t.Fatal("RESET did not stick")
	}
	// A failed query's SET is rolled back by the server; tracking agrees.
	_, err = a.Exec(ctx, "SET work_mem = '8MB'; SELECT 1/0", pgx.QueryExecModeSimpleProtocol)
	wantPgError(t, err, "22012", "")
	if v := setting(a, "work_mem"); v == "8MB" {
		t.Fatal("a failed query's SET was tracked")
	}
	for _, c := range []struct{ sql, code, msg string }{
		{"SET enable_partitionwise_join = on", "0A000", "session-level SET of enable_partitionwise_join is not allowed in transaction pooling"},
		{"SELECT set_config('work_mem', '1MB', false)", "0A000", "set_config with is_local = false is not allowed in transaction pooling"},
		{"SELECT pg_advisory_lock(1)", "0A000", "pg_advisory_lock is not allowed in transaction pooling: a session-level advisory lock outlives the transaction"},
		{"PREPARE p AS SELECT 1", "0A000", "SQL-level PREPARE is not allowed in transaction pooling"},
		{"LISTEN chan", "42501", "LISTEN and NOTIFY are not available on tenant connections: channel names are shared by all tenants"},
		{"BEGIN; SET work_mem = '2MB'; COMMIT", "0A000", "session-level SET inside a transaction block is not supported in transaction pooling"},
	} {
		_, err := a.Exec(ctx, c.sql, pgx.QueryExecModeSimpleProtocol)
		wantPgError(t, err, c.code, c.msg)
	}
	_, err = a.PgConn().Prepare(ctx, "setter", "SET work_mem = '2MB'", nil)
	wantPgError(t, err, "0A000", "session-level SET must be sent as a simple query or an unnamed statement in transaction pooling")
	// An unnamed statement in the extended protocol (pgJDBC sends its
	// startup SETs so) is tracked like a simple query.
	if err := a.PgConn().ExecParams(ctx, "SET work_mem = '3MB'", nil, nil, nil, nil).Read().Err; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v := setting(a, "work_mem"); v != "3MB" {
			t.Fatalf("extended-protocol SET not tracked: %q", v)
		}
		if v := setting(b, "work_mem"); v == "3MB" {
			t.Fatal("a's extended-protocol SET reached b")
		}
	}
	// In a failing batch it is rolled back, and tracking agrees.
	batch := &pgconn.Batch{}
	batch.ExecParams("SET work_mem = '5MB'", nil, nil, nil, nil)
	batch.ExecParams("SELECT 1/0", nil, nil, nil, nil)
	_, err = a.PgConn().ExecBatch(ctx, batch).ReadAll()
	wantPgError(t, err, "22012", "")
	if v := setting(a, "work_mem"); v != "3MB" {
		t.Fatalf("work_mem after a failed batch: %q", v)
	}
	mustExec(t, a, "RESET work_mem")
	// Transaction-scoped state is fine.
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "SET LOCAL work_mem = '3MB'")
	mustExec(t, a, "SELECT pg_advisory_xact_lock(1)")
	if v := setting(a, "work_mem"); v != "3MB" {
		t.Fatalf("SET LOCAL: %q", v)
	}
	mustExec(t, a, "COMMIT")
}

// TestTxBypassIsSessionMode: bypass users keep session semantics (their
// own server connection) in a transaction-mode proxy.
func TestTxBypassIsSessionMode(t *testing.T) {
	t.Parallel()
	admin := uniqueName("txadmin")
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.SuperuserBypass = []string{"postgres", admin}
	})
	createRole(t, e.pg, admin, "BYPASSRLS", "admin_pw")
	e.exec(t, "GRANT SELECT ON contacts TO "+admin)
	conn, err := e.tryConnect(t, admin, "admin_pw")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, conn, "SET enable_partitionwise_join = on")
	mustExec(t, conn, "LISTEN anything")
	tenant := e.connect(t, "app_user.acme")
	mustExec(t, tenant, "SELECT 1")
	var v string
	if err := conn.QueryRow(testCtx(t), "SELECT current_setting('enable_partitionwise_join')").Scan(&v); err != nil || v != "on" {
		t.Fatalf("bypass session setting: %q %v", v, err)
	}
	if got := names(t, conn, "SELECT name FROM contacts ORDER BY name"); len(got) != 3 {
		t.Fatalf("bypass sees %v", got)
	}
}

// TestMaxClientConn: past max_client_conn a new client gets 53300 and the
// proxy keeps serving the others.
func TestMaxClientConn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.MaxClientConn = 2
	})
	a := e.connect(t, "app_user.acme")
	e.connect(t, "app_user.globex")
	_, err := e.tryConnect(t, "app_user.acme", "app_user_password")
	wantPgError(t, err, "53300", "no more connections allowed (max_client_conn)")
	// With sslmode=prefer (psql's default) the SSLRequest is answered 'N'
	// first, so the client reads the refusal as the answer to its startup.
	r := rawDial(t, e.proxy.Addr)
	r.write([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	one := make([]byte, 1)
	if _, err := io.ReadFull(r.nc, one); err != nil || one[0] != 'N' {
		t.Fatalf("SSLRequest past max_client_conn: got %q, %v; want N", one, err)
	}
	r.write(encode(t, startupMsg("app_user.acme", e.db)))
	r.wantFatal("53300", "no more connections allowed (max_client_conn)")
	if got := names(t, a, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("after a refused client: %v", got)
	}
}

// TestTxPipelinedSetInTransaction: a tracked SET pipelined behind BEGIN,
// as two simple queries sent before any answer (so multigres cannot refuse
// it in time), never reaches the next client.
func TestTxPipelinedSetInTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	a := e.connect(t, "app_user.acme")
	hc, err := a.PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := hc.Frontend
	fe.Send(&pgproto3.Query{String: "BEGIN"})
	fe.Send(&pgproto3.Query{String: "SET work_mem = '1234kB'"})
	fe.Send(&pgproto3.Query{String: "COMMIT"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for ready := 0; ready < 3; {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			ready++
		}
	}
	next := e.connect(t, "app_user.globex")
	var v string
	if err := next.QueryRow(ctx, "SELECT current_setting('work_mem')").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v == "1234kB" {
		t.Fatal("a SET made inside a transaction block reached another client")
	}
}

// TestTxHostileMessages: malformed extended-protocol messages, which the
// transaction-mode relay decodes to rename statements, end that client
// with a protocol error (or a server error) and never the proxy.
func TestTxHostileMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	frames := map[string][]byte{
		"bind without NULs":         {'B', 0, 0, 0, 7, 'a', 'b', 'c'},
		"bind without stmt NUL":     {'B', 0, 0, 0, 7, 0, 'b', 'c'},
		"describe empty":            {'D', 0, 0, 0, 4},
		"describe statement no NUL": {'D', 0, 0, 0, 6, 'S', 'x'},
		"close bad kind":            {'C', 0, 0, 0, 6, 'X', 0},
		"close empty":               {'C', 0, 0, 0, 4},
		"parse without NUL":         {'P', 0, 0, 0, 6, 'a', 'b'},
		"parse name only":           {'P', 0, 0, 0, 6, 's', 0},
		"execute empty":             {'E', 0, 0, 0, 4},
		"unknown type":              {'z', 0, 0, 0, 4},
		// PostgreSQL ignores CopyData outside COPY; so must the relay.
		"copy data outside copy": {'d', 0, 0, 0, 5, 1},
	}
	for name, frame := range frames {
		conn := e.connect(t, "app_user.acme")
		hc, err := conn.PgConn().Hijack()
		if err != nil {
			t.Fatal(err)
		}
		_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		msg := append(append([]byte(nil), frame...), 'S', 0, 0, 0, 4)
		if _, err := hc.Conn.Write(msg); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		sawError := false
		for {
			m, err := hc.Frontend.Receive()
			if err != nil {
				break // closed by the proxy
			}
			if _, ok := m.(*pgproto3.ErrorResponse); ok {
				sawError = true
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if !sawError && frame[0] != 'd' {
			t.Errorf("%s: no error", name)
		}
		hc.Conn.Close()
	}
	// The proxy and the pool still serve.
	if got := names(t, e.connect(t, "app_user.globex"), "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("after hostile messages: %v", got)
	}
}

// TestTxShortSwitchRolledBack: the context switch in front of a simple
// query commits with that query; when the query fails, the switch rolls
// back with it, and a query pipelined behind it must still run under its
// own tenant's context, never the connection's previous one.
func TestTxShortSwitchRolledBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	globex := e.connect(t, "app_user.globex")
	acme := e.connect(t, "app_user.acme")
	// globex's tracked setting is on the connection too when acme's
	// short switch rolls back: the re-switch must reset it.
	mustExec(t, globex, "SET search_path TO public, pg_catalog")
	for round := range 3 {
		// Leave the only server connection on globex's context.
		if got := names(t, globex, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
			t.Fatalf("globex sees %v", got)
		}
		hc, err := acme.PgConn().Hijack()
		if err != nil {
			t.Fatal(err)
		}
		_ = hc.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		fe := hc.Frontend
		fe.Send(&pgproto3.Query{String: "SELECT 1/0"})
		fe.Send(&pgproto3.Query{String: "SELECT tenant_id FROM contacts"})
		fe.Send(&pgproto3.Query{String: "SELECT current_tenant_id()"})
		fe.Send(&pgproto3.Query{String: "SELECT current_setting('search_path')"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var rows []string
		sawError := false
		for ready := 0; ready < 4; {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := msg.(type) {
			case *pgproto3.ErrorResponse:
				if m.Code != "22012" {
					t.Fatalf("round %d: unexpected error %s %s", round, m.Code, m.Message)
				}
				sawError = true
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.ReadyForQuery:
				ready++
			}
		}
		if !sawError {
			t.Fatal("division by zero did not fail")
		}
		if !eq(rows, []string{"acme", "acme", "acme", `"$user", public`}) {
			t.Fatalf("round %d: after a failed query, the pipelined ones saw %v (want acme's two rows, acme and acme's search_path)", round, rows)
		}
		// Back to pgx for the next round.
		acme = e.connect(t, "app_user.acme")
		_ = ctx
	}
}

// TestTxServerFatalReachesClient: a FATAL the server sends on its own
// (here idle_in_transaction_session_timeout, a tracked setting) reaches the
// client as PostgreSQL's error, and the pool replaces the connection.
func TestTxServerFatalReachesClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	a := e.connect(t, "app_user.acme")
	mustExec(t, a, "SET idle_in_transaction_session_timeout = '200ms'")
	mustExec(t, a, "BEGIN")
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if _, err = a.Exec(ctx, "SELECT 1"); err != nil {
			break
		}
		// Idle in the transaction past the timeout: the wait is the
		// subject of the test, bounded by the loop's deadline.
		time.Sleep(300 * time.Millisecond)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "25P03" {
		t.Fatalf("want the server's 25P03 FATAL, got %v", err)
	}
	if got := names(t, e.connect(t, "app_user.globex"), "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("after the server ended a session: %v", got)
	}
}

// TestTxUnsupportedStartupParam: a startup parameter that cannot follow
// the client from server to server is refused at login with 0A000; a
// tracked one is accepted.
func TestTxUnsupportedStartupParam(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	_, err := e.connectWith(t, "app_user.acme", "app_user_password", func(c *pgx.ConnConfig) {
		c.RuntimeParams["jit_above_cost"] = "1"
	})
	pe := wantPgError(t, err, "0A000", `startup parameter "jit_above_cost" is not supported in transaction pooling`)
	if pe.Severity != "FATAL" || pe.Hint == "" {
		t.Fatalf("severity %q hint %q", pe.Severity, pe.Hint)
	}
	if _, err := e.connectWith(t, "app_user.acme", "app_user_password", func(c *pgx.ConnConfig) {
		c.RuntimeParams["search_path"] = "public"
	}); err != nil {
		t.Fatalf("tracked startup parameter refused: %v", err)
	}
}

// TestTxQuietSwitchIsLocal: the full context switch silences its own
// COMMIT's warning with a transaction-local client_min_messages; the
// client's statements after it still get their notices, and the client's
// own (tracked) client_min_messages is what it reads, on every switch.
func TestTxQuietSwitchIsLocal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	var mu sync.Mutex
	var notices []string
	a, err := e.connectWith(t, "app_user.acme", "app_user_password", func(c *pgx.ConnConfig) {
		c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			notices = append(notices, n.Message)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	b := e.connect(t, "app_user.globex")
	mustExec(t, b, "SET client_min_messages = 'log'")
	for i := range 3 {
		// The extended protocol gets the full (quiet) switch, as b and a
		// take turns on the one server connection.
		var v string
		if err := a.QueryRow(ctx, "SELECT current_setting('client_min_messages')").Scan(&v); err != nil || v != "notice" {
			t.Fatalf("a reads client_min_messages %q (%v)", v, err)
		}
		if err := b.QueryRow(ctx, "SELECT current_setting('client_min_messages')").Scan(&v); err != nil || v != "log" {
			t.Fatalf("b reads client_min_messages %q (%v)", v, err)
		}
		// A COMMIT outside a transaction warns; a's own warning must
		// still reach it right after a switch.
		if err := a.PgConn().ExecParams(ctx, "COMMIT", nil, nil, nil, nil).Read().Err; err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := len(notices)
		mu.Unlock()
		if got != i+1 {
			t.Fatalf("a got %d notices after %d COMMITs outside a transaction", got, i+1)
		}
		if _, err := b.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTxRoleCannotOutliveTransaction: in transaction pooling, even with
// the SQL guard off, a tenant cannot change the role beyond its
// transaction with the statements that would do so directly, and the next
// tenant on the connection runs as the tenant role.
func TestTxRoleCannotOutliveTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { txMode(1)(c); c.Guard = false })
	ctx := testCtx(t)
	a := e.connect(t, "app_user.acme")
	b := e.connect(t, "app_user.globex")
	for _, sql := range []string{"SET ROLE NONE", "SET SESSION ROLE NONE", "RESET ROLE", "SET SESSION AUTHORIZATION DEFAULT",
		"SELECT set_config('role', 'none', false)"} {
		_, err := a.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		wantPgError(t, err, "0A000", "")
	}
	// SET LOCAL ROLE ends with its transaction; the next tenant on the one
	// connection runs as the tenant role, and so does a again.
	mustExec(t, a, "BEGIN")
	mustExec(t, a, "SET LOCAL ROLE NONE")
	mustExec(t, a, "COMMIT")
	for _, conn := range []*pgx.Conn{b, a, b} {
		var user string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app_user" {
			t.Fatalf("current_user %q (%v)", user, err)
		}
	}
}
