package e2e

// A raw protocol client for the transaction-pooling tests: a pgx
// connection hijacked after login, so that a test can send any sequence of
// frontend messages (pipelined, unsynced, out of order) and read every
// answer.

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// rawWire is a hijacked client connection speaking raw protocol messages.
type rawWire struct {
	t  *testing.T
	hc *pgconn.HijackedConn
	fe *pgproto3.Frontend
}

func hijackRaw(t *testing.T, conn *pgx.Conn) *rawWire {
	t.Helper()
	hc, err := conn.PgConn().Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	_ = hc.Conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawWire{t: t, hc: hc, fe: hc.Frontend}
}

func (w *rawWire) send(msgs ...pgproto3.FrontendMessage) {
	w.t.Helper()
	for _, m := range msgs {
		w.fe.Send(m)
	}
	if err := w.fe.Flush(); err != nil {
		w.t.Fatalf("send: %v", err)
	}
}

// rawResult is what a raw client saw up to some ReadyForQuery messages.
type rawResult struct {
	types  []string
	errors []string // "CODE message"
	status byte
}

// until reads until n ReadyForQuery messages have arrived.
func (w *rawWire) until(n int) rawResult {
	w.t.Helper()
	var r rawResult
	for n > 0 {
		m, err := w.fe.Receive()
		if err != nil {
			w.t.Fatalf("receive (after %v %v): %v", r.types, r.errors, err)
		}
		r.types = append(r.types, fmt.Sprintf("%T", m)[len("*pgproto3."):])
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			r.errors = append(r.errors, m.Code+" "+m.Message)
		case *pgproto3.ReadyForQuery:
			r.status = m.TxStatus
			n--
		}
	}
	return r
}

func (w *rawWire) until0() pgproto3.BackendMessage {
	w.t.Helper()
	m, err := w.fe.Receive()
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

func currentSetting(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(testCtx(t), "SELECT current_setting($1)", name).Scan(&v); err != nil {
		t.Fatalf("current_setting(%s): %v", name, err)
	}
	return v
}
