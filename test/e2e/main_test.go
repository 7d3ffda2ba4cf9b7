// Package e2e drives a real multigres proxy with real clients (pgx, psql)
// against a throwaway PostgreSQL: the seed guide's promises, end to end.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// env is one test's database with the seed's contacts table, protected,
// holding rows of acme (2) and globex (1), and a proxy in front of it.
type env struct {
	pg    *pgtest.Server
	db    string
	proxy *proxytest.Proxy
}

func newEnv(t *testing.T, mutate func(*config.Config)) *env {
	t.Helper()
	return newEnvOn(t, pgtest.Shared(), mutate)
}

// newEnvOn is newEnv on cluster pg (a test's own, when it restarts it).
func newEnvOn(t *testing.T, pg *pgtest.Server, mutate func(*config.Config)) *env {
	t.Helper()
	db := pg.CreateDB(t)
	setupDB(t, pg, db)
	ctx := testCtx(t)
	if err := pg.Exec(ctx, db, `
		CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id varchar(255) NOT NULL, name text NOT NULL, email text);
		SELECT multigres_protect('contacts', 'tenant_id');
		INSERT INTO contacts (tenant_id, name, email) VALUES
			('acme', 'Alice', 'alice@acme.test'), ('acme', 'Bob', 'bob@acme.test'), ('globex', 'Gina', 'gina@globex.test');`); err != nil {
		t.Fatalf("seed contacts: %v", err)
	}
	return &env{pg: pg, db: db, proxy: proxytest.StartProxy(t, pg, mutate)}
}

// setupMu serialises the setup SQL: roles are cluster-wide, so concurrent
// runs would race on CREATE ROLE.
var (
	setupMu     sync.Mutex
	passwordSet = map[*pgtest.Server]bool{}
)

// setupDB is proxytest.Setup, except that app_user's password is set once
// per cluster. proxytest.Setup sets it on every call, and each ALTER
// ROLE ... PASSWORD draws a new SCRAM salt: a parallel test's setup landing
// between a proxy's auth_query lookup and its upstream SCRAM passthrough
// login (which reuses the looked-up salt's ClientKey) makes that login fail.
func setupDB(t *testing.T, pg *pgtest.Server, db string) {
	t.Helper()
	setupMu.Lock()
	defer setupMu.Unlock()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, pg.SuperURL(db))
	if err != nil {
		t.Fatalf("setup: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if err := mgsql.Init(ctx, conn, mgsql.Options{AuthPassword: proxytest.AuthPassword, Harden: true}); err != nil {
		t.Fatalf("setup: init: %v", err)
	}
	if !passwordSet[pg] {
		if _, err := conn.Exec(ctx, "ALTER ROLE app_user PASSWORD '"+proxytest.AppUserPassword+"'"); err != nil {
			t.Fatalf("setup: password: %v", err)
		}
		passwordSet[pg] = true
	}
}

func (e *env) url(user, password string) string {
	return proxytest.URL(e.proxy.Addr, user, password, e.db)
}

func (e *env) connect(t *testing.T, user string) *pgx.Conn {
	t.Helper()
	conn, err := e.tryConnect(t, user, proxytest.AppUserPassword)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	return conn
}

func (e *env) tryConnect(t *testing.T, user, password string) (*pgx.Conn, error) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, e.url(user, password))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantPgError asserts err is a server error with code and message.
func wantPgError(t *testing.T, err error, code, message string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want PgError %s %q, got %v", code, message, err)
	}
	if pe.Code != code || (message != "" && pe.Message != message) {
		t.Fatalf("want %s %q, got %s %q (detail %q)", code, message, pe.Code, pe.Message, pe.Detail)
	}
	return pe
}

func names(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func eq(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }
