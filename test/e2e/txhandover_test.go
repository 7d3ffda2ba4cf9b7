package e2e

// Transaction pooling (pool_mode = transaction) hands a server connection
// to the next tenant with nothing of the previous client's on it: session
// SETs in every protocol shape, prepared statements and DEALLOCATE ALL,
// portals, COPY state, open transactions and their locks, and answers owed
// to pipelined messages; the pooling rules hold with guard = off; answers
// keep protocol order. acme is the client trying to leave something
// behind, globex the next tenant.
//
// Every test asserts the safe behaviour. Those in the first group failed
// before the relay was fixed, and each comment says what went wrong;
// those in the second never did.

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

// ---------------------------------------------------------------------
// Once broken: each test here failed before the relay was fixed
// ---------------------------------------------------------------------

// TestTxSetThroughNamedPortalIsRefused: a tracked session SET sent as the
// unnamed statement but executed through a NAMED portal was not tracked
// (effects ride on the unnamed portal only); it committed on the shared
// server connection and the next tenant inherited it: here
// default_transaction_read_only (globex could no longer write) and
// TimeZone/DateStyle (globex's dates silently misread). Now the Bind is
// refused with 0A000 and nothing reaches globex.
func TestTxSetThroughNamedPortalIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	for _, set := range []string{"SET default_transaction_read_only = on", "SET TimeZone = 'Pacific/Chatham'", "SET DateStyle = 'SQL, DMY'"} {
		w.send(&pgproto3.Parse{Query: set}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
		if r := w.until(1); len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "0A000") {
			t.Fatalf("%s: want the Bind refused with 0A000, got %v", set, r.errors)
		}
	}
	if v := currentSetting(t, victim, "TimeZone"); v == "Pacific/Chatham" {
		t.Errorf("acme's session TimeZone reached globex: %q", v)
	}
	if v := currentSetting(t, victim, "DateStyle"); strings.Contains(v, "DMY") {
		t.Errorf("acme's session DateStyle reached globex: %q", v)
	}
	if _, err := victim.Exec(testCtx(t), "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Gus')"); err != nil {
		t.Errorf("globex cannot write after acme's named-portal SET: %v", err)
	}
}

// TestTxSetBeforeLaterErrorStaysWithItsClient: an unnamed-portal SET's effects are
// kept in batchFx until the next Sync's ReadyForQuery, and dropped on any
// extended-protocol error. A simple Query placed between the SET and the
// failing message commits the implicit transaction (so the SET stays on
// the server), then the later error makes multigres forget it. The next
// tenant inherits the setting.
func TestTxSetBeforeLaterErrorStaysWithItsClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(
		&pgproto3.Parse{Query: "SET TimeZone = 'Pacific/Chatham'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 1"}, // commits the implicit transaction, SET included
		&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{})
	r := w.until(2)
	if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "22012") {
		t.Fatalf("attack pipeline: %v %v", r.types, r.errors)
	}
	if v := currentSetting(t, victim, "TimeZone"); v == "Pacific/Chatham" {
		t.Errorf("acme's session TimeZone reached globex: %q", v)
	}
}

// TestTxDeallocateAllInFailedQueryKeepsStatementsUsable: DEALLOCATE ALL is not
// transactional, but commitEffects only honours it when the simple query
// succeeds. "DEALLOCATE ALL; SELECT 1/0" drops every prepared statement on
// the shared server connection (multigres' own mg_switch_N/mg_commit
// included) while multigres still believes they exist:
//   - another client of the tenant gets 26000 for a statement it prepares
//     (ParseComplete is synthesized, the server has no such statement);
//   - another tenant's next context switch binds the vanished mg_switch_N
//     and is ended with FATAL 08006.
func TestTxDeallocateAllInFailedQueryKeepsStatementsUsable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	coTenant := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex") // login leaves the context at globex
	const q = "SELECT name FROM contacts ORDER BY name"
	if _, err := attacker.Prepare(ctx, "s", q); err != nil { // switch: prepares mg_switch_N, mg_commit
		t.Fatal(err)
	}
	_, err := attacker.PgConn().Exec(ctx, "DEALLOCATE ALL; SELECT 1/0").ReadAll()
	wantPgError(t, err, "22012", "")
	if _, err := coTenant.Prepare(ctx, "mine", q); err != nil {
		t.Errorf("acme's other client cannot prepare after the attack: %v", err)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Errorf("globex sees %v", got)
	}
}

