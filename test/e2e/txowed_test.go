package e2e

// Transaction pooling (pool_mode = transaction) keeps the queue of answers
// the relay owes a client in step with what the server will send, and
// bounds how long a client can hold a server connection: one tenant (acme)
// trying to pin the pool's connection, or to have it released while
// answers are still due so that they reach the next tenant (globex). The
// server skips everything after an extended-protocol error up to the next
// Sync, and a COPY can fail before reading the Syncs pipelined behind it;
// both once put the relay's queue out of step. Every test asserts the safe
// behaviour; the comment of each says how the state once got through.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

// readUntilError reads a raw client until an ErrorResponse (or the end of
// the connection).
func readUntilError(w *rawWire) []string {
	var types []string
	for {
		m, err := w.fe.Receive()
		if err != nil {
			return append(types, "EOF")
		}
		types = append(types, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		if _, ok := m.(*pgproto3.ErrorResponse); ok {
			return types
		}
	}
}

// globexReadsOwnRows runs globex's query with a bounded wait and checks it sees
// only its own row.
func globexReadsOwnRows(t *testing.T, victim *pgx.Conn, mode pgx.QueryExecMode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	rows, err := victim.Query(ctx, "SELECT name FROM contacts ORDER BY name", mode)
	var got []string
	if err == nil {
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		t.Errorf("globex's query after acme's attack: %v", err)
		return
	}
	if !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// errorThenLoneQuery leaves the relay owing a ReadyForQuery the server
// will never send: an extended-protocol error (answered, Flush, no Sync)
// makes the server skip everything up to the next Sync, a simple Query
// included; the relay's skipToSync only drops what was owed when the error
// arrived, so a Query sent after it is owed an answer that never comes.
func errorThenLoneQuery(t *testing.T, w *rawWire) {
	t.Helper()
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	if got := readUntilError(w); got[len(got)-1] != "ErrorResponse" {
		t.Fatalf("acme's failing batch: %v", got)
	}
	w.send(&pgproto3.Query{String: "SELECT 1"})
}

// TestTxUnsyncedHoldTimeoutEndsSkippedQueryAfterError: acme sends
// Parse/Bind/Execute of a failing statement and a Flush, reads the error,
// then sends a simple Query and nothing more. The server skips the Query
// (it waits for a Sync after the error), but the relay owes it a
// ReadyForQuery, so holdReadError sees "owes" and re-arms
// unsynced_hold_timeout for ever: the one server connection is pinned
// while acme keeps its socket open, and every other tenant gets 53300.
func TestTxUnsyncedHoldTimeoutEndsSkippedQueryAfterError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.UnsyncedHoldTimeout = 300 * time.Millisecond
		c.QueryWaitTimeout = 3 * time.Second
	})
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	errorThenLoneQuery(t, w)
	time.Sleep(200 * time.Millisecond)
	globexReadsOwnRows(t, victim, pgx.QueryExecModeSimpleProtocol)
}

// phantomThenSplitBatch: after errorThenLoneQuery, a Sync makes the
// server answer with one ReadyForQuery, which the relay takes for the
// skipped Query's, so it still owes one for the Sync (a phantom entry at
// the head of its queue, which the next ParseComplete pops). acme then
// pipelines P/B/E, a failing simple Query, P/B/E and Sync. The relay's
// queue is one entry behind the server: the simple Query's error arrives
// while the relay's head is the first Bind, so it is taken for an
// extended-protocol error, and skipToSync drops every entry up to the
// Sync, the second P/B/E included, which the server (a simple Query error
// skips nothing) still runs. The Query's ReadyForQuery then matches the
// Sync: nothing owed, status idle, the connection goes back to the pool
// while the server is still running acme's statement, whose answers reach
// the next tenant.
func phantomThenSplitBatch(t *testing.T, w *rawWire) {
	t.Helper()
	errorThenLoneQuery(t, w)
	w.send(&pgproto3.Sync{})
	if r, ended := txaUntil(w, 1); ended {
		t.Fatalf("acme ended after the Sync: %v %v", r.types, r.errors)
	}
	w.send(
		&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 1/0"},
		&pgproto3.Parse{Query: "SELECT 'acme-secret'::text, pg_sleep(0.3)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	r, ended := txaUntil(w, 1)
	t.Logf("acme saw %v %v (ended %v)", r.types, r.errors, ended)
}

// TestTxPhantomSyncDoesNotReleaseBusyConnection: see phantomThenSplitBatch.
// With the audit on, the audit reads acme's late answers.
func TestTxPhantomSyncDoesNotReleaseBusyConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	phantomThenSplitBatch(t, w)
	globexReadsOwnRows(t, victim, pgx.QueryExecModeSimpleProtocol)
}

// TestTxPhantomSyncDoesNotReleaseBusyConnectionNoAudit: the same as a
// production proxy runs it (audit off): globex's next query reads acme's
// answers in place of its context switch's, and globex is ended.
func TestTxPhantomSyncDoesNotReleaseBusyConnectionNoAudit(t *testing.T) {
	t.Parallel()
	for vname, vmode := range victimModes {
		t.Run(vname, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, txaNoAudit)
			victim := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			phantomThenSplitBatch(t, w)
			globexReadsOwnRows(t, victim, vmode)
		})
	}
}

