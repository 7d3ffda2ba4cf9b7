package e2e

// Attacks on transaction pooling (pool_mode = transaction): one tenant
// trying to read, change or stall another through a shared server
// connection. Every test asserts the safe behaviour; each comment explains
// the attack and what once let it through. All run with state_audit on
// (proxytest), unless a test says otherwise to show what a production
// proxy (audit off) hands the next tenant.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// txaNoAudit is transaction pooling of one connection with the state audit
// off, as in production: the audit would otherwise close the tainted
// connection and hide what the next tenant gets.
func txaNoAudit(c *config.Config) {
	txMode(1)(c)
	c.StateAudit = false
}

// txaGuardOff is transaction pooling of one connection with guard = off:
// docs/pooling.md says the transaction-pooling rules still run.
func txaGuardOff(c *config.Config) {
	txMode(1)(c)
	c.Guard = false
}

// txaVictimCanWrite asserts that globex can still write (no read-only
// default reached it) and sees only its rows.
func txaVictimCanWrite(t *testing.T, victim *pgx.Conn) {
	t.Helper()
	if _, err := victim.Exec(testCtx(t), "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Gus')"); err != nil {
		t.Errorf("globex cannot write after acme's attack: %v", err)
	}
	if got := names(t, victim, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Gina", "Gus"}) && !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// txaSetReadOnly makes default_transaction_read_only = on a tracked setting
// of acme (a plain simple-query SET, the documented way).
func txaSetReadOnly(t *testing.T, w *rawWire) {
	t.Helper()
	w.send(&pgproto3.Query{String: "SET default_transaction_read_only = on"})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("SET: %v", r.errors)
	}
}

// ---------------------------------------------------------------------
// A ROLLBACK in the same batch undoes a tracked SET/RESET, but multigres
// commits the batch's effects at the Sync anyway.
// ---------------------------------------------------------------------

// TestTxAttackExtendedRollbackUndoesTrackedReset: acme SETs
// default_transaction_read_only (tracked), then sends in one extended
// batch an unnamed "RESET default_transaction_read_only" and an unnamed
// "ROLLBACK". PostgreSQL runs both in the batch's implicit transaction:
// the ROLLBACK (WARNING "there is no transaction in progress") aborts it,
// so the RESET is undone and the session keeps read-only. multigres only
// looks for errors: at the Sync it records the RESET (noteEffects commits
// t.batchFx whenever the batch did not fail), so it believes the
// connection has no session setting and the next tenant's switch resets
// nothing. The audit closes such a connection in tests; in production
// (see ...NoAudit) globex runs read-only.
func TestTxAttackExtendedRollbackUndoesTrackedReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	txaSetReadOnly(t, w)
	w.send(&pgproto3.Parse{Query: "RESET default_transaction_read_only"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("attack batch: %v", r.errors)
	}
	txaVictimCanWrite(t, victim)
}

// TestTxAttackExtendedRollbackUndoesTrackedResetNoAudit is the same attack
// with the state audit off (production): globex gets acme's read-only
// session default and its INSERT fails.
func TestTxAttackExtendedRollbackUndoesTrackedResetNoAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	txaSetReadOnly(t, w)
	w.send(&pgproto3.Parse{Query: "RESET default_transaction_read_only"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("attack batch: %v", r.errors)
	}
	if v := currentSetting(t, victim, "default_transaction_read_only"); v != "off" {
		t.Errorf("acme's default_transaction_read_only reached globex: %q", v)
	}
	txaVictimCanWrite(t, victim)
}

// TestTxAttackSimpleRollbackUndoesTrackedReset: the same with the
// ROLLBACK as a simple Query after the extended RESET (no Sync between):
// the Query's ReadyForQuery commits t.batchFx although the Query rolled
// the implicit transaction back.
func TestTxAttackSimpleRollbackUndoesTrackedReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	txaSetReadOnly(t, w)
	w.send(&pgproto3.Parse{Query: "RESET default_transaction_read_only"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "ROLLBACK"}, &pgproto3.Sync{})
	if r := w.until(2); len(r.errors) > 0 {
		t.Fatalf("attack batch: %v", r.errors)
	}
	txaVictimCanWrite(t, victim)
}

