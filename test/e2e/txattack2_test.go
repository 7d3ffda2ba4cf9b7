package e2e

// More attacks on transaction pooling (pool_mode = transaction): one
// tenant trying to read, change, stall or kill another through a shared
// server connection, through the relay's queue of owed answers, attribute
// notation and the seed setting. Every test asserts the safe behaviour;
// the comment of each explains the attack and what once let it through.

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

// tx2UntilError reads a raw client until an ErrorResponse (or the end of
// the connection).
func tx2UntilError(w *txrWire) []string {
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

// tx2VictimReads runs globex's query with a bounded wait and checks it sees
// only its own row.
func tx2VictimReads(t *testing.T, victim *pgx.Conn, mode pgx.QueryExecMode) {
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

// tx2ErrorThenLoneQuery leaves the relay owing a ReadyForQuery the server
// will never send: an extended-protocol error (answered, Flush, no Sync)
// makes the server skip everything up to the next Sync, a simple Query
// included; the relay's skipToSync only drops what was owed when the error
// arrived, so a Query sent after it is owed an answer that never comes.
func tx2ErrorThenLoneQuery(t *testing.T, w *txrWire) {
	t.Helper()
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	if got := tx2UntilError(w); got[len(got)-1] != "ErrorResponse" {
		t.Fatalf("acme's failing batch: %v", got)
	}
	w.send(&pgproto3.Query{String: "SELECT 1"})
}

// TestTxAttack2SkippedQueryAfterErrorDefeatsUnsyncedHoldTimeout: acme sends
// Parse/Bind/Execute of a failing statement and a Flush, reads the error,
// then sends a simple Query and nothing more. The server skips the Query
// (it waits for a Sync after the error), but the relay owes it a
// ReadyForQuery, so holdReadError sees "owes" and re-arms
// unsynced_hold_timeout for ever: the one server connection is pinned
// while acme keeps its socket open, and every other tenant gets 53300.
func TestTxAttack2SkippedQueryAfterErrorDefeatsUnsyncedHoldTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.UnsyncedHoldTimeout = 300 * time.Millisecond
		c.QueryWaitTimeout = 3 * time.Second
	})
	victim := e.connect(t, "app_user.globex")
	w := txrHijack(t, e.connect(t, "app_user.acme"))
	tx2ErrorThenLoneQuery(t, w)
	time.Sleep(200 * time.Millisecond)
	tx2VictimReads(t, victim, pgx.QueryExecModeSimpleProtocol)
}

// tx2PhantomThenSplitBatch: after tx2ErrorThenLoneQuery, a Sync makes the
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
func tx2PhantomThenSplitBatch(t *testing.T, w *txrWire) {
	t.Helper()
	tx2ErrorThenLoneQuery(t, w)
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

// TestTxAttack2PhantomSyncReleasesBusyConnection: see tx2PhantomThenSplitBatch.
// With the audit on, the audit reads acme's late answers.
func TestTxAttack2PhantomSyncReleasesBusyConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	victim := e.connect(t, "app_user.globex")
	w := txrHijack(t, e.connect(t, "app_user.acme"))
	tx2PhantomThenSplitBatch(t, w)
	tx2VictimReads(t, victim, pgx.QueryExecModeSimpleProtocol)
}

// TestTxAttack2PhantomSyncReleasesBusyConnectionNoAudit: the same as a
// production proxy runs it (audit off): globex's next query reads acme's
// answers in place of its context switch's, and globex is ended.
func TestTxAttack2PhantomSyncReleasesBusyConnectionNoAudit(t *testing.T) {
	t.Parallel()
	for vname, vmode := range victimModes {
		t.Run(vname, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, txaNoAudit)
			victim := e.connect(t, "app_user.globex")
			w := txrHijack(t, e.connect(t, "app_user.acme"))
			tx2PhantomThenSplitBatch(t, w)
			tx2VictimReads(t, victim, vmode)
		})
	}
}

