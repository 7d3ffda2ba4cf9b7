package compat

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "github.com/lib/pq"              // registers the "postgres" database/sql driver

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// sqlRunner is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type sqlRunner interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func sqlClient(r sqlRunner) client {
	return client{
		query: func(ctx context.Context, query string, args ...any) ([]string, error) {
			rows, err := r.QueryContext(ctx, query, args...)
			if err != nil {
				return nil, fmt.Errorf("query: %w", err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					return nil, fmt.Errorf("scan: %w", err)
				}
				out = append(out, s)
			}
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("rows: %w", err)
			}
			return out, nil
		},
		exec: func(ctx context.Context, query string, args ...any) (int64, error) {
			res, err := r.ExecContext(ctx, query, args...)
			if err != nil {
				return 0, fmt.Errorf("exec: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return 0, fmt.Errorf("rows affected: %w", err)
			}
			return n, nil
		},
	}
}

// openDB opens a database/sql pool with driver and dsn, checks it reaches
// the server, and closes it at cleanup.
func openDB(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("sql.Open(%s): %v", driver, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.PingContext(testCtx(t)); err != nil {
		t.Fatalf("%s ping: %v", driver, err)
	}
	return db
}

// keyValueDSN is the libpq key=value form of a tenant's connection string.
func (e *env) keyValueDSN(user string) string {
	host, port, _ := net.SplitHostPort(e.proxy.Addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		host, port, user, proxytest.AppUserPassword, e.db)
}

// TestLibPQ: database/sql with lib/pq, opened with a postgres:// URL and
// with a key=value DSN. Queries and Execs with $1 arguments go through
// lib/pq's extended protocol with the unnamed statement; those without go
// as simple queries. Both tenants pass the isolation checks.
func TestLibPQ(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		for _, dsn := range []struct{ name, acme, globex string }{
			{"url", e.tenantURL("acme"), e.tenantURL("globex")},
			{"key_value", e.keyValueDSN("app_user.acme"), e.keyValueDSN("app_user.globex")},
		} {
			t.Run(dsn.name, func(t *testing.T) {
				t.Parallel()
				acme := openDB(t, "postgres", dsn.acme)
				checkIsolation(t, e, sqlClient(acme), "acme")
				checkIsolation(t, e, sqlClient(openDB(t, "postgres", dsn.globex)), "globex")

				ctx := testCtx(t)
				var name string
				if err := acme.QueryRowContext(ctx, "SELECT name FROM contacts WHERE id = $1", e.ids["acme"][1]).Scan(&name); err != nil || name != "Bob" {
					t.Fatalf("QueryRow $1: %q, %v", name, err)
				}
				err := acme.QueryRowContext(ctx, "SELECT name FROM contacts WHERE id = $1", e.ids["globex"][0]).Scan(&name)
				if !errors.Is(err, sql.ErrNoRows) {
					t.Fatalf("acme reading globex's row: %v, want sql.ErrNoRows", err)
				}
				added := "pq-" + dsn.name
				if _, err := acme.ExecContext(ctx, "INSERT INTO contacts (tenant_id, name, email) VALUES ($1, $2, $3)", "acme", added, nil); err != nil {
					t.Fatalf("insert: %v", err)
				}
				if !slices.Contains(tenantRows(t, e, "acme"), added) {
					t.Fatalf("%s not stored as acme's", added)
				}
			})
		}
	})
}

