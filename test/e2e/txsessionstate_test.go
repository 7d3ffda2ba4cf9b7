package e2e

// Transaction pooling (pool_mode = transaction) keeps each client's session
// state with that client: one tenant (acme) trying to leave a random seed,
// a session advisory lock, a setting, a portal or a reported parameter
// behind for the next tenant (globex) on a shared server connection,
// through attribute notation, the seed setting, unusual SET spellings,
// statements that hide a session change, pipelining behind a short context
// switch and random pipelines. Every test asserts the safe behaviour; the
// comment of each explains the attack and, where one did, what once let
// it through.

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

// TestTxAttributeNotationSetseedDoesNotSeedNextTenant: setseed is
// refused in transaction pooling by the transaction-mode rules, which look
// at FuncCall nodes only. In attribute notation, (0.5::float8).setseed is
// the same call, parsed as an A_Indirection: the main guard checks that
// form only against its deny list (setseed is not on it), and the
// transaction-mode rules do not check it at all. The seed stays on the
// server session and the next tenant's random() is predetermined by acme.
func TestTxAttributeNotationSetseedDoesNotSeedNextTenant(t *testing.T) {
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

// TestTxAttributeNotationAdvisoryLockDoesNotOutliveTransaction: the same gap for the
// session advisory lock functions: (key).pg_advisory_lock takes a session
// lock that outlives acme's transaction, stays on the pooled server
// connection, and stalls every tenant that takes that key (here globex, on
// the other connection of the pool, cannot get it while acme is idle).
func TestTxAttributeNotationAdvisoryLockDoesNotOutliveTransaction(t *testing.T) {
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

// TestTxLocalSeedSettingDoesNotSeedNextTenant: the "seed" setting is
// setseed in GUC form. A session SET of it is refused (untracked), but SET
// LOCAL seed and set_config('seed', …, true) are allowed as
// transaction-local. Its assign hook seeds the random generator, and the
// revert at the end of the transaction does not reseed it (PostgreSQL arms
// the hook only for an interactive SET), so the seed outlives acme's
// transaction and globex's random() is predetermined by acme.
func TestTxLocalSeedSettingDoesNotSeedNextTenant(t *testing.T) {
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

// TestTxFailedShortSwitchReportsNoOtherTenantsParameters: globex's
// failing simple query rides on a short switch that rolls back with it, so
// the server is back on acme's application_name; globex must not be told
// acme's value by ParameterStatus (held: PostgreSQL reports only values
// that differ from the last one it reported, and the relay's next switch
// is a full one).
func TestTxFailedShortSwitchReportsNoOtherTenantsParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	mustExec(t, attacker, "SET application_name = 'acme-secret-app'")
	mustExec(t, attacker, "SELECT 1")
	w := hijackRaw(t, victim)
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

// TestTxGuardOffFunctionCallSetConfigLeavesNothing: with guard = off a
// FunctionCall of set_config (OID 2078, is_local false) reaches the relay
// unchecked; it must never leave work_mem on the shared connection
// (held: the relay ends the client and closes the connection).
func TestTxGuardOffFunctionCallSetConfigLeavesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaGuardOff)
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
	w.send(&pgproto3.FunctionCall{Function: 2078, ArgFormatCodes: []uint16{0},
		Arguments: [][]byte{[]byte("work_mem"), []byte("77kB"), []byte("false")}, ResultFormatCode: 0})
	t.Logf("acme: %v", txaDrain(w))
	if v := currentSetting(t, victim, "work_mem"); v == "77kB" {
		t.Errorf("globex runs with acme's work_mem %s", v)
	}
}

// TestTxSuspendedPortalDoesNotOutliveBlock: inside a block, acme binds
// a named portal over its rows, executes it with a row limit
// (PortalSuspended), syncs, and commits with a simple query; no portal or
// cursor of acme's may survive for globex (held: non-holdable portals end
// with the transaction; the audit checks pg_cursors).
func TestTxSuspendedPortalDoesNotOutliveBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	attacker := e.connect(t, "app_user.acme")
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, attacker)
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
	globexReadsOwnRows(t, victim, pgx.QueryExecModeExec)
}

// observedSettings are the tracked settings globex reads back.
var observedSettings = []string{
	"application_name", "search_path", "TimeZone", "DateStyle", "IntervalStyle",
	"extra_float_digits", "bytea_output", "client_min_messages", "client_encoding",
	"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
	"default_transaction_isolation", "default_transaction_read_only", "work_mem",
	"xmloption", "lc_monetary", "row_security", "random_page_cost",
}