// TestTxSkippedEvictionLeavesNoOrphanStatement: when the LRU evicts a
// statement, prepareOnServer sends Close for it in the same batch. If an
// earlier message of the batch fails, the server skips that Close, yet the
// statement is already gone from the LRU. The server keeps mg_<hash>;
// every later Parse of the same SQL on that connection, by any tenant,
// fails with 42P05 (and each failure removes it from the LRU again, so it
// never heals). In a SaaS every tenant runs the same SQL, so one tenant
// can break the application's queries for all tenants, connection by
// connection.
func TestTxSkippedEvictionLeavesNoOrphanStatement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.MaxPreparedStatements = 1
	})
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Name: "s1", Query: "SELECT 'A'::text"}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 {
		t.Fatal(r.errors)
	}
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "s2", Query: "SELECT 'B'::text"}, // evicts mg_A: its Close is skipped
		&pgproto3.Sync{})
	w.until(1)
	for i := range 2 {
		if _, err := victim.Prepare(ctx, fmt.Sprintf("v%d", i), "SELECT 'A'::text"); err != nil {
			t.Errorf("globex cannot prepare the same SQL on the shared connection (attempt %d): %v", i, err)
		}
	}
}

// TestTxLargePipelineDoesNotWedgeConnection: one query with a 64 MB result, then 48
// pipelined 1 MB queries, while the client reads everything. Before the
// fix the client pump blocked writing to the server while holding the
// client lock the server pump needed, and the connection was wedged for
// good (other tenants got 53300, Shutdown never returned). Rows now stream
// without the lock and each server write is bounded (15 s), so the client
// either gets every result or is ended in bounded time (docs/pooling.md,
// known limits: a RowDescription can still wait behind a blocked write),
// and the pool's only connection always comes back.
func TestTxLargePipelineDoesNotWedgeConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.ShutdownTimeout = 2 * time.Second
		c.QueryWaitTimeout = 25 * time.Second
	})
	attacker := e.connect(t, "app_user.acme")
	w := hijackRaw(t, attacker)
	const n = 48
	big := strings.Repeat("y", 1<<20)
	go func() {
		var buf []byte
		buf, _ = (&pgproto3.Query{String: "SELECT repeat('x', 1048576) FROM generate_series(1, 64)"}).Encode(buf)
		_, _ = w.hc.Conn.Write(buf)
		for range n {
			buf, _ = (&pgproto3.Query{String: "SELECT length('" + big + "')"}).Encode(buf[:0])
			if _, err := w.hc.Conn.Write(buf); err != nil {
				return
			}
		}
	}()
	// Read everything, as a well-behaved pipelining client does.
	start := time.Now()
	_ = w.hc.Conn.SetDeadline(time.Now().Add(40 * time.Second))
	ready := 0
	for ready < n+1 {
		m, err := w.fe.Receive()
		if err != nil {
			if time.Since(start) > 30*time.Second {
				t.Errorf("pipelined client stuck %v with %d of %d results: %v", time.Since(start), ready, n+1, err)
			}
			break
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			ready++
		}
	}
	w.hc.Conn.Close()
	// The pool's only connection must come back.
	if _, err := e.tryConnect(t, "app_user.globex", "app_user_password"); err != nil {
		t.Errorf("another tenant after the pipelining client left: %v", err)
	}
}

