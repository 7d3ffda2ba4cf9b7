package e2e

// Transaction-mode isolation: nothing one tenant leaves on a pooled server
// connection reaches the next client of it. acme attacks, globex is the
// victim, and they share a pool of one server connection. Every test also
// runs under the state audit (proxytest), which fails it when a released
// connection's session differs from what multigres believes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
)

// victimModes are the two ways the victim reads: the simple protocol
// (which may get the short switch) and the extended protocol (full switch).
var victimModes = map[string]pgx.QueryExecMode{"simple": pgx.QueryExecModeSimpleProtocol, "extended": pgx.QueryExecModeExec}

// victimSetting reads a setting through the proxy in the given mode.
func victimSetting(t *testing.T, conn *pgx.Conn, mode pgx.QueryExecMode, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(testCtx(t), "SELECT current_setting('"+name+"')", mode).Scan(&v); err != nil {
		t.Fatalf("current_setting(%s): %v", name, err)
	}
	return v
}

// checkVictimClean asserts that globex runs under none of the settings the
// attacker tried to leave behind, and still reads exactly its own rows.
func checkVictimClean(t *testing.T, victim *pgx.Conn, mode pgx.QueryExecMode) {
	t.Helper()
	if v := victimSetting(t, victim, mode, "search_path"); strings.Contains(v, "nowhere") {
		t.Errorf("acme's search_path reached globex: %q", v)
	}
	if v := victimSetting(t, victim, mode, "DateStyle"); strings.Contains(v, "DMY") {
		t.Errorf("acme's DateStyle reached globex: %q", v)
	}
	if v := victimSetting(t, victim, mode, "extra_float_digits"); v == "-15" {
		t.Errorf("acme's extra_float_digits reached globex: %q", v)
	}
	rows, err := victim.Query(testCtx(t), "SELECT tenant_id FROM contacts", mode)
	if err != nil {
		t.Fatalf("globex reads its contacts: %v", err)
	}
	tenants, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tenants) != 1 || tenants[0] != "globex" {
		t.Fatalf("globex sees %v (%v), want its one row", tenants, err)
	}
}

// The attacker's SETs, each committed by a COMMIT in the same batch before
// a later error: multigres cannot know their fate from the error alone.
var committedSets = []string{"SET search_path = nowhere", "SET DateStyle = 'SQL, DMY'", "SET extra_float_digits = -15"}

func TestTxSetCommittedBeforeBatchErrorNeverReachesNextTenant(t *testing.T) {
	t.Parallel()
	for vname, vmode := range victimModes {
		t.Run("victim "+vname, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, txMode(1))
			victim := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			var batch []pgproto3.FrontendMessage
			for _, set := range committedSets {
				batch = append(batch, &pgproto3.Parse{Query: set}, &pgproto3.Bind{}, &pgproto3.Execute{})
			}
			batch = append(batch, &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			w.send(batch...)
			if r := w.until(1); len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "22012") {
				t.Fatalf("extended batch: want the division by zero, got %v", r.errors)
			}
			checkVictimClean(t, victim, vmode)
		})
	}
}

func TestTxUnsyncedSetCommittedBySimpleQueryNeverReachesNextTenant(t *testing.T) {
	t.Parallel()
	for vname, vmode := range victimModes {
		t.Run("victim "+vname, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, txMode(1))
			victim := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			var batch []pgproto3.FrontendMessage
			for _, set := range committedSets {
				batch = append(batch, &pgproto3.Parse{Query: set}, &pgproto3.Bind{}, &pgproto3.Execute{})
			}
			batch = append(batch, &pgproto3.Query{String: "COMMIT; SELECT 1/0"})
			w.send(batch...)
			if r := w.until(1); len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "22012") {
				t.Fatalf("want the division by zero, got %v", r.errors)
			}
			checkVictimClean(t, victim, vmode)
		})
	}
}