// observeSettings returns what globex sees: each tracked setting and each
// parameter its driver was told.
func observeSettings(victim *pgx.Conn) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	cols := make([]string, len(observedSettings))
	for i, s := range observedSettings {
		cols[i] = fmt.Sprintf("current_setting('%s')", s)
	}
	vals := make([]string, len(observedSettings))
	dst := make([]any, len(vals))
	for i := range vals {
		dst[i] = &vals[i]
	}
	if err := victim.QueryRow(ctx, "SELECT "+strings.Join(cols, ", "), pgx.QueryExecModeSimpleProtocol).Scan(dst...); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, s := range observedSettings {
		out["setting "+s] = vals[i]
	}
	for _, p := range []string{"application_name", "TimeZone", "DateStyle", "IntervalStyle", "client_encoding", "search_path", "default_transaction_read_only", "standard_conforming_strings"} {
		out["reported "+p] = victim.PgConn().ParameterStatus(p)
	}
	var names []string
	if err := victim.QueryRow(ctx, "SELECT string_agg(name, ',' ORDER BY name) FROM contacts", pgx.QueryExecModeSimpleProtocol).Scan(&names0{&names}); err != nil {
		return nil, err
	}
	out["rows"] = strings.Join(names, ",")
	return out, nil
}

// names0 scans a nullable text into a one-element slice.
type names0 struct{ p *[]string }

func (n names0) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*n.p = []string{v}
	case nil:
		*n.p = nil
	default:
		return fmt.Errorf("unexpected %T", src)
	}
	return nil
}

// settingsDiff lists what differs between two observations.
func settingsDiff(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if after[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	return d
}

// setAliasForms are SET forms the grammar maps onto tracked settings under
// other names, and other unusual spellings of tracked SETs.
var setAliasForms = []string{
	"SET TIME ZONE 'Asia/Tokyo'",
	"SET TIME ZONE 9",
	"SET TIME ZONE LOCAL",
	"SET SCHEMA 'pg_catalog'",
	"SET XML OPTION DOCUMENT",
	"SET NAMES 'LATIN1'",
	"SET NAMES DEFAULT",
	`SET "TimeZone" = 'America/New_York'`,
	"SET search_path = pg_catalog, public",
	"SET search_path = '$user', 'public'",
	"SET application_name = 'evil', 'x'",
	"SET DateStyle = 'SQL, DMY'",
	"SET DateStyle = German",
	"SET IntervalStyle = sql_standard",
	"SET extra_float_digits = -15",
	"SET work_mem = 1e5",
	"SET random_page_cost = .5",
	"SET lc_monetary = 'C'",
	"SET row_security = off",
	"SET client_min_messages = debug5",
	"SET default_transaction_read_only = on",
	"SET statement_timeout = '2s'",
	"SET lock_timeout = 1500",
	"SET idle_in_transaction_session_timeout = '1min'",
	"SET bytea_output = escape",
}

// TestTxSetAliasFormsStayWithTheirClient: acme runs every odd form
// of a tracked SET (the grammar's aliases SET TIME ZONE, SET SCHEMA, SET
// NAMES, SET XML OPTION, quoted names, numeric and list values); after
// each, globex must observe exactly what it observed before, with the
// audit off, as a production proxy hands the connection over.
func TestTxSetAliasFormsStayWithTheirClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		txMode(1)(c)
		c.StateAudit = false
	})
	victim := e.connect(t, "app_user.globex")
	base, err := observeSettings(victim)
	if err != nil {
		t.Fatal(err)
	}
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	for _, sql := range setAliasForms {
		w.send(&pgproto3.Query{String: sql})
		r, ended := txaUntil(w, 1)
		if ended {
			t.Logf("acme ended by %q: %v", sql, r.errors)
			w = hijackRaw(t, e.connect(t, "app_user.acme"))
			continue
		}
		if len(r.errors) > 0 {
			t.Logf("%q refused: %v", sql, r.errors)
		}
		// acme runs a query of its own so its settings are on the connection.
		w.send(&pgproto3.Query{String: "SELECT 1"})
		if r, ended := txaUntil(w, 1); ended || len(r.errors) > 0 {
			t.Logf("acme after %q: %v", sql, r.errors)
		}
		got, err := observeSettings(victim)
		if err != nil {
			t.Fatalf("after acme's %q: globex: %v", sql, err)
		}
		if d := settingsDiff(base, got); len(d) > 0 {
			t.Errorf("after acme's %q globex observes %v", sql, d)
		}
	}
}

