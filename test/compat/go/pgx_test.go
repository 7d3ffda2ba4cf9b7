package compat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// execModes are pgx's five ways of running a statement: the simple
// protocol, the extended protocol with unnamed statements (Exec,
// DescribeExec, CacheDescribe) and with named, cached server-side prepared
// statements (CacheStatement, pgx's default).
var execModes = []struct {
	name string
	mode pgx.QueryExecMode
}{
	{"simple_protocol", pgx.QueryExecModeSimpleProtocol},
	{"exec", pgx.QueryExecModeExec},
	{"describe_exec", pgx.QueryExecModeDescribeExec},
	{"cache_statement", pgx.QueryExecModeCacheStatement},
	{"cache_describe", pgx.QueryExecModeCacheDescribe},
}

func withExecMode(mode pgx.QueryExecMode) func(*pgx.ConnConfig) {
	return func(c *pgx.ConnConfig) { c.DefaultQueryExecMode = mode }
}

// TestPgxQueryExecModes: the isolation checks in every pgx query mode, for
// both tenants, and one statement run 12 times with different arguments
// (past pgx's statement-cache warm-up) so a cached prepared statement is
// reused with new Bind values.
func TestPgxQueryExecModes(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		for _, m := range execModes {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				acme := pgxConnect(t, e.tenantURL("acme"), withExecMode(m.mode))
				checkIsolation(t, e, pgxClient(acme), "acme")
				globex := pgxConnect(t, e.tenantURL("globex"), withExecMode(m.mode))
				checkIsolation(t, e, pgxClient(globex), "globex")

				ctx := testCtx(t)
				const byID = "SELECT name FROM contacts WHERE id = $1"
				want := map[int32]string{1: "Alice", 2: "Bob"} // 3 is globex's, 4 does not exist
				for i := range 12 {
					id := int32(i%4 + 1)
					rows, err := acme.Query(ctx, byID, id)
					if err != nil {
						t.Fatalf("run %d: %v", i, err)
					}
					got, err := pgx.CollectRows(rows, pgx.RowTo[string])
					if err != nil {
						t.Fatalf("run %d: %v", i, err)
					}
					if w, ok := want[id]; (ok && !slices.Equal(got, []string{w})) || (!ok && len(got) != 0) {
						t.Fatalf("run %d: id %d gives %v, want %q", i, id, got, w)
					}
				}
				// Only CacheStatement keeps a named statement on the server;
				// the other modes use the unnamed statement or none.
				// In transaction mode the server's statements are renamed
				// and shared: no client name may reach the server.
				var named int
				filter := ""
				if e.mode == "transaction" {
					filter = " AND name NOT LIKE 'mg\\_%'"
				}
				if err := acme.QueryRow(ctx, "SELECT count(*) FROM (SELECT name, detail AS statement FROM multigres_audit.session_state(NULL, NULL) WHERE kind = 'prepared') ps WHERE statement = $1"+filter,
					pgx.QueryExecModeSimpleProtocol, byID).Scan(&named); err != nil {
					t.Fatalf("pg_prepared_statements: %v", err)
				}
				wantNamed := 0
				if m.mode == pgx.QueryExecModeCacheStatement && e.mode == "session" {
					wantNamed = 1
				}
				if named != wantNamed {
					t.Fatalf("server holds %d prepared %q, want %d", named, byID, wantNamed)
				}

				// A write with arguments in this mode lands as acme's row.
				name := "mode-" + m.name
				if _, err := acme.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "acme", name); err != nil {
					t.Fatalf("insert: %v", err)
				}
				if !slices.Contains(tenantRows(t, e, "acme"), name) {
					t.Fatalf("%s not stored as acme's", name)
				}
			})
		}
	})
}

