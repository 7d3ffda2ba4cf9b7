package e2e

// Attacks on the transaction-pooling state machine (internal/txstate) and
// its driver (internal/frontend/txrelay.go, txserver.go): each test drives
// a real PostgreSQL through the proxy and asserts what PostgreSQL itself
// would do, or that no tenant's session state reaches another. The state audit
// is on unless a test says otherwise (it then fails the test on any
// difference between a released connection and the model).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

// smReceive reads one message with a deadline; ok=false when none came in
// time (a hang) or the connection ended.
func smReceive(w *rawWire, within time.Duration) (pgproto3.BackendMessage, bool) {
	_ = w.hc.Conn.SetReadDeadline(time.Now().Add(within))
	defer w.hc.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	m, err := w.fe.Receive()
	if err != nil {
		return nil, false
	}
	return m, true
}

// smTypes is a message's type name, as rawResult lists it.
func smTypes(m pgproto3.BackendMessage) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
}

// smWant reads messages until one of type want arrives (ok) or none comes
// within the deadline (a hang); it returns what it read.
func smWant(w *rawWire, want string, within time.Duration) ([]string, bool) {
	var seen []string
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		m, ok := smReceive(w, time.Until(deadline))
		if !ok {
			return seen, false
		}
		seen = append(seen, smTypes(m))
		if seen[len(seen)-1] == want {
			return seen, true
		}
		if er, isErr := m.(*pgproto3.ErrorResponse); isErr {
			seen[len(seen)-1] += "(" + er.Code + " " + er.Message + ")"
		}
	}
	return seen, false
}

// ---------------------------------------------------------------------
// Settings: the "unknown" marker made known again.
// ---------------------------------------------------------------------

// TestTxStateMachineCommittedSetInBlockThenTrackedSet: acme pipelines four
// simple queries in one write, BEGIN; SET default_transaction_read_only =
// on; COMMIT; SET work_mem = '8MB'. Every SET passes CheckEffects, which
// sees the status the client last saw ('I'). The read-only SET runs inside
// the block: commitEffects marks the connection's settings unknown and
// leaves the client's unchanged; the COMMIT makes it stick on the server.
// The fourth query is a successful SET at status 'I': commitEffects then
// sets the connection's model to the client's settings plus work_mem, as
// if the switch had made the server equal to the client, which the
// unknown marker said it was not. The connection goes back with
// default_transaction_read_only = on that the model does not list, so the
// next tenant's switch does not reset it: globex runs read-only (and the
// audit reports the setting).
func TestTxStateMachineCommittedSetInBlockThenTrackedSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SET default_transaction_read_only = on"},
		&pgproto3.Query{String: "COMMIT"}, &pgproto3.Query{String: "SET work_mem = '8MB'"})
	if r := w.until(4); len(r.errors) > 0 || r.status != 'I' {
		t.Fatalf("acme's pipeline: %v %v status %q", r.types, r.errors, r.status)
	}
	if v := currentSetting(t, victim, "default_transaction_read_only"); v != "off" {
		t.Errorf("globex's default_transaction_read_only after acme's committed SET: %q", v)
	}
	txaVictimCanWrite(t, victim)
}

// TestTxStateMachineCommittedSetInBlockThenTrackedSetNoAudit is the same
// attack with the audit off, as in production: nothing closes the tainted
// connection before globex gets it.
func TestTxStateMachineCommittedSetInBlockThenTrackedSetNoAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SET default_transaction_read_only = on"},
		&pgproto3.Query{String: "COMMIT"}, &pgproto3.Query{String: "SET work_mem = '8MB'"})
	if r := w.until(4); len(r.errors) > 0 || r.status != 'I' {
		t.Fatalf("acme's pipeline: %v %v status %q", r.types, r.errors, r.status)
	}
	if v := currentSetting(t, victim, "default_transaction_read_only"); v != "off" {
		t.Errorf("globex's default_transaction_read_only after acme's committed SET: %q", v)
	}
	txaVictimCanWrite(t, victim)
}

// TestTxStateMachineBatchCommitThenTrackedSet is the extended-protocol
// form: an unnamed-statement SET and a named statement (whose effects
// multigres does not track, here COMMIT) in one batch make the settings
// unknown (noteEffects); a successful simple-query SET pipelined behind
// the batch then makes them known again without a switch.
func TestTxStateMachineBatchCommitThenTrackedSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Name: "c", Query: "COMMIT"}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("prepare COMMIT: %v", r.errors)
	}
	w.send(&pgproto3.Parse{Query: "SET default_transaction_read_only = on"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		&pgproto3.Query{String: "SET work_mem = '8MB'"})
	r := w.until(2)
	if len(r.errors) > 0 || r.status != 'I' {
		t.Fatalf("acme's batch: %v %v", r.types, r.errors)
	}
	if v := currentSetting(t, victim, "default_transaction_read_only"); v != "off" {
		t.Errorf("globex's default_transaction_read_only after acme's batch: %q", v)
	}
	txaVictimCanWrite(t, victim)
}