// The short switch shares the victim's query transaction: it must not run
// under the attacker's transaction defaults, whether set by SET or at
// startup.
func TestTxSwitchIgnoresPreviousClientsTransactionDefaults(t *testing.T) {
	t.Parallel()
	attacks := map[string]func(*testing.T, *env) *pgx.Conn{
		"SET": func(t *testing.T, e *env) *pgx.Conn {
			a := e.connect(t, "app_user.acme")
			mustExec(t, a, "SET default_transaction_read_only = on")
			mustExec(t, a, "SET default_transaction_isolation = 'serializable'")
			return a
		},
		"startup option": func(t *testing.T, e *env) *pgx.Conn {
			a, err := e.connectWith(t, "app_user.acme", "app_user_password", func(c *pgx.ConnConfig) {
				c.RuntimeParams["options"] = "-c default_transaction_read_only=on -c default_transaction_isolation=serializable"
			})
			if err != nil {
				t.Fatal(err)
			}
			return a
		},
	}
	for aname, attack := range attacks {
		for vname, vmode := range victimModes {
			t.Run(aname+"/victim "+vname, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, txMode(1))
				victim := e.connect(t, "app_user.globex")
				a := attack(t, e)
				var ro string
				if err := a.QueryRow(testCtx(t), "SELECT current_setting('transaction_read_only')").Scan(&ro); err != nil || ro != "on" {
					t.Fatalf("acme's own transactions: read only %q (%v)", ro, err)
				}
				var name, iso string
				err := victim.QueryRow(testCtx(t), "UPDATE contacts SET name = name WHERE tenant_id = 'globex' RETURNING name, current_setting('transaction_isolation')", vmode).Scan(&name, &iso)
				if err != nil {
					t.Fatalf("globex's UPDATE after acme's read-only default: %v", err)
				}
				if iso != "read committed" {
					t.Errorf("globex's transaction runs at %q, acme's default", iso)
				}
			})
		}
	}
}

// A login is told the parameters it will see: its own startup values and
// the server's defaults, never those of a client that used the pooled
// connection before.
func TestTxLoginReportsOnlyItsOwnParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	earlier := e.connect(t, "app_user.globex") // logs in before acme
	leaky := map[string]string{"application_name": "acme-secret-app", "TimeZone": "Asia/Tokyo",
		"DateStyle": "SQL, DMY", "IntervalStyle": "sql_standard"}
	if _, err := e.connectWith(t, "app_user.acme", "app_user_password", func(c *pgx.ConnConfig) {
		for k, v := range leaky {
			c.RuntimeParams[k] = v
		}
	}); err != nil {
		t.Fatal(err)
	}
	// globex's transaction switches the connection away from acme's values.
	mustExec(t, earlier, "SELECT 1")
	for vname, vmode := range victimModes {
		victim := e.connect(t, "app_user.globex")
		pc := victim.PgConn()
		for k, bad := range leaky {
			if got := pc.ParameterStatus(k); got == bad {
				t.Errorf("%s login: told %s = %q, acme's value", vname, k, got)
			}
		}
		// What it was told is what it gets.
		for _, k := range []string{"application_name", "TimeZone", "DateStyle", "IntervalStyle"} {
			if got, told := victimSetting(t, victim, vmode, k), pc.ParameterStatus(k); got != told {
				t.Errorf("%s: %s is %q but the login reported %q", vname, k, got, told)
			}
		}
	}
}

// pg_prepared_statements and pg_cursors of a shared server connection
// would show other tenants' SQL with its literals.
func TestTxSessionCatalogViewsHiddenFromTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	a := e.connect(t, "app_user.acme")
	if _, err := a.Prepare(testCtx(t), "secret", "SELECT count(*) FROM contacts WHERE email = 'alice-secret@acme.test'"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(testCtx(t), "secret"); err != nil {
		t.Fatal(err)
	}
	victim := e.connect(t, "app_user.globex")
	for vname, vmode := range victimModes {
		for _, q := range []string{"SELECT statement FROM pg_prepared_statements", "SELECT statement FROM pg_cursors",
			"SELECT gid FROM pg_prepared_xacts", "SELECT coalesce(objid::text, '') FROM pg_locks",
			"SELECT statement FROM pg_prepared_statement()", "SELECT statement FROM pg_catalog.pg_cursor()"} {
			rows, err := victim.Query(testCtx(t), q, vmode)
			if err == nil {
				var got []string
				if got, err = pgx.CollectRows(rows, pgx.RowTo[string]); err == nil {
					t.Errorf("%s %q: read %v", vname, q, got)
					continue
				}
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Errorf("%s %q: want 42501, got %v", vname, q, err)
			}
		}
	}
}

// One tenant cannot keep the pool from the others: COPY messages outside
// COPY hold nothing, a client that never Syncs is ended after
// unsynced_hold_timeout, and a tenant past max_tenant_server_connections
// waits while other tenants are served.
func TestTxStrayCopyMessagesHoldNoServerConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "x"})
	for vname, vmode := range victimModes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := victim.Exec(ctx, "SELECT 1", vmode)
		cancel()
		if err != nil {
			t.Fatalf("%s: globex waits behind acme's stray COPY messages: %v", vname, err)
		}
	}
	// acme's connection still works.
	w.send(&pgproto3.Query{String: "SELECT 1"})
	if r := w.until(1); len(r.errors) != 0 || r.status != 'I' {
		t.Fatalf("acme after its stray messages: %v %q", r.errors, r.status)
	}
}