// TestPgxBatch: SendBatch with an insert, selects and a cross-tenant update
// in one round trip, in every query mode; and a batch whose second insert
// targets the other tenant, which fails with 42501 and takes the first
// insert with it (a batch runs in one implicit transaction).
func TestPgxBatch(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		for _, m := range execModes {
			t.Run(m.name, func(t *testing.T) {
				t.Parallel()
				ctx := testCtx(t)
				acme := pgxConnect(t, e.tenantURL("acme"), withExecMode(m.mode))
				name := "batch-" + m.name

				b := &pgx.Batch{}
				b.Queue("INSERT INTO contacts (tenant_id, name) VALUES ($1, $2) RETURNING id", "acme", name)
				b.Queue("SELECT name FROM contacts WHERE name IN ('Alice', 'Bob', 'Gina', $1) ORDER BY name", name)
				b.Queue("UPDATE contacts SET name = 'pwned' WHERE id = $1", e.ids["globex"][0])
				b.Queue("SELECT DISTINCT tenant_id FROM contacts")
				br := acme.SendBatch(ctx, b)
				var id int32
				if err := br.QueryRow().Scan(&id); err != nil {
					t.Fatalf("batch insert: %v", err)
				}
				rows, err := br.Query()
				if err != nil {
					t.Fatalf("batch select: %v", err)
				}
				got, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatalf("batch select: %v", err)
				}
				if want := []string{"Alice", "Bob", name}; !slices.Equal(got, want) {
					t.Fatalf("batch select sees %v, want %v", got, want)
				}
				tag, err := br.Exec()
				if err != nil || tag.RowsAffected() != 0 {
					t.Fatalf("batch cross-tenant update: %v, %v; want 0 rows", tag, err)
				}
				var tenant string
				if err := br.QueryRow().Scan(&tenant); err != nil || tenant != "acme" {
					t.Fatalf("batch tenants: %q, %v", tenant, err)
				}
				if err := br.Close(); err != nil {
					t.Fatalf("batch close: %v", err)
				}
				if !slices.Contains(tenantRows(t, e, "acme"), name) {
					t.Fatalf("batch insert %s not stored as acme's", name)
				}

				// The failing batch: acme's insert, then one for globex.
				failed := "batchfail-" + m.name
				b = &pgx.Batch{}
				b.Queue("INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "acme", failed)
				b.Queue("INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "globex", "intruder")
				err = acme.SendBatch(ctx, b).Close()
				wantState(t, err, "42501", "batch inserting a globex row")
				if slices.Contains(tenantRows(t, e, "acme"), failed) {
					t.Fatalf("%s survived the failed batch: a batch is one implicit transaction", failed)
				}

				checkIsolation(t, e, pgxClient(acme), "acme")
			})
		}
	})
}

// TestPgxCopy: COPY FROM STDIN (pgx's CopyFrom) and COPY TO STDOUT.
//
// PostgreSQL itself refuses COPY FROM into a table where row-level security
// applies to the current user: copy.c raises 0A000 "COPY FROM not supported
// with row-level security" (hint "Use INSERT statements instead.") before
// reading any row, whatever tenant_id the rows carry. A tenant's
// CopyFrom therefore fails whole with 0A000, never 42501, even for rows of
// its own tenant; the test shows the same answer straight from PostgreSQL
// for app_user with the tenant context set by hand, so the refusal is not
// the proxy's. COPY TO is allowed: PostgreSQL runs it as a SELECT under the
// policy, so a tenant copies out only its rows. The superuser_bypass user
// is not subject to RLS, and its CopyFrom through the proxy writes rows of
// any tenant.
func TestPgxCopy(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		cols := []string{"tenant_id", "name"}
		acme := pgxConnect(t, e.tenantURL("acme"), nil)

		for _, rows := range [][][]any{
			{{"acme", "copy-a1"}, {"acme", "copy-a2"}},
			{{"acme", "copy-a3"}, {"globex", "intruder"}},
		} {
			n, err := acme.CopyFrom(ctx, pgx.Identifier{"contacts"}, cols, pgx.CopyFromRows(rows))
			wantState(t, err, "0A000", "tenant CopyFrom")
			if !strings.Contains(err.Error(), "COPY FROM not supported with row-level security") || n != 0 {
				t.Fatalf("tenant CopyFrom: %d rows, %v", n, err)
			}
		}
		// The connection is still good, and nothing was copied.
		checkIsolation(t, e, pgxClient(acme), "acme")
		if got := tenantRows(t, e, "acme"); !slices.Equal(got, seedNames["acme"]) {
			t.Fatalf("after the refused COPY, acme has %v", got)
		}

		// Straight from PostgreSQL, app_user with the tenant context set by
		// hand gets the same refusal: it is PostgreSQL's rule.
		direct := pgxConnect(t, e.pg.URL(proxytest.AppUser, proxytest.AppUserPassword, e.db), nil)
		if _, err := direct.Exec(ctx, "SELECT set_config('app.current_tenant_id', 'acme', false)"); err != nil {
			t.Fatalf("direct: set context: %v", err)
		}
		_, err := direct.CopyFrom(ctx, pgx.Identifier{"contacts"}, cols, pgx.CopyFromRows([][]any{{"acme", "direct"}}))
		wantState(t, err, "0A000", "direct CopyFrom as app_user")

		// COPY TO through the proxy: only acme's rows.
		var out bytes.Buffer
		tag, err := acme.PgConn().CopyTo(ctx, &out, "COPY contacts (tenant_id, name) TO STDOUT")
		if err != nil {
			t.Fatalf("tenant COPY TO: %v", err)
		}
		if want := "acme\tAlice\nacme\tBob\n"; out.String() != want || tag.RowsAffected() != 2 {
			t.Fatalf("tenant COPY TO gave %q (%s), want %q", out.String(), tag, want)
		}

		// The bypass user's CopyFrom through the proxy writes both tenants.
		admin := pgxConnect(t, e.bypassURL(), nil)
		n, err := admin.CopyFrom(ctx, pgx.Identifier{"contacts"}, cols,
			pgx.CopyFromRows([][]any{{"acme", "copy-acme"}, {"globex", "copy-globex"}}))
		if err != nil || n != 2 {
			t.Fatalf("bypass CopyFrom: %d rows, %v", n, err)
		}
		got, err := pgxClient(acme).query(ctx, "SELECT name FROM contacts WHERE name LIKE 'copy-%' ORDER BY name")
		if err != nil || !slices.Equal(got, []string{"copy-acme"}) {
			t.Fatalf("acme sees copied rows %v, %v; want [copy-acme]", got, err)
		}
		if got := tenantRows(t, e, "globex"); !slices.Equal(got, []string{"Gina", "copy-globex"}) {
			t.Fatalf("globex has %v after the bypass COPY", got)
		}
	})
}