// ---------------------------------------------------------------------
// Answers multigres gives itself, and flushes.
// ---------------------------------------------------------------------

// TestTxStateMachineSynthCloseCompleteIsFlushed: inside a transaction
// block (the client holds its connection with nothing owed), Close of a
// named statement is answered by multigres itself (owe with an empty
// queue writes the CloseComplete at once) but the client is not flushed.
// A client that sends Close + Flush and waits for the CloseComplete, as
// the protocol allows, waits forever: the Flush goes to the server, which
// has nothing to send, and nothing else flushes the client.
func TestTxStateMachineSynthCloseCompleteIsFlushed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Query{String: "BEGIN"})
	w.until(1)
	w.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 || r.status != 'T' {
		t.Fatalf("prepare in block: %v %v %q", r.types, r.errors, r.status)
	}
	w.send(&pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Flush{})
	if seen, ok := smWant(w, "CloseComplete", 3*time.Second); !ok {
		t.Errorf("no CloseComplete after Close + Flush within 3s (got %v): the synthesized answer was never flushed", seen)
	}
	w.send(&pgproto3.Query{String: "ROLLBACK"})
	txaUntil(w, 1)
}

// TestTxStateMachineSynthParseCompleteAfterForwardedIsFlushed: inside a
// block, Parse of a new statement (sent to the server) and then Parse of
// a statement the connection already has (answered by multigres, queued
// behind the first), then Flush. The server's ParseComplete is forwarded
// and flushed; the synthesized one is written after that flush
// (deliver writes out[FrameAt:] without flushing) and sits in the buffer:
// the client waits forever for its second ParseComplete.
func TestTxStateMachineSynthParseCompleteAfterForwardedIsFlushed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Query{String: "BEGIN"})
	w.until(1)
	// s1 is prepared on the server, then forgotten by the client (the
	// server keeps it): a new Parse of the same SQL is answered locally.
	w.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 || r.status != 'T' {
		t.Fatalf("prepare in block: %v %v %q", r.types, r.errors, r.status)
	}
	w.send(&pgproto3.Parse{Name: "s2", Query: "SELECT 2"}, &pgproto3.Parse{Name: "s3", Query: "SELECT 1"}, &pgproto3.Flush{})
	var seen []string
	for n := 0; n < 2; n++ {
		got, ok := smWant(w, "ParseComplete", 3*time.Second)
		seen = append(seen, got...)
		if !ok {
			t.Errorf("ParseComplete %d of 2 did not arrive within 3s after Parse, Parse, Flush (got %v)", n+1, seen)
			break
		}
	}
	w.send(&pgproto3.Query{String: "ROLLBACK"})
	txaUntil(w, 1)
}