// TestTxExtendedCopyInReleasesConnection: libpq (PQexecParams) and
// other extended-protocol clients send Parse/Bind/Execute/Sync for COPY
// FROM STDIN, then CopyData, CopyDone and another Sync. PostgreSQL
// ignores the first Sync (it arrives in copy-in mode), so it sends one
// ReadyForQuery, but the relay owes two: the connection is never given
// back while the client stays connected; every later ReadyForQuery is
// matched one message late. Other tenants wait and get 53300. (Any
// client can do it on purpose, with the server idle, so neither
// idle_in_transaction_session_timeout nor tenant_idle_timeout ends it.)
func TestTxExtendedCopyInReleasesConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.QueryWaitTimeout = time.Second
	})
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	client := e.connect(t, "app_user.acme")
	w := hijackRaw(t, client)
	w.send(&pgproto3.Parse{Query: "COPY copysink FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	// Wait for CopyInResponse.
	for {
		m, err := w.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.CopyInResponse); ok {
			break
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("copy: %s %s", er.Code, er.Message)
		}
	}
	w.send(&pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	if r := w.until(1); len(r.errors) > 0 || r.status != 'I' {
		t.Fatalf("copy: %v %v %c", r.types, r.errors, r.status)
	}
	other, err := e.tryConnect(t, "app_user.globex", "app_user_password")
	if err != nil {
		t.Fatalf("another tenant while the COPY client is idle: %v", err)
	}
	if got := names(t, other, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
}

// TestTxQueryAfterExtendedErrorReleasesConnection: after an extended-protocol
// error PostgreSQL skips everything up to Sync, a simple Query included;
// skipToSync stops at a Query entry, so the relay owes one ReadyForQuery
// more than the server sends and never releases the connection while the
// client stays connected (documented for tenant_idle_timeout in
// limits.go, not for pooling). The client stays idle ('I') with the pool
// held: other tenants get 53300.
func TestTxQueryAfterExtendedErrorReleasesConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.QueryWaitTimeout = time.Second
	})
	client := e.connect(t, "app_user.acme")
	w := hijackRaw(t, client)
	w.send(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{})
	if r := w.until(1); r.status != 'I' {
		t.Fatalf("%v %v %c", r.types, r.errors, r.status)
	}
	if _, err := e.tryConnect(t, "app_user.globex", "app_user_password"); err != nil {
		t.Fatalf("another tenant while that client is idle: %v", err)
	}
}

// txGuardOff is transaction pooling with guard = off (context_signing does
// not matter for these attacks: they touch no context variable):
// docs/pooling.md says the
// transaction-pooling rules "run on every transaction-mode tenant
// connection, even with guard = off".
func txGuardOff(c *config.Config) {
	txMode(1)(c)
	c.Guard = false
}

// TestTxGuardOffRefusesListen: with guard = off, LISTEN is refused only by
// the tenant rules (inspect), which PoolingOnly turns off; inspectTx has
// no rule for it and "listen" is not a pooling pre-filter token. The
// LISTEN outlives the transaction on the shared server connection: the
// next tenant's session is subscribed, and notifications for the
// attacker's channel are delivered to whichever client holds the
// connection.
func TestTxGuardOffRefusesListen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txGuardOff)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	_, err := attacker.Exec(testCtx(t), "LISTEN acme_channel")
	if err == nil {
		t.Errorf("LISTEN accepted in transaction pooling with guard = off")
	}
	if got := names(t, victim, "SELECT pg_listening_channels()::text"); len(got) != 0 {
		t.Errorf("globex's pooled session listens on %v", got)
	}
}

// TestTxGuardOffSeesUnicodeEscapedFunctions: with guard = off the pooling
// pre-filter has no "u&" token, so a function name written with U&"..."
// escapes skips the parse and the transaction-pooling rules: a session
// advisory lock stays on the shared server connection after the client
// leaves, and set_config(..., false) of any parameter reaches the next
// tenant.
func TestTxGuardOffSeesUnicodeEscapedFunctions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txGuardOff)
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	_, err := attacker.Exec(ctx, `SELECT U&"pg\005fadvisory\005flock"(424242)`)
	if err == nil {
		t.Errorf(`session advisory lock through U&"..." accepted with guard = off`)
	}
	_, err = attacker.Exec(ctx, `SELECT U&"\0073et_config"('default_transaction_read_only', 'on', false)`)
	if err == nil {
		t.Errorf(`set_config(..., false) through U&"..." accepted with guard = off`)
	}
	attacker.Close(ctx)
	var locks int
	if err := e.super(t).QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242").Scan(&locks); err != nil {
		t.Fatal(err)
	}
	if locks != 0 {
		t.Errorf("acme's session advisory lock outlived its client on the pooled connection")
	}
	if _, err := victim.Exec(ctx, "INSERT INTO contacts (tenant_id, name) VALUES ('globex', 'Gus')"); err != nil {
		t.Errorf("globex cannot write after acme's set_config: %v", err)
	}
}

// TestTxSynthesizedAnswersFollowReadyForQuery: a Parse of a statement the server
// connection already has, pipelined after a Sync, is answered by
// multigres before the ReadyForQuery of that Sync (readyTx emits due
// synthesized answers before forwarding the 'Z'). Pipelining clients see
// ParseComplete before ReadyForQuery, out of protocol order.
func TestTxSynthesizedAnswersFollowReadyForQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	client := e.connect(t, "app_user.acme")
	w := hijackRaw(t, client)
	w.send(&pgproto3.Parse{Name: "a", Query: "SELECT 42"}, &pgproto3.Sync{})
	w.until(1)
	w.send(&pgproto3.Query{String: "SELECT pg_sleep(0.2)"}, &pgproto3.Parse{Name: "b", Query: "SELECT 42"}, &pgproto3.Sync{})
	r := w.until(2)
	want := "RowDescription DataRow CommandComplete ReadyForQuery ParseComplete ReadyForQuery"
	if got := strings.Join(r.types, " "); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
}