// TestPgxListenNotify: channel names are global, so the SQL guard refuses
// LISTEN, NOTIFY and pg_notify() on tenant connections with 42501, in the
// simple and the extended protocol, and the connection stays usable. The
// superuser_bypass user (postgres) is not guarded: it LISTENs through the
// proxy and receives a notification sent through the proxy.
func TestPgxListenNotify(t *testing.T) {
	t.Parallel()
	const shared = " not available on tenant connections: channel names are shared by all tenants"
	refused := []struct{ sql, message string }{
		{"LISTEN events", "LISTEN and NOTIFY are" + shared},
		{"NOTIFY events, 'hi'", "LISTEN and NOTIFY are" + shared},
		{"SELECT pg_notify('events', 'hi')", "pg_notify is" + shared},
	}
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		for _, m := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			acme := pgxConnect(t, e.tenantURL("acme"), withExecMode(m))
			for _, r := range refused {
				_, err := acme.Exec(ctx, r.sql)
				wantState(t, err, "42501", fmt.Sprintf("tenant %s (%v)", r.sql, m))
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Message != r.message {
					t.Fatalf("tenant %s: message %q, want %q", r.sql, pgErr.Message, r.message)
				}
			}
			if _, err := acme.Exec(ctx, "UNLISTEN *"); err != nil {
				t.Fatalf("tenant UNLISTEN *: %v", err)
			}
			checkIsolation(t, e, pgxClient(acme), "acme")
		}

		listener := pgxConnect(t, e.bypassURL(), nil)
		notifier := pgxConnect(t, e.bypassURL(), nil)
		if _, err := listener.Exec(ctx, "LISTEN events"); err != nil {
			t.Fatalf("bypass LISTEN: %v", err)
		}
		if _, err := notifier.Exec(ctx, "SELECT pg_notify('events', $1)", "first"); err != nil {
			t.Fatalf("bypass pg_notify: %v", err)
		}
		if _, err := notifier.Exec(ctx, "NOTIFY events, 'second'"); err != nil {
			t.Fatalf("bypass NOTIFY: %v", err)
		}
		for _, want := range []string{"first", "second"} {
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := listener.WaitForNotification(wctx)
			cancel()
			if err != nil {
				t.Fatalf("waiting for notification %q: %v", want, err)
			}
			if n.Channel != "events" || n.Payload != want {
				t.Fatalf("notification %q on %q, want %q on events", n.Payload, n.Channel, want)
			}
		}
	})
}