// TestTxAttackSavepointRollbackUndoesTrackedSet: BEGIN, SAVEPOINT, an
// unnamed SET, ROLLBACK TO SAVEPOINT, COMMIT in one extended batch (the
// SET passes the "outside a block" check: the client has not seen 'T').
// The server undoes the SET; multigres records it at the Sync ('I'). The
// model now says acme's TimeZone is on the connection while the server
// has the default: acme's other clients (same context, no switch) run
// under a TimeZone that differs from what multigres reported to them.
func TestTxAttackSavepointRollbackUndoesTrackedSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Name: "b", Query: "BEGIN"}, &pgproto3.Bind{PreparedStatement: "b"}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Bind{PreparedStatement: "sp"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SET TimeZone = 'Pacific/Chatham'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "rb", Query: "ROLLBACK TO SAVEPOINT s"}, &pgproto3.Bind{PreparedStatement: "rb"}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "c", Query: "COMMIT"}, &pgproto3.Bind{PreparedStatement: "c"}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	r := w.until(1)
	if len(r.errors) > 0 || r.status != 'I' {
		t.Fatalf("attack batch: %v %c", r.errors, r.status)
	}
	// PostgreSQL undid the SET: acme's session has the default TimeZone,
	// whatever multigres now believes (the audit compares the two).
	if v := txaValue(t, w, "SELECT current_setting('TimeZone')"); v == "Pacific/Chatham" {
		t.Errorf("the rolled-back SET is in effect: %q", v)
	}
}

// txaUntil is until for an attacker whose connection a fixed proxy may
// end instead of answering: it stops at the end of the connection.
func txaUntil(w *rawWire, n int) (r rawResult, ended bool) {
	for n > 0 {
		m, err := w.fe.Receive()
		if err != nil {
			return r, true
		}
		r.types = append(r.types, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			r.errors = append(r.errors, m.Code+" "+m.Message)
		case *pgproto3.ReadyForQuery:
			r.status = m.TxStatus
			n--
		}
	}
	return r, false
}

// txaDrain reads until a ReadyForQuery, an error or the end of the
// connection, whichever comes first, ignoring what it reads.
func txaDrain(w *rawWire) (types []string) {
	for {
		m, err := w.fe.Receive()
		if err != nil {
			return append(types, "EOF")
		}
		types = append(types, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return types
		}
	}
}

// txaValue runs a one-value simple query on a raw client.
func txaValue(t *testing.T, w *rawWire, sql string) string {
	t.Helper()
	w.send(&pgproto3.Query{String: sql})
	var v string
	for {
		m, err := w.fe.Receive()
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			v = string(m.Values[0])
		case *pgproto3.ErrorResponse:
			t.Fatalf("%s: %s %s", sql, m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return v
		}
	}
}

// ---------------------------------------------------------------------
// The previous client's client_encoding decodes the next client's switch.
// ---------------------------------------------------------------------

// TestTxAttackClientEncodingManglesNextSwitch: client_encoding is a tracked
// setting, and LATIN1 is an ASCII-safe encoding the guard allows. The
// server decodes every message's text, Bind parameters included, with the
// client_encoding in effect when it reads the message. The next tenant's
// context switch binds its values (context, resolved variables, tracked
// settings) as text parameters while the connection still has acme's
// LATIN1: globex's UTF-8 values are decoded as LATIN1 and set mangled
// (here application_name "Zürich" becomes "ZÃ¼rich"). Any non-ASCII
// search_path, resolved variable or setting of another tenant is
// rewritten by a neighbour's choice of encoding.
func TestTxAttackClientEncodingManglesNextSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	// search_path keeps non-ASCII text as given (application_name would
	// replace it with question marks).
	victim, err := e.connectWith(t, "app_user.globex", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
		c.RuntimeParams["search_path"] = `"Zürich", public`
	})
	if err != nil {
		t.Fatal(err)
	}
	before := currentSetting(t, victim, "search_path")
	if before != `"Zürich", public` {
		t.Fatalf("globex's search_path before: %q", before)
	}
	attacker := e.connect(t, "app_user.acme")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "SET client_encoding = 'LATIN1'"})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatalf("SET client_encoding: %v", r.errors)
	}
	if v := currentSetting(t, victim, "search_path"); v != before {
		t.Errorf("globex's search_path after acme's client_encoding: %q, was %q", v, before)
	}
}

// ---------------------------------------------------------------------
// A simple-protocol COPY FROM STDIN swallows a pipelined message.
// ---------------------------------------------------------------------