// TestTxSetseedIsRefused: setseed() is session state. A
// tenant could seed the shared server connection's random() generator, and
// the next tenant's random() values were the attacker's known sequence
// (think md5(random()::text) reset tokens). Now refused (0A000).
func TestTxSetseedIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	super := e.super(t)
	var predicted string
	if _, err := super.Exec(ctx, "SELECT setseed(0.25)"); err != nil {
		t.Fatal(err)
	}
	if err := super.QueryRow(ctx, "SELECT random()::text").Scan(&predicted); err != nil {
		t.Fatal(err)
	}
	_, err := attacker.Exec(ctx, "SELECT setseed(0.25)")
	wantPgError(t, err, "0A000", "setseed is not allowed in transaction pooling: the seed would carry over to other clients' random()")
	var got string
	if err := victim.QueryRow(ctx, "SELECT random()::text").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got == predicted {
		t.Errorf("globex's random() is the value acme predicted from its seed: %s", got)
	}
}

// ---------------------------------------------------------------------
// Never broken: kept as regression tests
// ---------------------------------------------------------------------

// TestTxPipelinedExtendedSetInBlockStaysWithItsClient: BEGIN and an unnamed SET
// pipelined in one extended batch (the SET passes the status check
// because the client has not seen 'T' yet) and then COMMIT: the
// connection's settings become unknown and are reset for the next tenant.
func TestTxPipelinedExtendedSetInBlockStaysWithItsClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SET TimeZone = 'Pacific/Chatham'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Sync{}, &pgproto3.Query{String: "COMMIT"})
	w.until(2)
	if v := currentSetting(t, victim, "TimeZone"); v == "Pacific/Chatham" {
		t.Errorf("TimeZone reached globex: %q", v)
	}
}

// TestTxUnnamedPortalSetStaysWithItsClient: the documented path (unnamed statement,
// unnamed portal) is tracked: it follows acme and never reaches globex.
func TestTxUnnamedPortalSetStaysWithItsClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.Parse{Query: "SET TimeZone = 'Pacific/Chatham'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	w.until(1)
	if v := currentSetting(t, victim, "TimeZone"); v == "Pacific/Chatham" {
		t.Errorf("TimeZone reached globex: %q", v)
	}
}

// TestTxPortalSuspendedAndDescribeAnswerInOrder: Execute with a row limit
// (PortalSuspended), Describe of a portal and an empty query in a
// pipeline: answers stay in order and the connection goes back to the
// pool for the next tenant, which sees only its rows.
func TestTxPortalSuspendedAndDescribeAnswerInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	a := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, a)
	w.send(&pgproto3.Parse{Query: "SELECT name FROM contacts ORDER BY name"}, &pgproto3.Bind{},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Execute{MaxRows: 1},
		&pgproto3.Sync{}, &pgproto3.Query{String: ""},
		&pgproto3.Parse{Query: ""}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r := w.until(3)
	want := "ParseComplete BindComplete RowDescription DataRow PortalSuspended DataRow PortalSuspended ReadyForQuery " +
		"EmptyQueryResponse ReadyForQuery ParseComplete BindComplete EmptyQueryResponse ReadyForQuery"
	if got := strings.Join(r.types, " "); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
}

