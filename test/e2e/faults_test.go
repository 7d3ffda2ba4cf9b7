package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestTxIdleClientsSurviveDatabaseRestart: a warm transaction-mode pool
// whose server restarts (fast shutdown, or a crash) while nobody uses it
// hands out no dead connection: every idle client's next query succeeds
// on a fresh one.
func TestTxIdleClientsSurviveDatabaseRestart(t *testing.T) {
	t.Parallel()
	for _, crash := range []bool{false, true} {
		name := "fast restart"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pg, err := pgtest.Start()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pg.Stop)
			e := newEnvOn(t, pg, txMode(2))
			tenants := []string{"acme", "globex", "acme", "globex"}
			cs := make([]*pgx.Conn, len(tenants))
			for i, tn := range tenants {
				cs[i] = e.connect(t, "app_user."+tn)
			}
			// Warm both server connections: one held in a transaction while
			// the other serves.
			mustExec(t, cs[0], "BEGIN")
			mustExec(t, cs[0], "SELECT 1")
			mustExec(t, cs[1], "SELECT 1")
			mustExec(t, cs[0], "COMMIT")
			if n := e.serverConns(t); n != 2 {
				t.Fatalf("%d server connections before the restart, want 2", n)
			}
			// Test clusters run with synchronous_commit off: make the
			// setup durable before an immediate shutdown.
			e.exec(t, "CHECKPOINT")
			if err := pg.Restart(crash); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(cs))
			for _, c := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := c.Exec(testCtx(t), "SELECT count(*) FROM contacts"); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("an idle client after the restart: %v", err)
			}
			// A new login looks up its credentials on a fresh connection.
			if _, err := e.tryConnect(t, "app_user.acme", "app_user_password"); err != nil {
				t.Errorf("a new login after the restart: %v", err)
			}
		})
	}
}

// TestLoginWhileDatabaseDownOrHung: with the database down, a login is
// told the database is unreachable (08006), not that auth_user is wrong;
// with the database hung, the credential lookup ends within
// server_connect_timeout with that reason, well before handshake_timeout.
func TestLoginWhileDatabaseDownOrHung(t *testing.T) {
	t.Parallel()
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	e := newEnvOn(t, pg, func(c *config.Config) {
		c.ServerConnectTimeout = 500 * time.Millisecond
		c.HandshakeTimeout = 5 * time.Second
	})
	if err := pg.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = e.tryConnect(t, "app_user.acme", "app_user_password")
	took := time.Since(start)
	if err := pg.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wantPgError(t, err, "08006", "the database server did not answer the credential lookup within server_connect_timeout (500ms)")
	if took > 3*time.Second {
		t.Errorf("the hung lookup took %s", took)
	}
	if err := pg.Halt(); err != nil {
		t.Fatal(err)
	}
	_, err = e.tryConnect(t, "app_user.acme", "app_user_password")
	wantPgError(t, err, "08006", "the database server is unreachable, so multigres could not look up the credentials for this user")
	if err := pg.Restart(false); err != nil {
		t.Fatal(err)
	}
}