// TestTxAttackSimpleCopyPipelinedQueryHoldsConnection: a simple Query
// "COPY ... FROM STDIN" with a second simple Query pipelined behind it.
// The server, in COPY IN, reads the second Query as a bad COPY message,
// which the relay still owes an answer (enterCopyIn keeps every owed
// entry but Syncs). Held: PostgreSQL answers with FATAL 08P01 "protocol
// synchronization was lost" and closes the session, and the relay closes
// the connection; other tenants get a fresh one. (The comment word makes
// the first query take the full switch.)
func TestTxAttackSimpleCopyPipelinedQueryHoldsConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.QueryWaitTimeout = time.Second
	})
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	attacker := e.connect(t, "app_user.acme")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "COPY copysink FROM STDIN -- begin"}, &pgproto3.Query{String: "SELECT 1"})
	txaDrain(w)
	other, err := e.tryConnect(t, "app_user.globex", proxytest.AppUserPassword)
	if err != nil {
		t.Fatalf("another tenant while acme is idle after its COPY: %v", err)
	}
	if got := names(t, other, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
}

// ---------------------------------------------------------------------
// guard = off: session state the transaction-pooling rules do not see.
// ---------------------------------------------------------------------

// TestTxAttackGuardOffPgSettingsUpdate: UPDATE pg_settings is set_config(
// name, value, false) in disguise. Only the tenant rules (inspect) refuse
// it; with guard = off the transaction-pooling rules (inspectTx) let it
// through and the session default reaches the next tenant.
func TestTxAttackGuardOffPgSettingsUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaGuardOff)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	_, err := attacker.Exec(testCtx(t), "UPDATE pg_settings SET setting = 'on' WHERE name = 'default_transaction_read_only'")
	if err == nil {
		t.Errorf("UPDATE pg_settings accepted in transaction pooling with guard = off")
	}
	txaVictimCanWrite(t, victim)
}

// TestTxAttackGuardOffDoBlockSetConfig: a DO block runs SQL the rules
// cannot see; set_config(..., false) inside it changes the shared
// session. With guard = off only the tenant rules would refuse DO.
func TestTxAttackGuardOffDoBlockSetConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaGuardOff)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	_, err := attacker.Exec(testCtx(t), "DO $$ BEGIN PERFORM set_config('default_transaction_read_only', 'on', false); END $$")
	if err == nil {
		t.Errorf("DO block with a session set_config accepted in transaction pooling with guard = off")
	}
	txaVictimCanWrite(t, victim)
}

// ---------------------------------------------------------------------
// A relative setting value is re-applied on top of the previous client's.
// ---------------------------------------------------------------------

// TestTxAttackDateStyleOrderLeaksIntoPartialDateStyle: DateStyle takes
// partial values: "ISO" changes only the output style and keeps the
// field order the session has. pgJDBC and others log in with DateStyle =
// ISO (a tracked startup parameter). multigres records the text "ISO" and
// re-applies it with set_config on whatever connection the client lands
// on, without resetting first: on a connection acme left at "SQL, DMY",
// globex's DateStyle becomes "ISO, DMY", and globex's '01/02/2024' is 1
// February instead of 2 January. The audit does not see it: it
// canonicalises the model's "ISO" on the same session, which gives
// "ISO, DMY" again.
func TestTxAttackDateStyleOrderLeaksIntoPartialDateStyle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	victim, err := e.connectWith(t, "app_user.globex", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
		c.RuntimeParams["DateStyle"] = "ISO"
	})
	if err != nil {
		t.Fatal(err)
	}
	if v := currentSetting(t, victim, "DateStyle"); v != "ISO, MDY" {
		t.Fatalf("globex's DateStyle before the attack: %q", v)
	}
	attacker := e.connect(t, "app_user.acme")
	mustExec(t, attacker, "SET DateStyle = 'SQL, DMY'")
	if v := currentSetting(t, victim, "DateStyle"); v != "ISO, MDY" {
		t.Errorf("globex's DateStyle after acme's SET: %q", v)
	}
	var d string
	if err := victim.QueryRow(testCtx(t), "SELECT '01/02/2024'::date::text").Scan(&d); err != nil {
		t.Fatal(err)
	}
	if d != "2024-01-02" {
		t.Errorf("globex's '01/02/2024' is %s after acme's SET DateStyle", d)
	}
}

// ---------------------------------------------------------------------
// DEALLOCATE ALL that the server skips.
// ---------------------------------------------------------------------