// TestPgxContextCancel: SELECT pg_sleep(10) under a 200 ms context.
//
// pgx's default context handler (DeadlineContextWatcherHandler) sends no
// CancelRequest: it sets a past deadline on the socket, so the query
// returns at once with the context error and pgx closes the connection;
// the proxy, seeing its client gone, ends the statement on the server.
// With CancelRequestContextWatcherHandler pgx sends a CancelRequest (the
// proxy's BackendKeyData, which the proxy maps to the server connection):
// the server answers 57014 and the connection stays usable. In both cases
// the server stops sleeping.
func TestPgxContextCancel(t *testing.T) {
	t.Parallel()
	const sleep = "SELECT pg_sleep(10)"
	eachMode(t, nil, func(t *testing.T, e *env) {
		t.Run("cancel_request", func(t *testing.T) {
			t.Parallel()
			acme := pgxConnect(t, e.tenantURL("acme"), func(c *pgx.ConnConfig) {
				c.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
					// DeadlineDelay is the fallback should the cancel be lost:
					// the socket deadline then ends the wait and the
					// connection is closed, which the test reports.
					return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 1500 * time.Millisecond}
				}
			})
			ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := acme.Exec(ctx, sleep)
			elapsed := time.Since(start)
			if elapsed > 2*time.Second {
				t.Fatalf("query returned after %v", elapsed)
			}
			wantState(t, err, "57014", "pg_sleep cancelled by CancelRequest")
			if acme.IsClosed() {
				t.Fatal("connection closed after a cancelled statement")
			}
			checkIsolation(t, e, pgxClient(acme), "acme")
			waitIdle(t, testCtx(t), e, sleep)
		})
		t.Run("default_handler", func(t *testing.T) {
			t.Parallel()
			const query = sleep + " -- default handler"
			acme := pgxConnect(t, e.tenantURL("acme"), nil)
			// Watch the server so the check that it stopped is not vacuous:
			// the statement must be seen running first.
			super := e.super(t)
			running := make(chan error, 1)
			go func() {
				wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer wcancel()
				running <- pollActivity(wctx, super, e.db, query, true)
			}()
			// 1 s, not 200 ms: the watcher must see the statement running
			// before the client hangs up, even on a loaded machine.
			ctx, cancel := context.WithTimeout(testCtx(t), time.Second)
			defer cancel()
			start := time.Now()
			_, err := acme.Exec(ctx, query)
			if elapsed := time.Since(start); elapsed > 4*time.Second {
				t.Fatalf("query returned after %v", elapsed)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("want the context's deadline error, got %v", err)
			}
			if !acme.IsClosed() {
				t.Fatal("pgx kept a connection whose socket read was interrupted")
			}
			if err := <-running; err != nil {
				t.Fatalf("the statement never ran on the server: %v", err)
			}
			// The client hung up mid-statement; the proxy must not leave the
			// server sleeping for 10 s on its behalf.
			wctx, wcancel := context.WithTimeout(testCtx(t), 3*time.Second)
			defer wcancel()
			waitIdle(t, wctx, e, query)
			// A new connection works at once.
			checkIsolation(t, e, pgxClient(pgxConnect(t, e.tenantURL("acme"), nil)), "acme")
		})
	})
}

// TestPgxTransactions: pgx.BeginFunc with two inserts commits both; when the
// second insert targets the other tenant it fails with 42501 and both roll
// back. The tenant context holds inside the transaction.
func TestPgxTransactions(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		acme := pgxConnect(t, e.tenantURL("acme"), nil)
		err := pgx.BeginFunc(ctx, acme, func(tx pgx.Tx) error {
			for _, name := range []string{"tx-1", "tx-2"} {
				if _, err := tx.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "acme", name); err != nil {
					return fmt.Errorf("insert %s: %w", name, err)
				}
			}
			var tenant string
			if err := tx.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&tenant); err != nil {
				return fmt.Errorf("tenant: %w", err)
			}
			if tenant != "acme" {
				return fmt.Errorf("tenant inside the transaction is %q", tenant)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("committing transaction: %v", err)
		}
		if got := tenantRows(t, e, "acme"); !slices.Equal(got, []string{"Alice", "Bob", "tx-1", "tx-2"}) {
			t.Fatalf("after commit acme has %v", got)
		}

		err = pgx.BeginFunc(ctx, acme, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "acme", "tx-3"); err != nil {
				return fmt.Errorf("insert tx-3: %w", err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)", "globex", "intruder"); err != nil {
				return fmt.Errorf("insert for globex: %w", err)
			}
			return nil
		})
		wantState(t, err, "42501", "transaction inserting a globex row")
		if got := tenantRows(t, e, "acme"); !slices.Equal(got, []string{"Alice", "Bob", "tx-1", "tx-2"}) {
			t.Fatalf("after rollback acme has %v", got)
		}
		checkIsolation(t, e, pgxClient(acme), "acme")
	})
}