// TestTxStateMachineSynthAnswersInOrder: a guarantee. A pipelined batch
// mixing forwarded and synthesized answers (Parse answered locally
// between server-answered messages, Close of a named statement answered
// locally) gets them exactly in protocol order, and a second tenant on
// the same connection gets its own answers, not acme's.
func TestTxStateMachineSynthAnswersInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Parse{Name: "a", Query: "SELECT name FROM contacts ORDER BY name"}, &pgproto3.Sync{})
	w.until(1)
	w.send(&pgproto3.Close{ObjectType: 'S', Name: "a"}, &pgproto3.Sync{})
	w.until(1)
	w.send(&pgproto3.Parse{Name: "b", Query: "SELECT 7"},
		&pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "a", Query: "SELECT name FROM contacts ORDER BY name"}, // answered locally
		&pgproto3.Close{ObjectType: 'S', Name: "b"},                                  // answered locally
		&pgproto3.Bind{PreparedStatement: "a"}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	r := w.until(1)
	want := []string{"ParseComplete", "BindComplete", "DataRow", "CommandComplete",
		"ParseComplete", "CloseComplete", "BindComplete", "DataRow", "DataRow", "CommandComplete", "ReadyForQuery"}
	if !eq(r.types, want) {
		t.Errorf("answers: %v\nwant      %v", r.types, want)
	}
	victim := e.connect(t, "app_user.globex")
	if got := names(t, victim, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// ---------------------------------------------------------------------
// The unnamed statement.
// ---------------------------------------------------------------------

// smInsertOnceThen runs an unnamed INSERT through the extended protocol,
// then what drops PostgreSQL's unnamed statement (drop), then Bind of
// "" + Execute + Sync, and reports the answer to that Bind and how many
// rows the INSERT left.
func smInsertOnceThen(t *testing.T, w *rawWire, drop ...pgproto3.FrontendMessage) (rawResult, string) {
	t.Helper()
	w.send(&pgproto3.Parse{Query: "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Once')"},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("insert: %v", r.errors)
	}
	w.send(drop...)
	w.until(1)
	w.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r := w.until(1)
	return r, txaValue(t, w, "SELECT count(*) FROM contacts WHERE name = 'Once'")
}

// TestTxStateMachineRefusedUnnamedParseDropsPrevious: PostgreSQL drops the
// unnamed statement at the start of every unnamed Parse, so after one
// that fails, Bind of "" is 26000 "unnamed prepared statement does not
// exist". When the guard refuses an unnamed Parse, forwardParse sends the
// refusal token instead and leaves the client's previous unnamed
// statement (m.unnamed) in place; the server's unnamed statement is then
// nobody's, so the next Bind of "" re-sends the previous Parse in front of
// it: the client's previous statement, here an INSERT, runs again.
func TestTxStateMachineRefusedUnnamedParseDropsPrevious(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	r, count := smInsertOnceThen(t, w,
		&pgproto3.Parse{Query: "SELECT set_config('app.current_tenant_id', 'globex', false)"}, &pgproto3.Sync{})
	if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "26000") {
		t.Errorf("Bind of the unnamed statement after a refused unnamed Parse: %v %v, want 26000 as PostgreSQL", r.types, r.errors)
	}
	if count != "1" {
		t.Errorf("acme's INSERT ran %s times, executed once", count)
	}
}

// TestTxStateMachineSimpleQueryDropsUnnamed: a simple Query drops the
// unnamed statement too (exec_simple_query). multigres records that the
// server's unnamed statement is nobody's, but keeps the client's, and the
// next Bind of "" re-parses and runs it where PostgreSQL says 26000.
func TestTxStateMachineSimpleQueryDropsUnnamed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	r, count := smInsertOnceThen(t, w, &pgproto3.Query{String: "SELECT 1"})
	if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "26000") {
		t.Errorf("Bind of the unnamed statement after a simple query: %v %v, want 26000 as PostgreSQL", r.types, r.errors)
	}
	if count != "1" {
		t.Errorf("acme's INSERT ran %s times, executed once", count)
	}
}

// TestTxStateMachineFailedUnnamedParseIsNotRerun: a guarantee. After an
// unnamed Parse the server fails, Bind of "" must not run the statement
// before it (multigres re-sends the failed Parse, which fails again).
func TestTxStateMachineFailedUnnamedParseIsNotRerun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	r, count := smInsertOnceThen(t, w, &pgproto3.Parse{Query: "SELECT * FROM no_such_table_here"}, &pgproto3.Sync{})
	if len(r.errors) != 1 {
		t.Errorf("Bind after a failed unnamed Parse: %v %v, want an error", r.types, r.errors)
	}
	if count != "1" {
		t.Errorf("acme's INSERT ran %s times, executed once", count)
	}
}