// TestTxAttackSkippedDeallocateAllBreaksNextSwitch: forwardTx forgets all
// of the connection's prepared statements (multigres' own mg_switch*/
// mg_commit included) as soon as it forwards a simple "DEALLOCATE ALL",
// because it is not transactional. But a simple Query that follows a
// failed extended message before the Sync is skipped by the server: the
// statements stay. The next tenant's switch re-sends "Parse mg_commit",
// the server answers 42P05 "already exists", and that tenant is ended
// with FATAL 08006 (one victim per attack, at will).
func TestTxAttackSkippedDeallocateAllBreaksNextSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "DEALLOCATE ALL"}, &pgproto3.Sync{})
	if r, ended := txaUntil(w, 1); !ended && (len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "22012")) {
		t.Fatalf("attack batch: %v %v", r.types, r.errors)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// TestTxAttackSkippedDeallocateAllBreaksNextSwitchNoAudit: the same with
// the audit off (production), where nothing closes the connection first.
func TestTxAttackSkippedDeallocateAllBreaksNextSwitchNoAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "DEALLOCATE ALL"}, &pgproto3.Sync{})
	txaUntil(w, 1)
	rows, err := victim.Query(testCtx(t), "SELECT name FROM contacts")
	if err == nil {
		var got []string
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err == nil && !eq(got, []string{"Gina"}) {
			t.Errorf("globex sees %v", got)
		}
	}
	if err != nil {
		t.Errorf("globex's query after acme's skipped DEALLOCATE ALL: %v", err)
	}
}