// TestTxAttack2PhantomSyncCrossesRowsBetweenTenants: the same desync, used
// to forge and to read. acme's late batch is shaped so that its answers
// line up with globex's next simple query: three Parse/BindComplete pop
// globex's context-switch entries, then a RowDescription and a DataRow
// "acme-forged" arrive where globex's query is owed, and their
// ReadyForQuery ends globex's query (globex is handed acme's rows as its
// own). That ReadyForQuery also releases the connection while globex's own
// switch and query are still to be answered; acme's second client, waiting
// for the pool, gets it directly and reads globex's answers: its context
// switch's row (globex's tenant values) and globex's rows ("Gina").
func TestTxAttack2PhantomSyncCrossesRowsBetweenTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	victim := e.connect(t, "app_user.globex")
	reader := txrHijack(t, e.connect(t, "app_user.acme"))
	w := txrHijack(t, e.connect(t, "app_user.acme"))
	tx2ErrorThenLoneQuery(t, w)
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

// TestTxAttack2SkippedExecuteAfterErrorDefeatsUnsyncedHoldTimeout: the
// same pin through the extended protocol only: after the answered error,
// acme sends Bind/Execute/Flush (no Sync). The server skips them; the
// relay owes their answers, so unsynced_hold_timeout never ends acme.
func TestTxAttack2SkippedExecuteAfterErrorDefeatsUnsyncedHoldTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.UnsyncedHoldTimeout = 300 * time.Millisecond
		c.QueryWaitTimeout = 3 * time.Second
	})
	victim := e.connect(t, "app_user.globex")
	w := txrHijack(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	if got := tx2UntilError(w); got[len(got)-1] != "ErrorResponse" {
		t.Fatalf("acme's failing batch: %v", got)
	}
	w.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	time.Sleep(200 * time.Millisecond)
	tx2VictimReads(t, victim, pgx.QueryExecModeExec)
}

// TestTxAttack2AttributeNotationSetseedReachesNextTenant: setseed is
// refused in transaction pooling by the transaction-mode rules, which look
// at FuncCall nodes only. In attribute notation, (0.5::float8).setseed is
// the same call, parsed as an A_Indirection: the main guard checks that
// form only against its deny list (setseed is not on it), and the
// transaction-mode rules do not check it at all. The seed stays on the
// server session and the next tenant's random() is predetermined by acme.
func TestTxAttack2AttributeNotationSetseedReachesNextTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	super := e.super(t)
	var want string
	if _, err := super.Exec(testCtx(t), "SELECT setseed(0.5)"); err != nil {
		t.Fatal(err)
	}
	if err := super.QueryRow(testCtx(t), "SELECT random()::text").Scan(&want); err != nil {
		t.Fatal(err)
	}
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	_, err := attacker.Exec(testCtx(t), "SELECT (0.5::float8).setseed", pgx.QueryExecModeSimpleProtocol)
	t.Logf("acme's attribute-notation setseed: %v", err)
	var got string
	if err := victim.QueryRow(testCtx(t), "SELECT random()::text", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got == want {
		t.Errorf("globex's random() was seeded by acme: %s", got)
	}
}

// TestTxAttack2AttributeNotationSessionAdvisoryLock: the same gap for the
// session advisory lock functions: (key).pg_advisory_lock takes a session
// lock that outlives acme's transaction, stays on the pooled server
// connection, and stalls every tenant that takes that key (here globex, on
// the other connection of the pool, cannot get it while acme is idle).
func TestTxAttack2AttributeNotationSessionAdvisoryLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(2)(c)
		c.StateAudit = false
	})
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	// globex holds one connection in a block first, so acme runs on the
	// other one and globex cannot land on acme's (idle) session later.
	tx, err := victim.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(testCtx(t))
	var pid1, pid2 int
	_ = tx.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&pid2)
	_, err = attacker.Exec(testCtx(t), "SELECT (4242::bigint).pg_advisory_lock", pgx.QueryExecModeSimpleProtocol)
	t.Logf("acme's attribute-notation pg_advisory_lock: %v", err)
	_ = attacker.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&pid1)
	var ok bool
	if err := tx.QueryRow(testCtx(t), "SELECT pg_try_advisory_xact_lock(4242)").Scan(&ok); err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Errorf("globex (pid %d) cannot take advisory key 4242: acme's session lock (pid %d) outlived its transaction", pid2, pid1)
	}
}