// TestTxDisconnectAfterFlushRollsBack: a client that leaves an implicit
// transaction open with Execute + Flush (no Sync) and then disconnects:
// the connection is cancelled and closed, never handed on with the open
// transaction or its row locks.
func TestTxDisconnectAfterFlushRollsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	a := e.connect(t, "app_user.acme")
	w := hijackRaw(t, a)
	w.send(&pgproto3.Parse{Query: "SELECT name FROM contacts WHERE name = 'Alice' FOR UPDATE"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Ghost')"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Flush{})
	for {
		m, err := w.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if cc, ok := m.(*pgproto3.CommandComplete); ok && strings.HasPrefix(string(cc.CommandTag), "INSERT") {
			break
		}
	}
	w.hc.Conn.Close()
	next := e.connect(t, "app_user.acme")
	mustExec(t, next, "BEGIN")
	mustExec(t, next, "SELECT 1 FROM contacts WHERE name = 'Alice' FOR UPDATE NOWAIT")
	mustExec(t, next, "COMMIT")
	if got := names(t, next, "SELECT name FROM contacts WHERE name = 'Ghost'"); len(got) != 0 {
		t.Fatalf("uncommitted insert committed: %v", got)
	}
}

// TestTxDisconnectInCopyInLeavesNoCopy: a client that disconnects in the
// middle of COPY FROM STDIN does not leave the shared connection in
// copy-in mode for the next tenant.
func TestTxDisconnectInCopyInLeavesNoCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	e.exec(t, "CREATE TABLE copysink (x int); GRANT INSERT ON copysink TO app_user")
	a := e.connect(t, "app_user.acme")
	w := hijackRaw(t, a)
	w.send(&pgproto3.Query{String: "COPY copysink FROM STDIN"})
	for {
		m := w.until0()
		if _, ok := m.(*pgproto3.CopyInResponse); ok {
			break
		}
	}
	w.send(&pgproto3.CopyData{Data: []byte("1\n2\n")})
	w.hc.Conn.Close()
	next := e.connect(t, "app_user.globex")
	if got := names(t, next, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
	var n int
	if err := e.super(t).QueryRow(testCtx(t), "SELECT count(*) FROM copysink").Scan(&n); err != nil || n != 0 {
		t.Fatalf("half a COPY committed: %d %v", n, err)
	}
}

// TestTxExtendedCopyOutReleasesConnection: COPY TO STDOUT in the extended protocol
// keeps the FIFO in step and gives the connection back.
func TestTxExtendedCopyOutReleasesConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.QueryWaitTimeout = 2 * time.Second
	})
	a := e.connect(t, "app_user.acme")
	w := hijackRaw(t, a)
	w.send(&pgproto3.Parse{Query: "COPY (SELECT name FROM contacts ORDER BY name) TO STDOUT"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r := w.until(1)
	if len(r.errors) > 0 {
		t.Fatal(r.errors)
	}
	other, err := e.tryConnect(t, "app_user.globex", "app_user_password")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, other, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
}

// TestTxOtherClientsPortalsAreUnreachable: another client's portals and
// unnamed statement cannot be reached after the connection changed hands.
func TestTxOtherClientsPortalsAreUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	a := e.connect(t, "app_user.acme")
	b := e.connect(t, "app_user.globex")
	wa := hijackRaw(t, a)
	wa.send(&pgproto3.Parse{Query: "SELECT name FROM contacts ORDER BY name"}, &pgproto3.Bind{DestinationPortal: "acmeportal"},
		&pgproto3.Sync{})
	wa.until(1)
	wb := hijackRaw(t, b)
	wb.send(&pgproto3.Execute{Portal: "acmeportal"}, &pgproto3.Sync{},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r := wb.until(2)
	for _, typ := range r.types {
		if typ == "DataRow" {
			t.Fatalf("globex read through acme's portal or statement: %v", r.types)
		}
	}
	if len(r.errors) != 2 {
		t.Fatalf("want two errors, got %v", r.errors)
	}
}

// TestTxCancelFromIdleClientSparesOtherTenants: a tenant hammering CancelRequests
// while idle never cancels another tenant's statement on the shared
// connection.
func TestTxCancelFromIdleClientSparesOtherTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	done := make(chan error, 1)
	go func() {
		_, err := victim.Exec(ctx, "SELECT pg_sleep(1)")
		done <- err
	}()
	// The cancels go on for as long as the victim's statement runs; the
	// bound only catches a hang (a loaded machine may stretch the second).
	stop := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("victim's statement: %v", err)
			}
			return
		case <-stop:
			t.Fatal("victim's one-second statement did not finish within 30 s")
		default:
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = attacker.PgConn().CancelRequest(cctx)
			cancel()
		}
	}
}

// TestTxDeallocateAllIsTracked: a plain DEALLOCATE ALL
// that succeeds is tracked (the other tenant's statement is re-prepared).
func TestTxDeallocateAllIsTracked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	ctx := testCtx(t)
	a := e.connect(t, "app_user.acme")
	b := e.connect(t, "app_user.globex")
	if _, err := b.Prepare(ctx, "s", "SELECT name FROM contacts ORDER BY name"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, a, "DEALLOCATE ALL")
	if got := namesStmt(t, b, "s"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex's s: %v", got)
	}
	if got := names(t, a, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme: %v", got)
	}
}