// TestTxShutdownAtTransactionBoundaries: Shutdown in transaction mode
// cuts no transaction. An idle client is ended at once with 57P01; a
// client inside a transaction commits it and is ended at its next
// statement; a client running transactions in a loop sees each one either
// committed or refused before it started; Shutdown returns long before
// shutdown_timeout would.
func TestTxShutdownAtTransactionBoundaries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(2))
	e.exec(t, "CREATE TABLE acks (id int PRIMARY KEY, tenant_id text NOT NULL DEFAULT current_setting('app.current_tenant_id'))")
	e.exec(t, "SELECT multigres_protect('acks', 'tenant_id')")
	idle := e.connect(t, "app_user.acme")
	inTx := e.connect(t, "app_user.globex")
	loop := e.connect(t, "app_user.acme")
	mustExec(t, inTx, "BEGIN")
	mustExec(t, inTx, "INSERT INTO acks (id) VALUES (-1)")

	var acked []int
	loopDone := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			if i == 20 {
				close(started)
			}
			_, err := loop.Exec(context.Background(), "INSERT INTO acks (id) VALUES ($1)", i)
			if err != nil {
				loopDone <- err
				return
			}
			acked = append(acked, i)
		}
	}()
	<-started
	shut := make(chan error, 1)
	begin := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- e.proxy.Server.Shutdown(ctx)
	}()
	if _, err := idle.Exec(testCtx(t), "SELECT 1"); !isAdminShutdown(err) {
		t.Errorf("idle client after shutdown began: %v, want 57P01", err)
	}
	if _, err := inTx.Exec(testCtx(t), "INSERT INTO acks (id) VALUES (-2)"); err != nil {
		t.Fatalf("the open transaction's next statement: %v", err)
	}
	if _, err := inTx.Exec(testCtx(t), "COMMIT"); err != nil {
		t.Fatalf("the open transaction's COMMIT: %v", err)
	}
	if _, err := inTx.Exec(testCtx(t), "SELECT 1"); !isAdminShutdown(err) {
		t.Errorf("after its COMMIT: %v, want 57P01", err)
	}
	if err := <-loopDone; !isAdminShutdown(err) {
		t.Errorf("the looping client ended with %v, want 57P01", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Errorf("Shutdown took %s", took)
	}
	rows, err := e.super(t).Query(testCtx(t), "SELECT id FROM acks ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{-2, -1}
	for _, id := range acked {
		want = append(want, int32(id))
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Errorf("committed rows %v, acknowledged %v", ids, want)
	}
}

func isAdminShutdown(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "57P01"
}

// TestTxSlowReaderReleasesItsServerConnection: a client that sends a query
// with a large result and stops reading is ended after
// client_write_timeout and its server connection given up, so the other
// tenants of a pool of one are served.
func TestTxSlowReaderReleasesItsServerConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.ClientWriteTimeout = 300 * time.Millisecond
	})
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	if tc, ok := w.hc.Conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	w.send(&pgproto3.Query{String: "SELECT repeat('x', 1000) FROM generate_series(1, 200000)"})
	// The result is streaming (acme holds the one server connection);
	// from here on acme reads nothing.
	if m, err := w.fe.Receive(); err != nil {
		t.Fatalf("acme's result: %T %v", m, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := victim.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("globex behind a client that stopped reading: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("globex waited %s", took)
	}
}

// TestInflatedHeadersCostWhatArrived: logged-in clients that each send a
// message header declaring 800 MB, and then only a few bytes, make the
// proxy allocate about what arrived, not what was declared (2,000 of them
// in transaction mode, 100 in session mode, where each has a backend).
func TestInflatedHeadersCostWhatArrived(t *testing.T) {
	for _, tc := range []struct {
		mode string
		n    int
	}{{"transaction", 2000}, {"session", 100}} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t, func(c *config.Config) {
				c.PoolMode = tc.mode
				c.DefaultPoolSize = 4
			})
			conns := make([]net.Conn, tc.n)
			var wg sync.WaitGroup
			errs := make(chan error, tc.n)
			sem := make(chan struct{}, 8)
			for i := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					conn, err := e.tryConnect(t, "app_user.acme", "app_user_password")
					if err != nil {
						errs <- err
						return
					}
					hc, err := conn.PgConn().Hijack()
					if err != nil {
						errs <- err
						return
					}
					conns[i] = hc.Conn
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("login: %v", err)
			}
			t.Cleanup(func() {
				for _, c := range conns {
					c.Close()
				}
			})
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			received, _ := e.proxy.Server.ClientBytes()
			hdr := []byte{'Q', 0x32, 0, 0, 0, 'S', 'E', 'L', 'E', 'C', 'T'} // declares 838,860,800 bytes
			for _, c := range conns {
				if _, err := c.Write(hdr); err != nil {
					t.Fatal(err)
				}
			}
			// The proxy reads each header and starts the body at once:
			// wait (bounded) until it has taken every byte sent.
			want := received + uint64(len(hdr)*len(conns))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for deadline := time.Now().Add(20 * time.Second); ; {
				if got, _ := e.proxy.Server.ClientBytes(); got >= want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the proxy did not read the headers within 20 s")
				}
				<-tick.C
			}
			runtime.ReadMemStats(&after)
			grew := int64(after.HeapSys) - int64(before.HeapSys)
			t.Logf("%d inflated headers: heap +%d KiB", tc.n, grew>>10)
			if grew > 100<<20 {
				t.Fatalf("%d inflated headers grew the heap by %d MB", tc.n, grew>>20)
			}
		})
	}
}