// TestLibPQPrepare: Prepare makes lib/pq parse a named server-side
// statement once and Bind it on every use; the statement is seen in
// pg_prepared_statements on the same connection (read through the test
// harness's multigres_audit.session_state: hardening hides the view from
// tenants) and used many times, for a
// read and for a write, and stays tenant-scoped.
func TestLibPQPrepare(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		ctx := testCtx(t)
		db := openDB(t, "postgres", e.tenantURL("acme"))
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatalf("conn: %v", err)
		}
		t.Cleanup(func() { _ = conn.Close() })

		const byID = "SELECT name FROM contacts WHERE id = $1"
		sel, err := conn.PrepareContext(ctx, byID)
		if err != nil {
			t.Fatalf("prepare: %v", err)
		}
		defer sel.Close()
		ins, err := conn.PrepareContext(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)")
		if err != nil {
			t.Fatalf("prepare insert: %v", err)
		}
		defer ins.Close()

		var named int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT name, detail AS statement FROM multigres_audit.session_state(NULL, NULL) WHERE kind = 'prepared') ps WHERE statement = '"+byID+"' AND name <> ''").Scan(&named); err != nil {
			t.Fatalf("pg_prepared_statements: %v", err)
		}
		if named != 1 {
			t.Fatalf("%d named statements for %q on the server, want 1", named, byID)
		}

		want := map[int32]string{1: "Alice", 2: "Bob"} // 3 is globex's, 4 does not exist
		for i := range 12 {
			id := int32(i%4 + 1)
			var name string
			err := sel.QueryRowContext(ctx, id).Scan(&name)
			if w, ok := want[id]; ok && (err != nil || name != w) {
				t.Fatalf("run %d: id %d gives %q, %v; want %q", i, id, name, err, w)
			} else if !ok && !errors.Is(err, sql.ErrNoRows) {
				t.Fatalf("run %d: id %d gives %q, %v; want no row", i, id, name, err)
			}
		}
		for _, name := range []string{"prep-1", "prep-2", "prep-3"} {
			if _, err := ins.ExecContext(ctx, "acme", name); err != nil {
				t.Fatalf("prepared insert %s: %v", name, err)
			}
		}
		_, err = ins.ExecContext(ctx, "globex", "intruder")
		wantState(t, err, "42501", "prepared insert of a globex row")
		if got := tenantRows(t, e, "acme"); !slices.Equal(got, []string{"Alice", "Bob", "prep-1", "prep-2", "prep-3"}) {
			t.Fatalf("acme has %v", got)
		}
		checkIsolation(t, e, sqlClient(conn), "acme")
	})
}

// TestLibPQTransactions: a transaction that commits two inserts, one rolled
// back by the client, and one whose second insert (for the other tenant)
// fails with 42501 so that Commit fails and nothing is stored.
func TestLibPQTransactions(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		testSQLTransactions(t, e, openDB(t, "postgres", e.tenantURL("acme")), "pq")
	})
}