// smuggledSessionChanges are statements that hide a session-level change (a
// set_config with is_local false, a session advisory lock, setseed) where
// a rule that looks only at the top of the statement, or only at
// literal true/false, would miss it.
var smuggledSessionChanges = []string{
	"SELECT set_config('TimeZone', 'Asia/Tokyo', 'f')",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', 'off')",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', '0')",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', 0::boolean)",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', false::boolean)",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', NOT true)",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', true AND false)",
	"SELECT set_config(is_local => false, setting_name => 'TimeZone', new_value => 'Asia/Tokyo')",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', is_local => false)",
	"SELECT * FROM set_config('TimeZone', 'Asia/Tokyo', false)",
	"VALUES (set_config('TimeZone', 'Asia/Tokyo', false))",
	"EXPLAIN ANALYZE SELECT set_config('TimeZone', 'Asia/Tokyo', false)",
	"COPY (SELECT set_config('TimeZone', 'Asia/Tokyo', false)) TO STDOUT",
	"WITH x AS MATERIALIZED (SELECT set_config('TimeZone', 'Asia/Tokyo', false)) SELECT * FROM x",
	"SELECT ARRAY(SELECT set_config('TimeZone', 'Asia/Tokyo', false))",
	"SELECT 1 WHERE EXISTS (SELECT pg_catalog.set_config('TimeZone', 'Asia/Tokyo', false))",
	`SELECT "set_config"('TimeZone', 'Asia/Tokyo', false)`,
	`SELECT pg_catalog."set_config"('TimeZone', 'Asia/Tokyo', false)`,
	"SELECT set_config('timezone'::text, 'Asia/Tokyo', false)",
	"SELECT set_config(E'TimeZone', 'Asia/Tokyo', false)",
	"SELECT set_config(U&'TimeZone', 'Asia/Tokyo', false)",
	"SELECT set_config($$TimeZone$$, 'Asia/Tokyo', false)",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', (SELECT false))",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', bool 'f')",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', CAST('f' AS boolean))",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', x) FROM (VALUES (false)) v(x)",
	"SELECT set_config('work_mem', '1MB', false)",
	"SELECT set_config('application_name', 'evil', false)",
	"SELECT set_config('search_path', 'pg_catalog', false)",
	"EXPLAIN ANALYZE SELECT pg_advisory_lock(42)",
	"COPY (SELECT pg_advisory_lock(42)) TO STDOUT",
	"SELECT pg_catalog.pg_advisory_lock(42::bigint)",
	`SELECT "pg_advisory_lock"(42)`,
	"SELECT * FROM pg_advisory_lock(42)",
	"SELECT pg_advisory_lock(key => 42)",
	"SELECT (42::bigint).pg_advisory_lock",
	"COPY (SELECT setseed(0.5)) TO STDOUT",
	"EXPLAIN ANALYZE SELECT setseed(0.5)",
	"SELECT * FROM setseed(0.5)",
	"DISCARD PLANS",
	"DISCARD SEQUENCES",
	"DISCARD TEMP",
	"SET LOCAL TimeZone = 'Asia/Tokyo'; COMMIT",
	"SET LOCAL TimeZone = 'Asia/Tokyo'",
	"SELECT set_config('TimeZone', 'Asia/Tokyo', true); COMMIT; SELECT 1",
}

// runThenObserve runs each statement as acme (a new client each
// time), and has globex observe after each.
func runThenObserve(t *testing.T, mutate func(*config.Config), stmts []string) {
	e := newEnv(t, mutate)
	victim := e.connect(t, "app_user.globex")
	base, err := observeSettings(victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range stmts {
		w := hijackRaw(t, e.connect(t, "app_user.acme"))
		w.send(&pgproto3.Query{String: sql})
		r, ended := txaUntil(w, 1)
		if !ended && len(r.errors) == 0 {
			t.Logf("acme's %q ran: %v", sql, r.types)
		}
		w.send(&pgproto3.Terminate{})
		got, err := observeSettings(victim)
		if err != nil {
			t.Fatalf("after acme's %q: globex: %v", sql, err)
		}
		if d := settingsDiff(base, got); len(d) > 0 {
			t.Errorf("after acme's %q globex observes %v", sql, d)
		}
	}
}

// TestTxSmuggledSessionChangeLeavesNothing: set_config with a false is_local
// spelled as a string, a cast, an expression or a named argument, or
// wrapped in EXPLAIN ANALYZE, COPY (query), a CTE or a subquery; session
// advisory locks and setseed wrapped likewise. Each must be refused (or
// be harmless): globex observes nothing of it, with the audit off (a
// production proxy) and on.
func TestTxSmuggledSessionChangeLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, v := range []struct {
		name string
		fn   func(*config.Config)
	}{{"audit off", txaNoAudit}, {"audit on guard off", txaGuardOff}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			runThenObserve(t, v.fn, smuggledSessionChanges)
		})
	}
}