// TestTxAttackDeallocateAllInAbortedBlockBreaksNextSwitch: the same
// without any extended message: in an aborted transaction block the
// server refuses DEALLOCATE ALL (25P02), yet multigres forgot every
// statement when it forwarded it.
func TestTxAttackDeallocateAllInAbortedBlockBreaksNextSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT 1/0"},
		&pgproto3.Query{String: "DEALLOCATE ALL"}, &pgproto3.Query{String: "ROLLBACK"})
	if r, ended := txaUntil(w, 4); !ended && (len(r.errors) != 2 || !strings.HasPrefix(r.errors[1], "25P02")) {
		t.Fatalf("attack: %v %v", r.types, r.errors)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// ---------------------------------------------------------------------
// standard_conforming_strings changed for one transaction.
// ---------------------------------------------------------------------

// TestTxAttackLocalStandardConformingStringsHidesSetConfig: the guard
// lexes SQL with standard_conforming_strings on, and multigres watches
// ParameterStatus to end a client whose server turns it off. But
// set_config('standard_conforming_strings', 'off', true) (or SET LOCAL)
// passes every rule, and a transaction-local change is never reported:
// PostgreSQL reports GUC_REPORT values at ReadyForQuery, when the local
// value is gone. In one extended batch (one implicit transaction) the
// next Parse is lexed by the server with backslash escapes: where the
// guard reads
//
//	SELECT '\' AS a -- ' , pg_catalog.set_config('app.current_tenant_id', 'globex', true) AS b
//
// as a string and a comment, the server would run the set_config and acme
// would read globex's contacts. Held: the guard protects
// standard_conforming_strings (and backslash_quote) in SET LOCAL and
// set_config too (see also TestTxAttackHeldLocalSqlReadingSettings).
func TestTxAttackLocalStandardConformingStringsHidesSetConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	w := hijackRaw(t, attacker)
	w.send(
		&pgproto3.Parse{Query: "SELECT pg_catalog.set_config('standard_conforming_strings', 'off', true)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: `SELECT '\' AS a -- ' , pg_catalog.set_config('app.current_tenant_id', 'globex', true) AS b`}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT name FROM contacts ORDER BY name"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	var seen []string
	for {
		m, err := w.fe.Receive()
		if err != nil {
			break
		}
		if dr, ok := m.(*pgproto3.DataRow); ok && len(dr.Values) == 1 {
			seen = append(seen, string(dr.Values[0]))
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Logf("attack refused: %s %s", er.Code, er.Message)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	for _, v := range seen {
		if v == "Gina" {
			t.Errorf("acme read globex's contact through a transaction-local standard_conforming_strings = off: %v", seen)
		}
	}
}

// ---------------------------------------------------------------------
// Other tenants' SQL text through the statistics views.
// ---------------------------------------------------------------------

// TestTxAttackPgStatActivityShowsOtherTenantsSQL: every tenant's server
// connections log in as the same role (app_user), and PostgreSQL shows a
// role the query text of its own backends in pg_stat_activity. globex,
// idle in a transaction on one pooled connection, ran a statement with a
// secret literal; acme, on the other, would read it. Held: hardening
// revokes pg_stat_get_activity and pg_stat_get_backend_activity from the
// tenant roles (as pg_prepared_statements, pg_cursors, pg_locks).
func TestTxAttackPgStatActivityShowsOtherTenantsSQL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(2))
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	tx, err := victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 'globex-secret-4242' AS token"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SELECT coalesce(string_agg(query, ' | '), '') FROM pg_stat_activity",
		"SELECT coalesce(string_agg(pg_stat_get_backend_activity(s), ' | '), '') FROM pg_stat_get_backend_idset() s",
	} {
		var seen string
		if err := attacker.QueryRow(ctx, q).Scan(&seen); err != nil {
			continue // refused (42501): held
		}
		if strings.Contains(seen, "globex-secret-4242") {
			t.Errorf("acme reads globex's SQL text with %q: %s", q, seen)
		}
	}
}

// ---------------------------------------------------------------------
// An unnamed Parse the server skipped.
// ---------------------------------------------------------------------

// TestTxAttackSkippedUnnamedParseRunsPreviousTenantsStatement: forwardParse
// records an unnamed Parse as the server's unnamed statement
// (UnnamedOwner) when it forwards it; if an earlier message of the batch
// fails, the server skips the Parse, but skipToSync only reverts named
// statements. The server still has the unnamed statement of whoever
// parsed one last: here globex's, which carries a literal. In acme's next
// batch (same connection, same context: no switch), ensurePrepared sees
// UnnamedOwner = acme's statement and sends acme's Bind "" straight to
// the server, which binds and runs globex's statement: acme receives
// globex's literal (and could Describe it for the statement's shape). The
// audit is off: its own simple query would drop the unnamed statement and
// hide the attack (it does not compare unnamed-statement ownership).
func TestTxAttackSkippedUnnamedParseRunsPreviousTenantsStatement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	wv := hijackRaw(t, victim)
	wv.send(&pgproto3.Parse{Query: "SELECT 'globex-secret-7'::text AS token"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if r := wv.until(1); len(r.errors) > 0 {
		t.Fatalf("globex: %v", r.errors)
	}
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Name: "f", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "f"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 'acme'::text AS token"}, // skipped by the server
		&pgproto3.Sync{})
	if r := w.until(1); len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "22012") {
		t.Fatalf("attack batch: %v %v", r.types, r.errors)
	}
	w.send(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	var got []string
	for {
		m, err := w.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if dr, ok := m.(*pgproto3.DataRow); ok {
			got = append(got, string(dr.Values[0]))
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	for _, v := range got {
		if v == "globex-secret-7" {
			t.Errorf("acme's Bind of its unnamed statement ran globex's statement: %v", got)
		}
	}
}

// ---------------------------------------------------------------------
// COPY IN ended by the server: a Sync the relay took for ignored.
// ---------------------------------------------------------------------

// txaCopyIn starts an extended-protocol COPY FROM STDIN (libpq style:
// Parse/Bind/Execute/Sync) and waits for CopyInResponse.
func txaCopyIn(t *testing.T, w *rawWire) {
	t.Helper()
	w.send(&pgproto3.Parse{Query: "COPY copysink FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	for {
		m := w.until0()
		if _, ok := m.(*pgproto3.CopyInResponse); ok {
			return
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("copy: %s %s", er.Code, er.Message)
		}
	}
}

// TestTxAttackCopyErrorReleasesBusyConnection: during an extended COPY IN
// acme sends, in one write, a bad data row, a Sync and a simple Query.
// The relay still believes the server is in COPY IN, so the Sync is owed
// nothing. The server fails the row (22P02), skips to that Sync, answers
// it, and then runs the Query. The relay, on the error, skips its owed
// entries to the next owed Sync (none), dropping the Query; the Sync's
// ReadyForQuery then arrives with nothing owed, unownedFrame takes it for
// a late answer, and the connection goes back to the pool while the
// server is running acme's Query. globex gets it next: acme's answers
// (RowDescription, rows, ReadyForQuery) arrive for globex's context switch
// and globex is ended (or, on a connection that needs no switch, given
// acme's results for its own query).
func TestTxAttackCopyErrorReleasesBusyConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	txaCopyIn(t, w)
	w.send(&pgproto3.CopyData{Data: []byte("not-a-number\n")}, &pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT 'acme-q2'::text, pg_sleep(0.3)"})
	r, _ := txaUntil(w, 1)
	t.Logf("acme saw %v %v", r.types, r.errors)
	rows, err := victim.Query(testCtx(t), "SELECT name FROM contacts")
	if err == nil {
		var got []string
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err == nil && !eq(got, []string{"Gina"}) {
			t.Errorf("globex sees %v", got)
		}
	}
	if err != nil {
		t.Errorf("globex's query after acme's COPY: %v", err)
	}
}

// TestTxAttackCopyErrorReleasesBusyConnectionNoAudit: the same with the
// audit off (production; the audit's own query otherwise reads acme's
// answers and closes the connection): globex's first query after acme
// reads acme's answers in place of its context switch's and globex is
// ended with FATAL 08006 (any tenant, at will: a denial of service, and
// globex's switch and statements share a transaction with whatever acme
// pipelined).
func TestTxAttackCopyErrorReleasesBusyConnectionNoAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	txaCopyIn(t, w)
	w.send(&pgproto3.CopyData{Data: []byte("not-a-number\n")}, &pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT 'acme-q2'::text"})
	txaUntil(w, 1)
	rows, err := victim.Query(testCtx(t), "SELECT name FROM contacts")
	if err == nil {
		var got []string
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err == nil && !eq(got, []string{"Gina"}) {
			t.Errorf("globex sees %v", got)
		}
	}
	if err != nil {
		t.Errorf("globex's query after acme's COPY: %v", err)
	}
}

// TestTxAttackSimpleCopyErrorSyncReleasesBusyConnection: the same in the
// simple protocol. During "COPY ... FROM STDIN" (a Query) acme sends a bad
// row, a Sync and a Query in one write. The Sync, sent in COPY IN, is
// owed nothing; the server fails the COPY (ErrorResponse, ReadyForQuery)
// and then answers the Sync with a ReadyForQuery of its own, which the
// relay takes for the pipelined Query's: the connection goes back to the
// pool while the server is still running acme's Query.
func TestTxAttackSimpleCopyErrorSyncReleasesBusyConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	// "begin" in the comment makes the COPY take the full switch (a short
	// one would make the relay put a full switch in front of the Query,
	// whose answers then no longer line up: fail closed).
	w.send(&pgproto3.Query{String: "COPY copysink FROM STDIN -- begin"})
	for {
		if _, ok := w.until0().(*pgproto3.CopyInResponse); ok {
			break
		}
	}
	w.send(&pgproto3.CopyData{Data: []byte("not-a-number\n")}, &pgproto3.Sync{},
		&pgproto3.Query{String: "SELECT 'acme-q2'::text, pg_sleep(0.3)"})
	r, _ := txaUntil(w, 2)
	t.Logf("acme saw %v %v", r.types, r.errors)
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// ---------------------------------------------------------------------
// Shared server statements keep the constants of the tenant that parsed
// them.
// ---------------------------------------------------------------------

// TestTxAttackSharedStatementKeepsParsersDateStyle: clients that prepare
// the same SQL share one server statement (mg_<hash of text and types>),
// and a Parse of a statement the connection already has is answered by
// multigres. But PostgreSQL converts a typed literal ('01/02/2024'::date,
// a timestamptz, an interval) at parse analysis, under the session's
// DateStyle/TimeZone/IntervalStyle then, and the plan cache does not
// re-analyse when those change. acme, with DateStyle DMY, prepares the
// application's SQL first; globex (MDY) prepares the same text later and
// runs acme's statement: its 2 January is 1 February. In SaaS every
// tenant runs the same SQL, so one tenant picks how another tenant's
// literals are read.
func TestTxAttackSharedStatementKeepsParsersDateStyle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	const q = "SELECT '01/02/2024'::date::text"
	mustExec(t, attacker, "SET DateStyle = 'ISO, DMY'")
	var d string
	if err := attacker.QueryRow(ctx, q).Scan(&d); err != nil || d != "2024-02-01" {
		t.Fatalf("acme's own date: %q %v", d, err)
	}
	if err := victim.QueryRow(ctx, q).Scan(&d); err != nil {
		t.Fatal(err)
	}
	if d != "2024-01-02" {
		t.Errorf("globex (DateStyle %s) reads '01/02/2024' as %s: the statement acme parsed", currentSetting(t, victim, "DateStyle"), d)
	}
}

// ---------------------------------------------------------------------
// Transaction defaults left for the login of the next client.
// ---------------------------------------------------------------------

// TestTxAttackDeferrableDefaultsStallNextLogin: the full context switch
// opens its own READ COMMITTED READ WRITE NOT DEFERRABLE transaction on a
// connection whose previous client set transaction defaults, but a
// login applies its context with backend.Apply, whose implicit
// transaction takes those defaults. acme leaves default_transaction_
// isolation = serializable, read_only = on, deferrable = on on one pooled
// connection (tracked settings, the documented way) and keeps a
// serializable read-write transaction open on the other: the next login
// on the first connection waits for a safe snapshot until acme ends its
// transaction; handshake_timeout does not bound that wait (the client
// gets nothing at all until it gives up).
func TestTxAttackDeferrableDefaultsStallNextLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(2)(c)
		c.HandshakeTimeout = 3 * time.Second
		// The audit's own query would stall the same way at the release
		// (and hold the connection): off, to see what a login gets.
		c.StateAudit = false
	})
	ctx := testCtx(t)
	holder := e.connect(t, "app_user.acme")
	setter := e.connect(t, "app_user.acme")
	tx, err := holder.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT count(*) FROM contacts"); err != nil {
		t.Fatal(err)
	}
	if _, err := setter.PgConn().Exec(ctx, "SET default_transaction_isolation = 'serializable'; "+
		"SET default_transaction_read_only = on; SET default_transaction_deferrable = on").ReadAll(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	victim, err := pgx.Connect(lctx, e.url("app_user.globex", proxytest.AppUserPassword))
	if err != nil {
		t.Fatalf("globex's login after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	defer victim.Close(context.Background())
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// ---------------------------------------------------------------------
// Attacks that held (regression tests)
// ---------------------------------------------------------------------

// TestTxAttackHeldCopyFailThenPipelinedQuery: during COPY IN, CopyFail, a
// Sync and a Query in one write: the relay marks the copy ended at the
// CopyFail, so it owes the Sync and the Query, and every answer lines up;
// the connection goes back idle.
func TestTxAttackHeldCopyFailThenPipelinedQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	txaCopyIn(t, w)
	w.send(&pgproto3.CopyFail{Message: "stop"}, &pgproto3.Sync{}, &pgproto3.Query{String: "SELECT 'acme-q2'::text"})
	r := w.until(2)
	if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "57014") {
		t.Errorf("acme: %v %v", r.types, r.errors)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// TestTxAttackHeldStartupOptions: startup parameters that would change how
// the server reads SQL, or set the role or an untracked setting, are
// refused at login.
func TestTxAttackHeldStartupOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	for _, opt := range []map[string]string{
		{"options": "-c standard_conforming_strings=off"},
		{"options": "-c backslash_quote=on"},
		{"options": "-c client_encoding=S_J_I_S"},
		{"client_encoding": "WIN932"},
		{"options": "-c role=postgres"},
		{"options": "-c default-transaction-read-only=on"},
		{"options": "-c session_replication_role=replica"},
	} {
		_, err := e.connectWith(t, "app_user.acme", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
			for k, v := range opt {
				c.RuntimeParams[k] = v
			}
		})
		if err == nil {
			t.Errorf("login with %v accepted", opt)
		}
	}
	victim := e.connect(t, "app_user.globex")
	txaVictimCanWrite(t, victim)
}

// TestTxAttackHeldLocalSqlReadingSettings: transaction-local changes of
// the settings that decide how the server reads SQL are refused by the
// guard, in every spelling.
func TestTxAttackHeldLocalSqlReadingSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	for _, q := range []string{
		"BEGIN; SET LOCAL standard_conforming_strings = off; COMMIT",
		"BEGIN; SET LOCAL \"Standard_Conforming_Strings\" TO off; COMMIT",
		"SELECT set_config('STANDARD_CONFORMING_STRINGS', 'off', true)",
		"BEGIN; SET LOCAL backslash_quote = on; COMMIT",
		"BEGIN; SET LOCAL client_encoding = 'Shift_JIS'; COMMIT",
		"SELECT set_config('client_encoding', 'b.i.g.5', true)",
		"BEGIN; SET LOCAL NAMES 'GBK'; COMMIT",
	} {
		if _, err := attacker.Exec(ctx, q); err == nil {
			t.Errorf("%s: accepted", q)
		}
	}
	if got := names(t, attacker, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Errorf("acme sees %v", got)
	}
}

