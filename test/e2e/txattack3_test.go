package e2e

// Attacks on transaction pooling (pool_mode = transaction) through COPY's
// answers and through holding a connection inside a transaction block:
// one tenant (acme) trying to stall or kill another (globex). Every test
// asserts the safe behaviour; the comment of each explains the attack and
// what once let it through.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

// tx3VictimQuery runs globex's query with a bounded wait and returns what
// went wrong, if anything ("" when globex saw exactly its own row).
func tx3VictimQuery(victim *pgx.Conn, mode pgx.QueryExecMode) string {
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

// tx3CopyThenSyncs sends, in one write, a COPY FROM STDIN that the server
// fails right after its CopyInResponse, before reading any data, and n
// Syncs behind it. It reads acme's answers up to the first ReadyForQuery.
func tx3CopyThenSyncs(t *testing.T, w *txrWire, copySQL string, n int, extended bool) txrResult {
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

// TestTxAttack3CopyFailingBeforeDataOwesNoStaleReadyForQuery: the relay
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
func TestTxAttack3CopyFailingBeforeDataOwesNoStaleReadyForQuery(t *testing.T) {
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
					w := txrHijack(t, e.connect(t, "app_user.acme"))
					r := tx3CopyThenSyncs(t, w, "COPY copysink FROM STDIN (FREEZE)", syncs, extended)
					if i == 0 {
						t.Logf("acme saw %v %v", r.types, r.errors)
					}
					if msg := tx3VictimQuery(victim, pgx.QueryExecModeSimpleProtocol); msg != "" {
						t.Fatalf("round %d: %s", i, msg)
					}
				}
			})
		}
	}
}

// tx3BlockHold is how acme keeps the pool's one connection inside a
// transaction block.
var tx3BlockHold = map[string][]pgproto3.FrontendMessage{
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

// TestTxAttack3BlockHoldIsBounded: docs and txhold.go name the role's
// idle_in_transaction_session_timeout as the bound on a client that holds
// a server connection inside a transaction block. The operator sets it
// (here 300ms for app_user in this database); acme opens a block and
// holds the pool's only connection. Each way must be cut off by that
// bound (or by unsynced_hold_timeout), so that globex, waiting for the
// connection, is served before query_wait_timeout.
func TestTxAttack3BlockHoldIsBounded(t *testing.T) {
	t.Parallel()
	for name, hold := range tx3BlockHold {
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
			w := txrHijack(t, e.connect(t, "app_user.acme"))
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
			if msg := tx3VictimQuery(victim, pgx.QueryExecModeSimpleProtocol); msg != "" {
				t.Errorf("after %s: %s", time.Since(start).Round(time.Millisecond), msg)
			}
			w.send(&pgproto3.Sync{}, &pgproto3.Query{String: "SELECT 1"})
			r, _ := txaUntil(w, 2)
			t.Logf("acme afterwards: %v %v", r.types, r.errors)
		})
	}
}