// pipelineMessages are the messages acme's random pipelines are made of.
var pipelineMessages = []func() pgproto3.FrontendMessage{
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "SELECT name FROM contacts"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Name: "s1", Query: "SELECT $1::int"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "SELECT 1/0"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "SET application_name = 'acme'"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "BEGIN"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "COMMIT"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "ROLLBACK"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "SELECT pg_advisory_lock(1)"} },
	func() pgproto3.FrontendMessage {
		return &pgproto3.Parse{Name: "s2", Query: "SET TimeZone = 'Europe/Paris'"}
	},
	func() pgproto3.FrontendMessage { return &pgproto3.Parse{Query: "COPY (SELECT 1) TO STDOUT"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Bind{} },
	func() pgproto3.FrontendMessage { return &pgproto3.Bind{DestinationPortal: "p1"} },
	func() pgproto3.FrontendMessage {
		return &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}}
	},
	func() pgproto3.FrontendMessage {
		return &pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s2"}
	},
	func() pgproto3.FrontendMessage { return &pgproto3.Execute{} },
	func() pgproto3.FrontendMessage { return &pgproto3.Execute{MaxRows: 1} },
	func() pgproto3.FrontendMessage { return &pgproto3.Execute{Portal: "p1", MaxRows: 1} },
	func() pgproto3.FrontendMessage { return &pgproto3.Describe{ObjectType: 'S'} },
	func() pgproto3.FrontendMessage { return &pgproto3.Describe{ObjectType: 'P'} },
	func() pgproto3.FrontendMessage { return &pgproto3.Describe{ObjectType: 'S', Name: "s1"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Describe{ObjectType: 'P', Name: "p1"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Close{ObjectType: 'S', Name: "s1"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Close{ObjectType: 'P', Name: "p1"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Close{ObjectType: 'S'} },
	func() pgproto3.FrontendMessage { return &pgproto3.Close{ObjectType: 'P'} },
	func() pgproto3.FrontendMessage { return &pgproto3.Flush{} },
	func() pgproto3.FrontendMessage { return &pgproto3.Sync{} },
	func() pgproto3.FrontendMessage { return &pgproto3.Sync{} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "SELECT 1"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "SET TimeZone = 'Europe/Paris'"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "BEGIN"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "COMMIT"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "SELECT 1/0"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: ""} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: ";"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "SET LOCAL TimeZone = 'UTC'"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "SAVEPOINT a"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "ROLLBACK TO a"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "SET work_mem = '8MB'; SELECT 1/0"} },
	func() pgproto3.FrontendMessage { return &pgproto3.Query{String: "COPY (SELECT 1) TO STDOUT"} },
	func() pgproto3.FrontendMessage { return &pgproto3.CopyData{Data: []byte("1\n")} },
	func() pgproto3.FrontendMessage { return &pgproto3.CopyDone{} },
	func() pgproto3.FrontendMessage { return &pgproto3.CopyFail{Message: "x"} },
}

// finishPipeline ends acme's pipeline and reads up to the marker's answer.
// It reports whether acme is still usable.
func finishPipeline(t *testing.T, w *rawWire, marker string) (ok bool, seen []string) {
	_ = w.hc.Conn.SetDeadline(time.Now().Add(6 * time.Second))
	w.fe.Send(&pgproto3.Sync{})
	w.fe.Send(&pgproto3.Query{String: "ROLLBACK"})
	w.fe.Send(&pgproto3.Query{String: "SELECT '" + marker + "'"})
	if err := w.fe.Flush(); err != nil {
		return false, []string{"send: " + err.Error()}
	}
	found := false
	for {
		m, err := w.fe.Receive()
		if err != nil {
			return false, append(seen, "EOF: "+err.Error())
		}
		seen = append(seen, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		switch m := m.(type) {
		case *pgproto3.DataRow:
			if len(m.Values) == 1 && string(m.Values[0]) == marker {
				found = true
			}
		case *pgproto3.ErrorResponse:
			seen = append(seen, m.Code+" "+m.Message)
			if m.Severity == "FATAL" {
				return false, seen
			}
		case *pgproto3.ReadyForQuery:
			if found {
				return true, seen
			}
		}
	}
}

// TestTxRandomPipelinesLeaveNothing: acme sends seeded random
// pipelines of extended- and simple-protocol messages (errors, Flush,
// Syncs, named portals, COPY messages outside COPY, refused statements,
// SETs, BEGIN/COMMIT/ROLLBACK); after each globex observes exactly what
// it observed before, acme's marker query answers within a bounded time
// (nothing out of step), with the audit on and off.
func TestTxRandomPipelinesLeaveNothing(t *testing.T) {
	t.Parallel()
	for _, v := range []struct {
		name string
		fn   func(*config.Config)
	}{{"audit off", txaNoAudit}, {"audit on", func(c *config.Config) { txMode(1)(c) }}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, v.fn)
			victim := e.connect(t, "app_user.globex")
			base, err := observeSettings(victim)
			if err != nil {
				t.Fatal(err)
			}
			seed := uint64(1)
			rnd := func(n int) int {
				seed ^= seed << 13
				seed ^= seed >> 7
				seed ^= seed << 17
				return int(seed % uint64(n))
			}
			var w *rawWire
			auditSeen := 0
			for round := range 150 {
				if w == nil {
					w = hijackRaw(t, e.connect(t, "app_user.acme"))
				}
				var msgs []string
				for range 1 + rnd(7) {
					m := pipelineMessages[rnd(len(pipelineMessages))]()
					msgs = append(msgs, fmt.Sprintf("%T%+v", m, m))
					w.fe.Send(m)
				}
				ok, seen := finishPipeline(t, w, fmt.Sprintf("marker%d", round))
				if testing.Verbose() {
					t.Logf("round %d: %v -> %v", round, msgs, seen)
				}
				if f := e.proxy.Server.StateAuditFailures(); len(f) > auditSeen {
					t.Logf("round %d: audit: %v", round, f[auditSeen:])
					auditSeen = len(f)
				}
				if !ok {
					t.Logf("round %d: acme ended after %v: %v", round, msgs, seen)
					w = nil
				}
				got, err := observeSettings(victim)
				if err != nil {
					t.Fatalf("round %d after acme's %v (acme saw %v): globex: %v", round, msgs, seen, err)
				}
				if d := settingsDiff(base, got); len(d) > 0 {
					t.Fatalf("round %d after acme's %v globex observes %v", round, msgs, d)
				}
			}
		})
	}
}