// TestTxAttackHeldPipelinedBeginSetCommit: BEGIN, a tracked SET and
// COMMIT as three pipelined simple queries (the SET passes the "outside
// a block" check): the connection's settings become unknown and are
// reset for the next tenant.
func TestTxAttackHeldPipelinedBeginSetCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SET default_transaction_read_only = on"},
		&pgproto3.Query{String: "COMMIT"})
	w.until(3)
	txaVictimCanWrite(t, victim)
}

// TestTxAttackHeldExecuteWithoutBind: globex's first message after acme is
// an Execute of the unnamed portal without a Bind: it reaches no portal
// of acme's (the switch binds the unnamed portal itself; portals end with
// their transaction).
func TestTxAttackHeldExecuteWithoutBind(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	wa := hijackRaw(t, attacker)
	wa.send(&pgproto3.Parse{Query: "SELECT name FROM contacts ORDER BY name"}, &pgproto3.Bind{}, &pgproto3.Sync{})
	wa.until(1)
	wv := hijackRaw(t, victim)
	wv.send(&pgproto3.Execute{}, &pgproto3.Sync{})
	r := wv.until(1)
	for _, typ := range r.types {
		if typ == "DataRow" {
			t.Errorf("globex's bare Execute returned rows: %v", r.types)
		}
	}
}