// TestTxPhantomSyncCrossesNoRowsBetweenTenants: the same desync, used
// to forge and to read. acme's late batch is shaped so that its answers
// line up with globex's next simple query: three Parse/BindComplete pop
// globex's context-switch entries, then a RowDescription and a DataRow
// "acme-forged" arrive where globex's query is owed, and their
// ReadyForQuery ends globex's query (globex is handed acme's rows as its
// own). That ReadyForQuery also releases the connection while globex's own
// switch and query are still to be answered; acme's second client, waiting
// for the pool, gets it directly and reads globex's answers: its context
// switch's row (globex's tenant values) and globex's rows ("Gina").
func TestTxPhantomSyncCrossesNoRowsBetweenTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	victim := e.connect(t, "app_user.globex")
	reader := hijackRaw(t, e.connect(t, "app_user.acme"))
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	errorThenLoneQuery(t, w)
	w.send(&pgproto3.Sync{})
	if r, ended := txaUntil(w, 1); ended {
		t.Fatalf("acme ended after the Sync: %v %v", r.types, r.errors)
	}
	w.send(
		&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 1/0"},
		&pgproto3.Parse{Query: "SELECT 2"},
		&pgproto3.Parse{Query: "SELECT 'acme-forged'::text AS name FROM pg_sleep(0.4)"}, &pgproto3.Bind{},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	txaUntil(w, 1)
	type result struct {
		got []string
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		rows, err := victim.Query(ctx, "SELECT name FROM contacts ORDER BY name", pgx.QueryExecModeSimpleProtocol)
		var got []string
		if err == nil {
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		done <- result{got, err}
	}()
	time.Sleep(100 * time.Millisecond) // globex holds the connection: acme's reader waits for it
	reader.send(&pgproto3.Query{String: "SELECT 'reader'::text"})
	var seen []string
	for {
		m, err := reader.fe.Receive()
		if err != nil {
			break
		}
		if d, ok := m.(*pgproto3.DataRow); ok {
			for _, v := range d.Values {
				seen = append(seen, string(v))
			}
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	r := <-done
	if r.err != nil || !eq(r.got, []string{"Gina"}) {
		t.Errorf("globex's query after acme's attack returned %v %v", r.got, r.err)
	}
	for _, v := range seen {
		if strings.Contains(v, "Gina") || strings.Contains(v, "globex") {
			t.Errorf("acme's reader received globex's data: %q", seen)
			break
		}
	}
	t.Logf("acme's reader saw rows %q", seen)
}

// TestTxUnsyncedHoldTimeoutEndsSkippedExecuteAfterError: the
// same pin through the extended protocol only: after the answered error,
// acme sends Bind/Execute/Flush (no Sync). The server skips them; the
// relay owes their answers, so unsynced_hold_timeout never ends acme.
func TestTxUnsyncedHoldTimeoutEndsSkippedExecuteAfterError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.UnsyncedHoldTimeout = 300 * time.Millisecond
		c.QueryWaitTimeout = 3 * time.Second
	})
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	if got := readUntilError(w); got[len(got)-1] != "ErrorResponse" {
		t.Fatalf("acme's failing batch: %v", got)
	}
	w.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	time.Sleep(200 * time.Millisecond)
	globexReadsOwnRows(t, victim, pgx.QueryExecModeExec)
}

// globexQueryProblem runs globex's query with a bounded wait and returns what
// went wrong, if anything ("" when globex saw exactly its own row).
func globexQueryProblem(victim *pgx.Conn, mode pgx.QueryExecMode) string {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	rows, err := victim.Query(ctx, "SELECT name FROM contacts ORDER BY name", mode)
	var got []string
	if err == nil {
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return fmt.Sprintf("globex's query failed: %v", err)
	}
	if !eq(got, []string{"Gina"}) {
		return fmt.Sprintf("globex sees %v", got)
	}
	return ""
}

// copyThenSyncs sends, in one write, a COPY FROM STDIN that the server
// fails right after its CopyInResponse, before reading any data, and n
// Syncs behind it. It reads acme's answers up to the first ReadyForQuery.
func copyThenSyncs(t *testing.T, w *rawWire, copySQL string, n int, extended bool) rawResult {
	t.Helper()
	msgs := []pgproto3.FrontendMessage{&pgproto3.Query{String: copySQL}}
	if extended {
		msgs = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}
	for range n {
		msgs = append(msgs, &pgproto3.Sync{})
	}
	w.send(msgs...)
	r, ended := txaUntil(w, 1)
	if ended {
		t.Logf("acme ended: %v %v", r.types, r.errors)
	}
	return r
}