// dumpUntil reads until n ReadyForQuery and renders each message.
func dumpUntil(w *rawWire, n int) []string {
	_ = w.hc.Conn.SetDeadline(time.Now().Add(6 * time.Second))
	var out []string
	for n > 0 {
		m, err := w.fe.Receive()
		if err != nil {
			return append(out, "EOF "+err.Error())
		}
		switch m := m.(type) {
		case *pgproto3.ParameterStatus:
			out = append(out, "PS "+m.Name+"="+m.Value)
		case *pgproto3.ErrorResponse:
			out = append(out, "E "+m.Code+" "+m.Message)
		case *pgproto3.ReadyForQuery:
			out = append(out, "Z "+string(m.TxStatus))
			n--
		case *pgproto3.DataRow:
			out = append(out, fmt.Sprintf("D %q", m.Values))
		default:
			out = append(out, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		}
	}
	return out
}

// TestTxPipelinedAfterShortSwitchKeepsSet: found by the random
// pipelines above (seed 1, round 10), the other direction of
// TestTxPipelinedAfterShortSwitchKeepsReset. acme's simple-query
// SET rides on a short switch; the messages it pipelines behind it get a
// full switch (t.unconfirmed) that re-applies acme's settings as they were
// before the SET, so the server is back on the default TimeZone while
// multigres records the SET at its ReadyForQuery and believes
// Europe/Paris. acme's own next query runs under the wrong TimeZone, and
// the audit reports the mismatch.
func TestTxPipelinedAfterShortSwitchKeepsSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txMode(1))
	victim := e.connect(t, "app_user.globex")
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Query{String: "SELECT 1"})
	dumpUntil(w, 1)
	if _, err := observeSettings(victim); err != nil { // the connection now carries globex
		t.Fatal(err)
	}
	w.send(&pgproto3.Query{String: "SET TimeZone = 'Europe/Paris'"}, &pgproto3.Close{ObjectType: 'P'},
		&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Sync{})
	t.Logf("acme: %v", dumpUntil(w, 2))
	w.send(&pgproto3.Query{String: "SHOW TimeZone"})
	got := dumpUntil(w, 1)
	if !strings.Contains(strings.Join(got, " "), "Europe/Paris") {
		t.Errorf("acme's own SET was undone: SHOW TimeZone gives %v", got)
	}
	if f := e.proxy.Server.StateAuditFailures(); len(f) > 0 {
		t.Errorf("audit: %v", f)
	}
}