// TestAdminConsoleWhileDatabaseDown: an admin user who logged in to the
// console before can log in again while the database is down (SHOW POOLS
// works), while tenants are told the database is unreachable.
func TestAdminConsoleWhileDatabaseDown(t *testing.T) {
	t.Parallel()
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	setupDB(t, pg, "postgres") // admin users are looked up there
	e := newEnvOn(t, pg, func(c *config.Config) {
		txMode(2)(c)
		c.AdminUsers = []string{"app_user"}
		c.ServerConnectTimeout = 500 * time.Millisecond
	})
	console := func() error {
		cfg, err := pgx.ParseConfig(proxytest.URL(e.proxy.Addr, "app_user", proxytest.AppUserPassword, "multigres"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		conn, err := pgx.ConnectConfig(testCtx(t), cfg)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(testCtx(t), "SHOW POOLS")
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	}
	if err := console(); err != nil {
		t.Fatalf("console with the database up: %v", err)
	}
	if err := pg.Halt(); err != nil {
		t.Fatal(err)
	}
	if err := console(); err != nil {
		t.Errorf("console with the database down: %v", err)
	}
	_, err = e.tryConnect(t, "app_user.acme", "app_user_password")
	wantPgError(t, err, "08006", "the database server is unreachable, so multigres could not look up the credentials for this user")
	if err := pg.Restart(false); err != nil {
		t.Fatal(err)
	}
}

// TestNoAcknowledgedCommitLost: clients insert in a loop through a
// transaction-mode proxy while the database restarts, then crashes, and
// then the proxy itself is stopped hard (its shutdown timeout cut short);
// clients reconnect after each failure. Every insert a client saw
// acknowledged is in the table at the end.
func TestNoAcknowledgedCommitLost(t *testing.T) {
	t.Parallel()
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	e := newEnvOn(t, pg, txMode(4))
	e.exec(t, "CREATE TABLE acked (client int, n int, tenant_id text NOT NULL DEFAULT current_setting('app.current_tenant_id'), PRIMARY KEY (client, n))")
	e.exec(t, "SELECT multigres_protect('acked', 'tenant_id')")
	// A crash may lose commits PostgreSQL itself did not flush: make the
	// test database flush them, so that any loss would be the proxy's.
	e.exec(t, "ALTER DATABASE "+e.db+" SET synchronous_commit = on")

	const clients = 4
	var mu sync.Mutex
	acks := map[[2]int]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	addr := func() string { return e.proxy.Addr }
	var addrMu sync.Mutex
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *pgx.Conn
			for n := 0; ; n++ {
				select {
				case <-stop:
					if conn != nil {
						conn.Close(context.Background())
					}
					return
				default:
				}
				if conn == nil {
					addrMu.Lock()
					url := proxytest.URL(addr(), "app_user.acme", proxytest.AppUserPassword, e.db)
					addrMu.Unlock()
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					conn, _ = pgx.Connect(ctx, url)
					cancel()
					if conn == nil {
						continue
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := conn.Exec(ctx, "INSERT INTO acked (client, n) VALUES ($1, $2)", c, n)
				cancel()
				if err != nil {
					conn.Close(context.Background())
					conn = nil
					continue
				}
				mu.Lock()
				acks[[2]int{c, n}] = true
				mu.Unlock()
			}
		}()
	}
	waitAcks := func(more int) {
		mu.Lock()
		want := len(acks) + more
		mu.Unlock()
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			n := len(acks)
			mu.Unlock()
			if n >= want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d acknowledged inserts of %d within 30 s", n, want)
			}
			<-tick.C
		}
	}
	waitAcks(200)
	if err := pg.Restart(false); err != nil {
		t.Fatal(err)
	}
	waitAcks(200)
	e.exec(t, "CHECKPOINT")
	if err := pg.Restart(true); err != nil {
		t.Fatal(err)
	}
	waitAcks(200)
	// Stop the proxy hard and start another on a new port.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	_ = e.proxy.Server.Shutdown(ctx)
	cancel()
	next := proxytest.StartProxy(t, pg, txMode(4))
	addrMu.Lock()
	e.proxy = next
	addrMu.Unlock()
	waitAcks(200)
	close(stop)
	wg.Wait()

	rows, err := e.super(t).Query(testCtx(t), "SELECT client, n FROM acked")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[[2]int]bool{}
	for rows.Next() {
		var c, n int
		if err := rows.Scan(&c, &n); err != nil {
			t.Fatal(err)
		}
		stored[[2]int{c, n}] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for k := range acks {
		if !stored[k] {
			lost++
		}
	}
	t.Logf("%d acknowledged inserts, %d stored", len(acks), len(stored))
	if lost > 0 {
		t.Fatalf("%d acknowledged inserts are not in the table", lost)
	}
}

// TestTxStoppedBackendCostsOthersNothing: a tenant whose server backend
// is stopped (SIGSTOP) mid-transaction holds that one connection; the
// other tenants are served by the rest of the pool with their usual
// latency.
func TestTxStoppedBackendCostsOthersNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(2))
	stuck := e.connect(t, "app_user.acme")
	mustExec(t, stuck, "BEGIN")
	var pid int
	if err := stuck.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Skipf("cannot stop the backend (tests run as another user than the server?): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	go func() { _, _ = stuck.Exec(context.Background(), "SELECT 1") }() // waits on the stopped backend
	victim := e.connect(t, "app_user.globex")
	var worst time.Duration
	for range 50 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := victim.Exec(ctx, "SELECT name FROM contacts")
		cancel()
		if err != nil {
			t.Fatalf("globex while acme's backend is stopped: %v", err)
		}
		worst = max(worst, time.Since(start))
	}
	t.Logf("worst of 50 queries: %s", worst)
	if worst > time.Second {
		t.Errorf("globex's worst query took %s", worst)
	}
}