// TestTxCopyFailingBeforeDataOwesNoStaleReadyForQuery: the relay
// assumes (enterCopyIn) that Syncs a client pipelined behind a COPY FROM
// STDIN, before any COPY data, are read and ignored by the server in copy
// mode, and so owes them nothing. But PostgreSQL sends CopyInResponse in
// BeginCopyFrom and only then, in CopyFrom, checks COPY FREEZE's
// preconditions ("cannot perform COPY FREEZE because the table was not
// created or truncated in the current subtransaction"), so a COPY ...
// (FREEZE) on any table acme may insert into (without RLS) fails right after the
// CopyInResponse without reading anything. The Syncs are then read
// outside copy mode and each is answered with a ReadyForQuery the relay
// does not expect. The relay releases the connection at the COPY query's
// ReadyForQuery; pool.Release checks only the bytes already buffered, so
// ReadyForQuery messages still in flight reach the next holder: globex's
// switch or query is answered by acme's ReadyForQuery and globex is
// ended ("ReadyForQuery where … was owed").
func TestTxCopyFailingBeforeDataOwesNoStaleReadyForQuery(t *testing.T) {
	t.Parallel()
	for _, audit := range []bool{false, true} {
		for _, syncs := range []int{1, 2, 400} {
			extended := syncs == 2 // the first Sync ends the error's skip and is owed
			if audit && syncs == 400 {
				continue // the audit's own reads often buffer the stray answers: Release then closes
			}
			t.Run(fmt.Sprintf("audit %v syncs %d extended %v", audit, syncs, extended), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *config.Config) {
					txMode(1)(c)
					c.StateAudit = audit
				})
				e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
				victim := e.connect(t, "app_user.globex")
				for i := range 15 {
					// Each round a new acme: multigres ends the one whose
					// COPY failed with Syncs pending (it cannot know which
					// answers follow) and closes its server connection.
					w := hijackRaw(t, e.connect(t, "app_user.acme"))
					r := copyThenSyncs(t, w, "COPY copysink FROM STDIN (FREEZE)", syncs, extended)
					if i == 0 {
						t.Logf("acme saw %v %v", r.types, r.errors)
					}
					if msg := globexQueryProblem(victim, pgx.QueryExecModeSimpleProtocol); msg != "" {
						t.Fatalf("round %d: %s", i, msg)
					}
				}
			})
		}
	}
}

// blockHolds is how acme keeps the pool's one connection inside a
// transaction block.
var blockHolds = map[string][]pgproto3.FrontendMessage{
	// Answered extended-protocol messages and a Flush, no Sync: the server
	// sends no ReadyForQuery, so it never arms its
	// idle_in_transaction_session_timeout; the relay's status is still 'T',
	// so unsynced_hold_timeout does not apply either.
	"flush": {&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
	// The same after an error: the server skips to the next Sync.
	"error": {&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
	// Plain idling in the block, after a tracked session SET that turns
	// off the role's idle_in_transaction_session_timeout.
	"set": {&pgproto3.Query{String: "SELECT 1"}},
	// Plain idling in the block. The server does end its backend after
	// 300ms (acme's next message gets 25P03), but while a client idles in
	// a block with nothing owed, nobody reads the server connection
	// (pumpServerInline returns when nothing is owed): the server's FATAL
	// sits unread and the dead connection stays attached to acme, still
	// counted as in use, until acme sends something.
	"idle": {&pgproto3.Query{String: "SELECT 1"}},
}

// TestTxBlockHoldIsBounded: docs and txhold.go name the role's
// idle_in_transaction_session_timeout as the bound on a client that holds
// a server connection inside a transaction block. The operator sets it
// (here 300ms for app_user in this database); acme opens a block and
// holds the pool's only connection. Each way must be cut off by that
// bound (or by unsynced_hold_timeout), so that globex, waiting for the
// connection, is served before query_wait_timeout.
func TestTxBlockHoldIsBounded(t *testing.T) {
	t.Parallel()
	for name, hold := range blockHolds {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) {
				txMode(1)(c)
				c.UnsyncedHoldTimeout = 300 * time.Millisecond
				c.QueryWaitTimeout = 4 * time.Second
				if name == "set" {
					// A tenant can lower its own idle_in_transaction_
					// session_timeout; the proxy's bound it cannot.
					c.IdleTransactionTimeout = 300 * time.Millisecond
				}
			})
			e.exec(t, "ALTER ROLE app_user IN DATABASE "+pgx.Identifier{e.db}.Sanitize()+
				" SET idle_in_transaction_session_timeout = '300ms'")
			victim := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			if name == "set" {
				w.send(&pgproto3.Query{String: "SET idle_in_transaction_session_timeout = 0"})
				if r := w.until(1); len(r.errors) > 0 {
					t.Fatalf("acme's SET: %v", r.errors)
				}
			}
			w.send(&pgproto3.Query{String: "BEGIN"})
			if r := w.until(1); r.status != 'T' {
				t.Fatalf("acme's BEGIN: %v %v", r.types, r.errors)
			}
			w.send(hold...)
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			if msg := globexQueryProblem(victim, pgx.QueryExecModeSimpleProtocol); msg != "" {
				t.Errorf("after %s: %s", time.Since(start).Round(time.Millisecond), msg)
			}
			w.send(&pgproto3.Sync{}, &pgproto3.Query{String: "SELECT 1"})
			r, _ := txaUntil(w, 2)
			t.Logf("acme afterwards: %v %v", r.types, r.errors)
		})
	}
}
