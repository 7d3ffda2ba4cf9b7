package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// uniqueName is prefix plus random hex: roles are cluster-wide and the
// package's tests share one cluster.
func uniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// super is a superuser connection straight to the test database, past the
// proxy: the ground truth the tests compare against.
func (e *env) super(t *testing.T) *pgx.Conn {
	t.Helper()
	return e.pg.Connect(t, e.db)
}

// exec runs sql as superuser in the test database.
func (e *env) exec(t *testing.T, sql string) {
	t.Helper()
	if err := e.pg.Exec(testCtx(t), e.db, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// createRole creates a cluster-wide login role with the given attributes
// and password, and drops it at cleanup.
func createRole(t *testing.T, pg *pgtest.Server, name, attrs, password string) {
	t.Helper()
	ctx := testCtx(t)
	sql := "CREATE ROLE " + pgx.Identifier{name}.Sanitize() + " LOGIN " + attrs +
		" PASSWORD '" + strings.ReplaceAll(password, "'", "''") + "'"
	if err := pg.Exec(ctx, "postgres", sql); err != nil {
		t.Fatalf("create role %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pg.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Logf("drop role %s: %v", name, err)
		}
	})
}

// connectWith connects through the proxy as user after letting change
// adjust the parsed config (runtime parameters, TLS, odd user names that a
// URL cannot carry verbatim).
func (e *env) connectWith(t *testing.T, user, password string, change func(*pgx.ConnConfig)) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(e.url("placeholder", password))
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	cfg.User = user
	if change != nil {
		change(cfg)
	}
	conn, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// raw is a protocol-level client for what pgx will not send: pipelined
// startup bytes, garbage, old protocol versions, stalls.
type raw struct {
	t  *testing.T
	nc net.Conn
	fe *pgproto3.Frontend
}

// rawDial opens a TCP connection to addr whose every read and write is
// bounded by a deadline, so a proxy that hangs fails the test instead.
func rawDial(t *testing.T, addr string) *raw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &raw{t: t, nc: nc, fe: pgproto3.NewFrontend(nc, nc)}
}

// write sends b in one write call.
func (r *raw) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// encode concatenates encoded frontend messages, for a single write.
func encode(t *testing.T, msgs ...pgproto3.FrontendMessage) []byte {
	t.Helper()
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			t.Fatalf("encode %T: %v", m, err)
		}
	}
	return out
}

// receive reads one backend message.
func (r *raw) receive() pgproto3.BackendMessage {
	r.t.Helper()
	m, err := r.fe.Receive()
	if err != nil {
		r.t.Fatalf("receive: %v", err)
	}
	return m
}

// wantFatal reads messages until an ErrorResponse, which must be FATAL
// with code (and message, if not empty), then expects the proxy to close
// the connection. It returns the error.
func (r *raw) wantFatal(code, message string) *pgproto3.ErrorResponse {
	r.t.Helper()
	for {
		m := r.receive()
		er, ok := m.(*pgproto3.ErrorResponse)
		if !ok {
			continue
		}
		if er.Severity != "FATAL" || er.Code != code || (message != "" && er.Message != message) {
			r.t.Fatalf("want FATAL %s %q, got %s %s %q", code, message, er.Severity, er.Code, er.Message)
		}
		r.wantClosed()
		// Copy: the frontend reuses message structs.
		out := *er
		return &out
	}
}

// wantClosed expects EOF (the proxy closed) before the deadline.
func (r *raw) wantClosed() {
	r.t.Helper()
	var b [1]byte
	n, err := r.nc.Read(b[:])
	if n != 0 || !errors.Is(err, io.EOF) {
		r.t.Fatalf("want EOF from proxy, got %d bytes, %v", n, err)
	}
}

// startupMsg is a protocol 3.0 StartupMessage for the proxy's test database.
func startupMsg(user, db string) *pgproto3.StartupMessage {
	return &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": user, "database": db}}
}

// trust makes the proxy skip client authentication (auth_type = trust) and
// log in upstream with the seed's password, so raw clients need no SCRAM.
func trust(c *config.Config) {
	c.AuthType = "trust"
	c.ServerPassword = map[string]string{proxytest.AppUser: proxytest.AppUserPassword}
}

// pgxConnectURL connects with a literal connection URL, closed at cleanup.
func pgxConnectURL(t *testing.T, url string) (*pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}