func testSQLTransactions(t *testing.T, e *env, db *sql.DB, prefix string) {
	t.Helper()
	ctx := testCtx(t)
	insert := "INSERT INTO contacts (tenant_id, name) VALUES ($1, $2)"
	base := tenantRows(t, e, "acme")

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	for _, name := range []string{prefix + "-c1", prefix + "-c2"} {
		if _, err := tx.ExecContext(ctx, insert, "acme", name); err != nil {
			t.Fatalf("insert %s: %v", name, err)
		}
	}
	checkTxTenant(t, tx, "acme")
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	base = append(base, prefix+"-c1", prefix+"-c2")
	slices.Sort(base)
	if got := tenantRows(t, e, "acme"); !slices.Equal(got, base) {
		t.Fatalf("after commit acme has %v, want %v", got, base)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx, insert, "acme", prefix+"-r1"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}

	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	if _, err := tx.ExecContext(ctx, insert, "acme", prefix+"-f1"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	_, err = tx.ExecContext(ctx, insert, "globex", "intruder")
	wantState(t, err, "42501", "insert of a globex row in a transaction")
	if err := tx.Commit(); err == nil {
		t.Fatal("commit of a failed transaction succeeded")
	}
	_ = tx.Rollback() // already ended by the failed Commit; a no-op for the check

	if got := tenantRows(t, e, "acme"); !slices.Equal(got, base) {
		t.Fatalf("after rollbacks acme has %v, want %v", got, base)
	}
	checkIsolation(t, e, sqlClient(db), "acme")
}

// checkTxTenant asserts the tenant context inside a transaction.
func checkTxTenant(t *testing.T, tx *sql.Tx, tenant string) {
	t.Helper()
	var got string
	if err := tx.QueryRowContext(testCtx(t), "SELECT current_tenant_id()").Scan(&got); err != nil || got != tenant {
		t.Fatalf("tenant inside the transaction: %q, %v", got, err)
	}
}

// TestLibPQCancel: lib/pq answers a context that ends mid-statement by
// sending a CancelRequest (to the proxy, which forwards it to the server),
// waiting for the server's answer, 57014, then discarding the connection;
// the query returns within 2 s, the server stops sleeping, and the pool goes
// on with a fresh connection.
func TestLibPQCancel(t *testing.T) {
	t.Parallel()
	const sleep = "SELECT pg_sleep(10) -- lib/pq"
	eachMode(t, nil, func(t *testing.T, e *env) {
		db := openDB(t, "postgres", e.tenantURL("acme"))
		db.SetMaxOpenConns(1)
		ctx, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := db.ExecContext(ctx, sleep)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Fatalf("query returned after %v", elapsed)
		}
		wantState(t, err, "57014", "pg_sleep cancelled by lib/pq's CancelRequest")
		wctx, wcancel := context.WithTimeout(testCtx(t), 3*time.Second)
		defer wcancel()
		waitIdle(t, wctx, e, sleep)
		checkIsolation(t, e, sqlClient(db), "acme")
	})
}

// TestPgxStdlib: database/sql with pgx's stdlib driver: isolation checks,
// a prepared statement, and the transaction checks.
func TestPgxStdlib(t *testing.T) {
	t.Parallel()
	eachMode(t, nil, func(t *testing.T, e *env) {
		db := openDB(t, "pgx", e.tenantURL("acme"))
		checkIsolation(t, e, sqlClient(db), "acme")
		checkIsolation(t, e, sqlClient(openDB(t, "pgx", e.tenantURL("globex"))), "globex")
		ctx := testCtx(t)
		stmt, err := db.PrepareContext(ctx, "SELECT name FROM contacts WHERE id = $1")
		if err != nil {
			t.Fatalf("prepare: %v", err)
		}
		defer stmt.Close()
		for _, id := range []int32{1, 2, 1, 2} {
			var name string
			if err := stmt.QueryRowContext(ctx, id).Scan(&name); err != nil || name != seedNames["acme"][id-1] {
				t.Fatalf("id %d: %q, %v", id, name, err)
			}
		}
		if err := stmt.QueryRowContext(ctx, e.ids["globex"][0]).Scan(new(string)); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("acme reading globex's row: %v, want sql.ErrNoRows", err)
		}
		testSQLTransactions(t, e, db, "stdlib")
	})
}

// TestLibPQTwoContextVariables: the guide's multi-variable username through
// lib/pq, in a URL with the ':' encoded as %3A (as the guide says) and in a
// key=value DSN with a plain ':'; both context variables are set.
func TestLibPQTwoContextVariables(t *testing.T) {
	t.Parallel()
	eachMode(t, func(c *config.Config) {
		c.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
	}, func(t *testing.T, e *env) {
		for _, dsn := range []string{
			"postgres://app_user.list123%3Auser456:" + proxytest.AppUserPassword + "@" + e.proxy.Addr + "/" + e.db + "?sslmode=disable",
			e.keyValueDSN("app_user.list123:user456"),
		} {
			db := openDB(t, "postgres", dsn)
			var list, user string
			if err := db.QueryRowContext(testCtx(t), "SELECT current_setting('app.current_list_id'), current_setting('app.current_user_id')").Scan(&list, &user); err != nil {
				t.Fatalf("current_setting: %v", err)
			}
			if list != "list123" || user != "user456" {
				t.Fatalf("context = %q, %q; want list123, user456", list, user)
			}
		}
	})
}