func TestTxUnsyncedHolderIsEndedAndOthersServed(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"simple", "extended"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) {
				txMode(1)(c)
				c.UnsyncedHoldTimeout = 300 * time.Millisecond
			})
			victim := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			// Answered, then no Sync: the server waits for acme.
			w.send(&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := victim.Exec(ctx, "SELECT 1", victimModes[proto]); err != nil {
				t.Fatalf("globex behind acme's unsynced batch: %v", err)
			}
			if waited := time.Since(start); waited > 3*time.Second {
				t.Errorf("globex waited %s", waited)
			}
			// A new login is served too.
			if late := e.connect(t, "app_user.globex"); late == nil {
				t.Fatal("no login")
			}
			var sawFatal bool
			for {
				m, err := w.fe.Receive()
				if err != nil {
					break
				}
				if er, ok := m.(*pgproto3.ErrorResponse); ok {
					if er.Code != "57P05" || !strings.Contains(er.Message, "unsynced_hold_timeout") {
						t.Errorf("acme got %s %s", er.Code, er.Message)
					}
					sawFatal = true
				}
			}
			if !sawFatal {
				t.Error("acme was not told why it was ended")
			}
		})
	}
}

func TestTxTenantServerConnectionLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(2)(c)
		c.MaxTenantServerConnections = 1
		c.QueryWaitTimeout = 400 * time.Millisecond
	})
	holder := e.connect(t, "app_user.acme")
	second := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	mustExec(t, holder, "BEGIN")
	mustExec(t, holder, "SELECT 1") // holds one of the two connections
	for vname, vmode := range victimModes {
		_, err := second.Exec(testCtx(t), "SELECT 1", vmode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "53300" || !strings.Contains(pe.Message, "max_tenant_server_connections") {
			t.Fatalf("%s: acme's second transaction: want 53300 naming max_tenant_server_connections, got %v", vname, err)
		}
		if _, err := victim.Exec(testCtx(t), "SELECT 1", vmode); err != nil {
			t.Fatalf("%s: globex is not served while acme is at its limit: %v", vname, err)
		}
	}
	mustExec(t, holder, "COMMIT")
	if _, err := second.Exec(testCtx(t), "SELECT 1"); err != nil {
		t.Fatalf("acme's second client after the first released: %v", err)
	}
}

func TestTxLoginWaitingForPoolGetsAnError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.HandshakeTimeout = time.Second
	})
	holder := e.connect(t, "app_user.acme")
	mustExec(t, holder, "BEGIN")
	mustExec(t, holder, "SELECT 1")
	_, err := e.tryConnect(t, "app_user.globex", "app_user_password")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || !strings.Contains(pe.Message, "handshake_timeout") {
		t.Fatalf("login while the pool is held: want FATAL 53300, got %v", err)
	}
	mustExec(t, holder, "COMMIT")
}

// A millisecond statement_timeout or lock_timeout left by one tenant is
// reset before the next tenant's context switch runs under it; the next
// tenant's own statements run under its own timeouts.
func TestTxShortTimeoutsOfPreviousClientDoNotReachTheSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	victim := e.connect(t, "app_user.globex")
	for vname, vmode := range victimModes {
		for i := range 30 {
			// The attacker's own later statements would run under its
			// millisecond timer: it sets both and leaves.
			attacker := e.connect(t, "app_user.acme")
			mustExec(t, attacker, "SET lock_timeout = '1ms'; SET statement_timeout = '1ms'")
			attacker.Close(testCtx(t))
			if v := victimSetting(t, victim, vmode, "statement_timeout"); v != "0" {
				t.Fatalf("%s round %d: globex runs under statement_timeout %q", vname, i, v)
			}
			if v := victimSetting(t, victim, vmode, "lock_timeout"); v != "0" {
				t.Fatalf("%s round %d: globex runs under lock_timeout %q", vname, i, v)
			}
		}
	}
}