// TestTxStateMachineUnnamedOwnershipAcrossTenantsAndHealthCheck: a
// guarantee. acme leaves an unnamed statement on the only connection;
// the pool's health check (server_check_delay = 0) runs before globex's
// turn. globex, which parsed an unnamed statement on an earlier turn,
// Binds "" in a later batch: it must run its own statement (re-parsed by
// multigres), never acme's.
func TestTxStateMachineUnnamedOwnershipAcrossTenantsAndHealthCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.ServerCheckDelay = 0
	})
	wv := hijackRaw(t, e.connect(t, "app_user.globex"))
	wv.send(&pgproto3.Parse{Query: "SELECT 'globex-own'::text"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{})
	if r := wv.until(1); len(r.errors) > 0 {
		t.Fatalf("globex parse: %v", r.errors)
	}
	wa := hijackRaw(t, e.connect(t, "app_user.acme"))
	wa.send(&pgproto3.Parse{Query: "SELECT 'acme-secret'::text"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if r := wa.until(1); len(r.errors) > 0 {
		t.Fatalf("acme: %v", r.errors)
	}
	for i := 0; i < 2; i++ {
		wv.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		var got []string
		for {
			m := wv.until0()
			if dr, ok := m.(*pgproto3.DataRow); ok {
				got = append(got, string(dr.Values[0]))
			}
			if er, ok := m.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("globex's Bind: %s %s", er.Code, er.Message)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if !eq(got, []string{"globex-own"}) {
			t.Errorf("globex's Bind of its unnamed statement (round %d) returned %v", i, got)
		}
		wa.send(&pgproto3.Parse{Query: "SELECT 'acme-secret'::text"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		wa.until(1)
	}
}

// ---------------------------------------------------------------------
// COPY and abandon.
// ---------------------------------------------------------------------

// TestTxStateMachineCopyOutRowsThenNextTenant: a guarantee of the row fast
// path. acme's COPY TO STDOUT rows and a large result stream without the
// lock; a switch's own DataRow (SELECT set_config) never reaches the
// client; globex, next on the connection, sees only its rows and none of
// acme's CopyData.
func TestTxStateMachineCopyOutRowsThenNextTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	wa := hijackRaw(t, e.connect(t, "app_user.acme"))
	wa.send(&pgproto3.Query{String: "COPY (SELECT name FROM contacts ORDER BY name) TO STDOUT"},
		&pgproto3.Query{String: "SELECT g FROM generate_series(1, 5000) g"})
	r := wa.until(2)
	var copyData, rows int
	for _, typ := range r.types {
		switch typ {
		case "CopyData":
			copyData++
		case "DataRow":
			rows++
		}
	}
	if len(r.errors) > 0 || copyData != 2 || rows != 5000 {
		t.Errorf("acme: %d CopyData, %d rows, errors %v", copyData, rows, r.errors)
	}
	wv := hijackRaw(t, e.connect(t, "app_user.globex"))
	wv.send(&pgproto3.Query{String: "SELECT name FROM contacts"})
	rv := wv.until(1)
	if want := []string{"RowDescription", "DataRow", "CommandComplete", "ReadyForQuery"}; !eq(rv.types, want) {
		t.Errorf("globex's answers: %v", rv.types)
	}
}

// TestTxStateMachineAbandonInBlockWithHeldLockAndCursor: a guarantee of
// the abandon plan. acme leaves inside a block holding a row lock, an
// advisory transaction lock and a cursor; the rollback plan
// must leave none of it: globex on the same connection takes the same
// advisory lock at once and updates its rows.
func TestTxStateMachineAbandonInBlockWithHeldLockAndCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN; SELECT pg_advisory_xact_lock(4242); DECLARE c CURSOR FOR SELECT name FROM contacts; SELECT name FROM contacts FOR UPDATE"})
	if r := w.until(1); len(r.errors) > 0 || r.status != 'T' {
		t.Fatalf("acme: %v %v", r.types, r.errors)
	}
	w.hc.Conn.Close()
	victim := e.connect(t, "app_user.globex")
	var got bool
	if err := victim.QueryRow(testCtx(t), "SELECT pg_try_advisory_xact_lock(4242)").Scan(&got); err != nil || !got {
		t.Errorf("globex's advisory lock after acme left: %v %v", got, err)
	}
	if _, err := victim.Exec(testCtx(t), "UPDATE contacts SET email = email"); err != nil {
		t.Errorf("globex's update: %v", err)
	}
}

// TestTxStateMachinePipelinedParseInAbortedBlock: BEGIN, a failing query
// and a Parse of a statement the connection already has, pipelined. The
// Parse reaches the server's aborted block, where PostgreSQL refuses it
// (25P02); multigres checks the status the client last saw ('I', nothing
// answered yet), answers ParseComplete itself and registers the
// statement, which the client then has although PostgreSQL never made it.
func TestTxStateMachinePipelinedParseInAbortedBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("prepare: %v", r.errors)
	}
	w.send(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT 1/0"},
		&pgproto3.Parse{Name: "s2", Query: "SELECT 1"}, &pgproto3.Sync{})
	r := w.until(3)
	if len(r.errors) != 2 || !strings.HasPrefix(r.errors[1], "25P02") {
		t.Errorf("Parse in an aborted block: %v %v, want 25P02 for it as PostgreSQL", r.types, r.errors)
	}
	w.send(&pgproto3.Query{String: "ROLLBACK"})
	w.until(1)
	w.send(&pgproto3.Parse{Name: "s2", Query: "SELECT 2"}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Errorf("Parse of s2, which PostgreSQL never created: %v", r.errors)
	}
}