// ---------------------------------------------------------------------
// Model fidelity of tracked values.
// ---------------------------------------------------------------------

// TestTxAttackSearchPathKeywordQuoting: flattenArgs quotes search_path
// elements with its own quoteIdent, which (unlike PostgreSQL's
// quote_identifier) does not quote keywords. SET search_path = 'default',
// public leaves "default", public on the server while multigres
// records default, public: the model no longer matches the session (the
// audit reports it) and the value re-applied elsewhere is spelled
// differently from the one PostgreSQL reports to the client.
func TestTxAttackSearchPathKeywordQuoting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	mustExec(t, attacker, "SET search_path = 'default', public")
	if got := names(t, attacker, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Errorf("acme sees %v", got)
	}
}

// ---------------------------------------------------------------------
// The shared statement cache as an oracle.
// ---------------------------------------------------------------------

// TestTxAttackSharedStatementOracle: a Parse of SQL the connection already
// has is answered by multigres without asking the server. With an empty
// search_path (SET LOCAL, in acme's own transaction) PostgreSQL cannot
// parse "... FROM contacts" (42P01), so acme can tell, deterministically,
// whether any tenant prepared a given SQL text (literals included) on the
// connection: ParseComplete means yes. Here acme confirms that globex
// looked up the contact 'Gina'. (In an aborted transaction block the same
// probe is now sent to the server.)
func TestTxAttackSharedStatementOracle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	const guessed = "SELECT email FROM contacts WHERE name = 'Gina'"
	wv := hijackRaw(t, victim)
	wv.send(&pgproto3.Parse{Name: "lookup", Query: guessed}, &pgproto3.Sync{})
	if r := wv.until(1); len(r.errors) > 0 {
		t.Fatal(r.errors)
	}
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Query{String: "BEGIN; SET LOCAL search_path = ''"})
	w.until(1)
	w.send(&pgproto3.Parse{Name: "probe", Query: guessed}, &pgproto3.Sync{})
	r := w.until(1)
	w.send(&pgproto3.Query{String: "ROLLBACK"})
	w.until(1)
	if len(r.errors) == 0 {
		t.Errorf("acme's Parse under an empty search_path succeeded (%v): the server already had globex's statement", r.types)
	}
}

// TestTxAttackHeldSharedStatementPlansFollowContext: acme and globex share
// one server statement for the same SQL; whether its plan is custom or
// generic, built under acme's context, the row-level security filter reads
// the context when it runs: globex sees only its rows.
func TestTxAttackHeldSharedStatementPlansFollowContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		attacker := e.connect(t, "app_user.acme")
		victim := e.connect(t, "app_user.globex")
		q := "SELECT name FROM contacts ORDER BY name -- " + mode
		mustExec(t, attacker, "SET plan_cache_mode = "+mode)
		mustExec(t, victim, "SET plan_cache_mode = "+mode)
		if _, err := attacker.Prepare(ctx, "s", q); err != nil {
			t.Fatal(err)
		}
		for range 6 {
			if got := namesStmt(t, attacker, "s"); !eq(got, []string{"Alice", "Bob"}) {
				t.Fatalf("%s: acme sees %v", mode, got)
			}
		}
		if _, err := victim.Prepare(ctx, "s", q); err != nil {
			t.Fatal(err)
		}
		if got := namesStmt(t, victim, "s"); !eq(got, []string{"Gina"}) {
			t.Errorf("%s: globex sees %v through the statement acme planned", mode, got)
		}
	}
}