// TestTxAttack2LocalSeedSettingReachesNextTenant: the "seed" setting is
// setseed in GUC form. A session SET of it is refused (untracked), but SET
// LOCAL seed and set_config('seed', …, true) are allowed as
// transaction-local. Its assign hook seeds the random generator, and the
// revert at the end of the transaction does not reseed it (PostgreSQL arms
// the hook only for an interactive SET), so the seed outlives acme's
// transaction and globex's random() is predetermined by acme.
func TestTxAttack2LocalSeedSettingReachesNextTenant(t *testing.T) {
	t.Parallel()
	for name, attack := range map[string]string{
		"set_local":  "BEGIN; SET LOCAL seed = 0.5; COMMIT",
		"set_config": "SELECT set_config('seed', '0.5', true)",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, txMode(1))
			super := e.super(t)
			var want string
			if _, err := super.Exec(testCtx(t), "SELECT setseed(0.5)"); err != nil {
				t.Fatal(err)
			}
			if err := super.QueryRow(testCtx(t), "SELECT random()::text").Scan(&want); err != nil {
				t.Fatal(err)
			}
			attacker := e.connect(t, "app_user.acme")
			victim := e.connect(t, "app_user.globex")
			_, err := attacker.Exec(testCtx(t), attack, pgx.QueryExecModeSimpleProtocol)
			t.Logf("acme's %s: %v", attack, err)
			var got string
			if err := victim.QueryRow(testCtx(t), "SELECT random()::text", pgx.QueryExecModeSimpleProtocol).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got == want {
				t.Errorf("globex's random() was seeded by acme: %s", got)
			}
		})
	}
}

// TestTxAttack2FailedShortSwitchReportsNoOtherTenantsParameters: globex's
// failing simple query rides on a short switch that rolls back with it, so
// the server is back on acme's application_name; globex must not be told
// acme's value by ParameterStatus (held: PostgreSQL reports only values
// that differ from the last one it reported, and the relay's next switch
// is a full one).
func TestTxAttack2FailedShortSwitchReportsNoOtherTenantsParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	mustExec(t, attacker, "SET application_name = 'acme-secret-app'")
	mustExec(t, attacker, "SELECT 1")
	w := txrHijack(t, victim)
	var reported []string
	for _, q := range []string{"SELECT 1/0", "SELECT 1", "SELECT 1/0; SELECT 2"} {
		w.send(&pgproto3.Query{String: q})
		for {
			m := w.until0()
			if ps, ok := m.(*pgproto3.ParameterStatus); ok {
				reported = append(reported, ps.Name+"="+ps.Value)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
	}
	for _, r := range reported {
		if strings.Contains(r, "acme") {
			t.Errorf("globex was told acme's parameter: %v", reported)
		}
	}
}

// TestTxAttack2GuardOffFunctionCallSetConfig: with guard = off a
// FunctionCall of set_config (OID 2078, is_local false) reaches the relay
// unchecked; it must never leave work_mem on the shared connection
// (held: the relay ends the client and closes the connection).
func TestTxAttack2GuardOffFunctionCallSetConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaGuardOff)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := txrHijack(t, attacker)
	w.send(&pgproto3.FunctionCall{Function: 2078, ArgFormatCodes: []uint16{0},
		Arguments: [][]byte{[]byte("work_mem"), []byte("77kB"), []byte("false")}, ResultFormatCode: 0})
	t.Logf("acme: %v", txaDrain(w))
	if v := txrSetting(t, victim, "work_mem"); v == "77kB" {
		t.Errorf("globex runs with acme's work_mem %s", v)
	}
}

// TestTxAttack2SuspendedPortalAcrossSyncInBlock: inside a block, acme binds
// a named portal over its rows, executes it with a row limit
// (PortalSuspended), syncs, and commits with a simple query; no portal or
// cursor of acme's may survive for globex (held: non-holdable portals end
// with the transaction; the audit checks pg_cursors).
func TestTxAttack2SuspendedPortalAcrossSyncInBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := txrHijack(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN"})
	w.until(1)
	w.send(&pgproto3.Parse{Query: "SELECT name FROM contacts"}, &pgproto3.Bind{DestinationPortal: "p"},
		&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})
	if r := w.until(1); r.status != 'T' || len(r.errors) > 0 {
		t.Fatalf("acme: %v %v %c", r.types, r.errors, r.status)
	}
	w.send(&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Query{String: "COMMIT"}, &pgproto3.Sync{})
	if r := w.until(2); r.status != 'I' {
		t.Fatalf("acme: %v %v %c", r.types, r.errors, r.status)
	}
	w.send(&pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
	r := w.until(1)
	if len(r.errors) == 0 {
		t.Errorf("acme's portal outlived its transaction: %v", r.types)
	}
	tx2VictimReads(t, victim, pgx.QueryExecModeExec)
}