// TestTxPipelinedAfterShortSwitchKeepsReset: acme has a tracked
// setting of its own (TimeZone). It lands on a connection that carries
// globex's context, so its simple-query RESET gets the short switch. acme
// pipelines extended-protocol messages behind the RESET, before its
// ReadyForQuery. Those get a switch of their own that re-applies acme's
// settings as multigres knew them when it forwarded them, before the
// RESET's answer: TimeZone = Asia/Tokyo again. multigres records the
// RESET at its ReadyForQuery and believes the connection has no TimeZone,
// so the next switch for globex (who set none) leaves Asia/Tokyo in
// place: globex runs under acme's setting. The same with row_security =
// off makes globex's queries on its own rows fail.
func TestTxPipelinedAfterShortSwitchKeepsReset(t *testing.T) {
	t.Parallel()
	for _, audit := range []bool{false, true} {
		for _, setting := range []string{"TimeZone = 'Asia/Tokyo'", "row_security = off", "search_path = pg_catalog", "client_encoding = 'LATIN1'"} {
			t.Run(fmt.Sprintf("audit %v %s", audit, setting), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, func(c *config.Config) {
					txMode(1)(c)
					c.StateAudit = audit
				})
				victim := e.connect(t, "app_user.globex")
				base, err := observeSettings(victim)
				if err != nil {
					t.Fatal(err)
				}
				w := hijackRaw(t, e.connect(t, "app_user.acme"))
				w.send(&pgproto3.Query{String: "SET " + setting})
				t.Logf("acme: %v", dumpUntil(w, 1))
				if _, err := observeSettings(victim); err != nil { // the connection now carries globex
					t.Fatal(err)
				}
				name, _, _ := strings.Cut(setting, " ")
				w.send(&pgproto3.Query{String: "RESET " + name}, &pgproto3.Close{ObjectType: 'P'},
					&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Sync{})
				t.Logf("acme: %v", dumpUntil(w, 2))
				got, err := observeSettings(victim)
				if err != nil {
					t.Fatalf("globex after acme's pipelined RESET: %v", err)
				}
				if d := settingsDiff(base, got); len(d) > 0 {
					t.Errorf("globex after acme's pipelined RESET observes %v", d)
				}
			})
		}
	}
}

// TestTxPipelinedSimpleQueriesAfterShortSwitchKeepReset: the same
// as TestTxPipelinedAfterShortSwitchKeepsReset with nothing but
// two simple queries written at once (libpq's pipeline of simple
// queries): the second gets the full switch with acme's settings from
// before the first one's RESET.
func TestTxPipelinedSimpleQueriesAfterShortSwitchKeepReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, txaNoAudit)
	victim := e.connect(t, "app_user.globex")
	base, err := observeSettings(victim)
	if err != nil {
		t.Fatal(err)
	}
	w := hijackRaw(t, e.connect(t, "app_user.acme"))
	w.send(&pgproto3.Query{String: "SET TimeZone = 'Asia/Tokyo'"})
	dumpUntil(w, 1)
	if _, err := observeSettings(victim); err != nil {
		t.Fatal(err)
	}
	w.send(&pgproto3.Query{String: "RESET TimeZone"}, &pgproto3.Query{String: "SELECT 1"})
	t.Logf("acme: %v", dumpUntil(w, 2))
	got, err := observeSettings(victim)
	if err != nil {
		t.Fatalf("globex: %v", err)
	}
	if d := settingsDiff(base, got); len(d) > 0 {
		t.Errorf("globex after acme's pipelined RESET observes %v", d)
	}
}