// A failed COPY: a client that starts COPY FROM STDIN with a simple
// query and ends the failed copy with CopyDone goes on normally. A Sync
// sent in a COPY's window (an extended-protocol COPY's own, or one after
// its data) is answered or not depending on whether the copy failed before
// the server read it, so when such a COPY fails that client is ended and
// the connection closed rather than guessed about. Either way the next
// tenant is served on a clean connection.
func TestTxFailedCopyWithSyncs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	e.exec(t, "CREATE TABLE copyin (x int); GRANT INSERT ON copyin TO app_user")
	victim := e.connect(t, "app_user.globex")
	copyIn := func(w *rawWire) {
		w.send(&pgproto3.Parse{Query: "COPY copyin FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		for {
			m, err := w.fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.CopyInResponse); ok {
				return
			}
		}
	}
	// A simple-query COPY: data, CopyDone.
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Query{String: "COPY copyin FROM STDIN"})
	for {
		m, err := w.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.CopyInResponse); ok {
			break
		}
	}
	w.send(&pgproto3.CopyData{Data: []byte("not-a-number\n")}, &pgproto3.CopyDone{})
	if r := w.until(1); len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], "22P02") || r.status != 'I' {
		t.Fatalf("failed copy: %v %q", r.errors, r.status)
	}
	w.send(&pgproto3.Query{String: "SELECT 1"})
	if r := w.until(1); len(r.errors) != 0 {
		t.Fatalf("after the failed copy: %v", r.errors)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
	// An extended-protocol COPY (its Sync pipelined behind it), bad data.
	w2 := hijackRaw(t, e.connect(t, "app_user.acme"))
	copyIn(w2)
	w2.send(&pgproto3.CopyData{Data: []byte("not-a-number\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
	var codes []string
	for {
		m, err := w2.fe.Receive()
		if err != nil {
			break
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			codes = append(codes, er.Code)
		}
	}
	if len(codes) == 0 || codes[len(codes)-1] != "08P01" {
		t.Errorf("a Sync after failed COPY data: errors %v, want the 08P01 that ends the client", codes)
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
}

// A COPY FROM STDIN that receives no data holds its server connection for
// at most unsynced_hold_timeout, inside a transaction block too.
func TestTxIdleCopyIsBounded(t *testing.T) {
	t.Parallel()
	for _, block := range []bool{false, true} {
		t.Run(fmt.Sprintf("in a block %v", block), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) {
				txMode(1)(c)
				c.UnsyncedHoldTimeout = 300 * time.Millisecond
			})
			e.exec(t, "CREATE TABLE copyidle (x int); GRANT INSERT ON copyidle TO app_user")
			victim := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			if block {
				w.send(&pgproto3.Query{String: "BEGIN"})
				w.until(1)
			}
			w.send(&pgproto3.Query{String: "COPY copyidle FROM STDIN"})
			for {
				m, err := w.fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.(*pgproto3.CopyInResponse); ok {
					break
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := victim.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatalf("globex behind an idle COPY: %v", err)
			}
			m, err := w.fe.Receive()
			er, ok := m.(*pgproto3.ErrorResponse)
			if err != nil || !ok || er.Code != "57P05" || !strings.Contains(er.Message, "COPY FROM STDIN received no data") {
				t.Fatalf("acme: %#v %v", m, err)
			}
		})
	}
}

// A client idle inside a transaction block past idle_transaction_timeout
// is told why with 25P03 naming the key, and the pool serves the next
// tenant; a client that sends a query in the middle of COPY FROM STDIN is
// told with 08P01 what may be sent then.
func TestTxBlockIdleAndCopyRefusalsSayWhy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.IdleTransactionTimeout = 300 * time.Millisecond
	})
	e.exec(t, "CREATE TABLE copymix (x int); GRANT INSERT ON copymix TO app_user")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Query{String: "BEGIN"})
	w.until(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := victim.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("globex behind a client idle in a block: %v", err)
	}
	m, err := w.fe.Receive()
	er, ok := m.(*pgproto3.ErrorResponse)
	if err != nil || !ok || er.Code != "25P03" || !strings.Contains(er.Message, "idle_transaction_timeout") {
		t.Fatalf("idle in a block: %#v %v", m, err)
	}

	w2 := hijackRaw(t, e.connect(t, "app_user.acme"))
	w2.send(&pgproto3.Query{String: "COPY copymix FROM STDIN"})
	for {
		m, err := w2.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*pgproto3.CopyInResponse); ok {
			break
		}
	}
	w2.send(&pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.Query{String: "SELECT 1"})
	for {
		m, err := w2.fe.Receive()
		if err != nil {
			t.Fatalf("no refusal before the connection ended: %v", err)
		}
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			if er.Code != "08P01" || !strings.Contains(er.Message, "only COPY data, CopyDone, CopyFail, Flush and Sync") {
				t.Fatalf("a query during COPY: %s %s", er.Code, er.Message)
			}
			break
		}
	}
	if got := names(t, victim, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("globex sees %v", got)
	}
}
