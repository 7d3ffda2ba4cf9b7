package sqlguard

import (
	"errors"
	"strings"
	"testing"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/multigres-proxy/multigres/internal/config"
)

func newTestGuard() *Guard {
	return New(Config{ContextVariables: []string{"app.current_tenant_id", "app.current_user_id"}})
}

var mustReject = map[string]string{
	// SET / RESET of context variables, in every spelling.
	"SET app.current_tenant_id = 'globex'":                 "set_protected",
	"set APP.CURRENT_TENANT_ID to 'globex'":                "set_protected",
	`SET "app"."current_tenant_id" = 'globex'`:             "set_protected",
	`SET "App.Current_Tenant_Id" = 'globex'`:               "set_protected",
	"SET SESSION app.current_tenant_id = 'globex'":         "set_protected",
	"SET LOCAL app.current_tenant_id = 'globex'":           "set_protected",
	"SET app.current_tenant_id TO DEFAULT":                 "set_protected",
	"SET app.current_tenant_id FROM CURRENT":               "set_protected",
	"RESET app.current_tenant_id":                          "set_protected",
	"SET /* hi */ app.current_tenant_id -- x\n = 'globex'": "set_protected",
	"SET app.current_user_id = 'u2'":                       "set_protected",
	"SET ROLE postgres":                                    "set_protected",
	"SET ROLE NONE":                                        "set_protected",
	"RESET ROLE":                                           "set_protected",
	"SET SESSION AUTHORIZATION postgres":                   "set_protected",
	"SET SESSION AUTHORIZATION DEFAULT":                    "set_protected",
	"RESET SESSION AUTHORIZATION":                          "set_protected",
	"RESET ALL":                                            "reset_all",
	"DISCARD ALL":                                          "discard_all",
	"SELECT 1; SET app.current_tenant_id = 'x'":            "set_protected",
	"BEGIN; SET LOCAL app.current_tenant_id = 'x'; COMMIT": "set_protected",
	// set_config anywhere.
	"SELECT set_config('app.current_tenant_id', 'globex', false)":                        "set_protected",
	"SELECT pg_catalog.set_config('app.current_tenant_id', 'globex', false)":             "set_protected",
	"SELECT SET_CONFIG('APP.CURRENT_TENANT_ID', 'globex', false)":                        "set_protected",
	"SELECT set_config(E'app.current\\x5ftenant_id', 'globex', false)":                   "set_protected",
	"SELECT set_config($$app.current_tenant_id$$, 'globex', false)":                      "set_protected",
	"SELECT set_config($q$app.current_tenant_id$q$::text, 'g', false)":                   "set_protected",
	"SELECT set_config('role', 'postgres', false)":                                       "set_protected",
	"SELECT set_config('app.' || 'current_tenant_id', 'globex', false)":                  "set_config_dynamic",
	"SELECT set_config(chr(97)||'pp.current_tenant_id', 'globex', false)":                "set_config_dynamic",
	"SELECT set_config(n, 'globex', false) FROM (VALUES ('app.current_tenant_id')) v(n)": "set_config_dynamic",
	"SELECT set_config($1, $2, false)":                                                   "set_config_dynamic",
	"SELECT * FROM set_config('app.current_tenant_id', 'g', false)":                      "set_protected",
	"WITH x AS (SELECT set_config('app.current_tenant_id', 'g', false)) SELECT * FROM x": "set_protected",
	"SELECT (SELECT set_config('app.current_tenant_id', 'g', false))":                    "set_protected",
	"SELECT length(set_config('app.current_tenant_id', 'g', false))":                     "set_protected",
	"EXPLAIN ANALYZE SELECT set_config('app.current_tenant_id', 'g', false)":             "set_protected",
	"PREPARE p AS SELECT set_config('app.current_tenant_id', 'g', false)":                "set_protected",
	"PREPARE p(text) AS SELECT set_config($1, 'g', false)":                               "set_config_dynamic",
	"SELECT 1 WHERE set_config('app.current_tenant_id', 'g', false) IS NOT NULL":         "set_protected",
	"COPY (SELECT set_config('app.current_tenant_id', 'g', false)) TO STDOUT":            "set_protected",
	`SELECT U&"\0073et_config"('app.current_tenant_id', 'g', false)`:                     "set_protected",
	"UPDATE pg_settings SET setting = 'globex' WHERE name = 'app.current_tenant_id'":     "pg_settings_dml",
	"UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = 'role'":                "pg_settings_dml",
	"WITH u AS (UPDATE pg_settings SET setting='g' WHERE name='x' RETURNING 1) SELECT 1": "pg_settings_dml",
	// Other statements.
	"DO $$ BEGIN PERFORM set_config('app.current_tenant_id', 'g', false); END $$": "do_block",
	"do 'begin null; end'": "do_block",
	"ALTER ROLE app_user SET app.current_tenant_id = 'globex'": "alter_role_set",
	"ALTER ROLE CURRENT_USER SET search_path = 'x'":            "alter_role_set",
	"ALTER DATABASE mydb SET app.current_tenant_id = 'globex'": "alter_database_set",
	"ALTER SYSTEM SET work_mem = '1GB'":                        "alter_system",
	// Denied functions and relations.
	"SELECT pg_terminate_backend(123)":                                               "denied_function",
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity":                            "denied_function",
	"SELECT lo_get(16385)":                                                           "denied_function",
	"SELECT lo_import('/etc/passwd')":                                                "denied_function",
	"SELECT loread(lo_open(1, 262144), 100)":                                         "denied_function",
	"SELECT * FROM pg_largeobject":                                                   "denied_relation",
	"SELECT count(*) FROM pg_catalog.pg_largeobject_metadata":                        "denied_relation",
	"SELECT dblink_exec('dbname=x', 'select 1')":                                     "denied_function",
	"SELECT pg_read_file('/etc/passwd')":                                             "denied_function",
	"SELECT query_to_xml('select set_config(''role'',''x'',false)', true, true, '')": "denied_function",
	"SELECT * FROM ts_stat('SELECT 1')":                                              "denied_function",
	"SELECT 1 FROM not valid sql set":                                                "unparsable",
}

var mustAllow = []string{
	"SELECT * FROM contacts",
	"SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
	"SELECT current_setting('app.current_tenant_id')",
	"SELECT current_tenant_id()",
	"SET search_path = public",
	"SET LOCAL statement_timeout = '5s'",
	"SET TIME ZONE 'UTC'",
	"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
	"RESET search_path",
	"SELECT set_config('search_path', 'public', false)",
	"SELECT set_config('application_name'::text, 'x', true)",
	"DISCARD PLANS",
	"DISCARD TEMP",
	"UPDATE contacts SET name = 'x' WHERE id = 1",
	"SELECT * FROM pg_settings WHERE name = 'work_mem'",
	"INSERT INTO dataset (name) VALUES ('offset')",
	"SELECT 'SET app.current_tenant_id = 1'",
	"-- SET app.current_tenant_id = 'x'\nSELECT 1",
	"SELECT 'set_config(''app.current_tenant_id'', ''x'', false)'",
	"ALTER TABLE contacts ADD COLUMN note text",
	"UNLISTEN *",
	"BEGIN; SELECT 1 FOR UPDATE; COMMIT",
	"ROLLBACK",
	"SELECT * FROM contacts FOR UPDATE",
}

func TestRejects(t *testing.T) {
	t.Parallel()
	g := newTestGuard()
	for sql, rule := range mustReject {
		err := g.Check(sql)
		var v *Violation
		if !errors.As(err, &v) {
			t.Errorf("accepted: %s", sql)
			continue
		}
		if string(v.Rule) != rule {
			t.Errorf("%s: rule %s, want %s (%s)", sql, v.Rule, rule, v.Message)
		}
	}
}

func TestAllows(t *testing.T) {
	t.Parallel()
	g := newTestGuard()
	for _, sql := range mustAllow {
		if err := g.Check(sql); err != nil {
			t.Errorf("refused %q: %v", sql, err)
		}
	}
}

func TestMessagesNameWhatAndWhy(t *testing.T) {
	t.Parallel()
	err := newTestGuard().Check("SET app.current_tenant_id = 'x'")
	if err == nil || err.Error() != "SET of app.current_tenant_id is not allowed on tenant connections" {
		t.Fatalf("%v", err)
	}
}

func TestPrefilterSkipsPlainQueries(t *testing.T) {
	t.Parallel()
	g := newTestGuard()
	for _, sql := range []string{"SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "SELECT * FROM contacts WHERE id = $1"} {
		if g.mayBeDangerous(sql) {
			t.Errorf("%q would be parsed", sql)
		}
	}
	for sql := range mustReject {
		if !g.mayBeDangerous(sql) {
			t.Errorf("prefilter misses %q", sql)
		}
	}
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	g := New(Config{ContextVariables: []string{"app.current_tenant_id"}, CacheSize: 3})
	for i := range 10 {
		_ = g.Check("SET search_path = s" + strings.Repeat("x", i))
	}
	if n := g.cache.order.Len(); n != 3 || len(g.cache.items) != 3 {
		t.Fatalf("cache holds %d/%d entries", n, len(g.cache.items))
	}
	// A cached verdict is the same verdict.
	sql := "SET app.current_tenant_id = 'x'"
	first, second := g.Check(sql), g.Check(sql)
	if first == nil || second == nil || first.Error() != second.Error() {
		t.Fatalf("%v / %v", first, second)
	}
}

func TestConfigurableDenyList(t *testing.T) {
	t.Parallel()
	g := New(Config{DeniedFunctions: []string{"pg_sleep"}})
	if g.Check("SELECT pg_sleep(1)") == nil {
		t.Fatal("configured function allowed")
	}
	if err := g.Check("SELECT lo_get(1)"); err != nil {
		t.Fatalf("function outside configured list refused: %v", err)
	}
}

// FuzzGuard: arbitrary SQL never panics the guard, and appending a
// set_config of the context variable to any complete statement list (one
// that parses on its own, so it cannot swallow what follows into a string
// or comment) is always refused.
func FuzzGuard(f *testing.F) {
	for sql := range mustReject {
		f.Add(sql)
	}
	for _, sql := range mustAllow {
		f.Add(sql)
	}
	g := newTestGuard()
	f.Fuzz(func(t *testing.T, sql string) {
		_ = g.Check(sql)
		// The protocol ends a statement at its first NUL, for the server
		// and the guard alike, so what follows a NUL is not an attack.
		if strings.IndexByte(sql, 0) >= 0 {
			return
		}
		if _, err := pg_query.Parse(sql); err != nil {
			return
		}
		attack := sql + ";\nSELECT set_config('app.current_tenant_id', 'globex', false)"
		if g.Check(attack) == nil {
			t.Fatalf("accepted set_config after %q", sql)
		}
	})
}

// The config's default guard_denied_functions must be this package's list.
func TestConfigDefaultMatches(t *testing.T) {
	t.Parallel()
	if got, want := strings.Join(config.Default().GuardDeniedFunctions, ","), strings.Join(DefaultDeniedFunctions, ","); got != want {
		t.Fatalf("config default %q\nsqlguard default %q", got, want)
	}
}

func TestPrefilterFolding(t *testing.T) {
	t.Parallel()
	g := newTestGuard()
	for sql, want := range map[string]bool{"SELECT SET_CONFIG": true, "xxDoyy": true, "": false, "d": false, "SELECT 1": false, "sElEcT pg_NOTIFY": true} {
		if got := g.mayBeDangerous(sql); got != want {
			t.Errorf("mayBeDangerous(%q) = %v", sql, got)
		}
	}
}

func BenchmarkCheckPlainQuery(b *testing.B) {
	g := newTestGuard()
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Check("SELECT abalance FROM pgbench_accounts WHERE aid = $1;")
	}
}

func BenchmarkCheckParsedCached(b *testing.B) {
	g := newTestGuard()
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Check("SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND current_setting('search_path') IS NOT NULL")
	}
}

// TestHugeStatementRefusedCheaply: a statement over MaxParseBytes that
// contains a dangerous token is refused without being parsed.
func TestHugeStatementRefusedCheaply(t *testing.T) {
	t.Parallel()
	sql := "SELECT 'set'" + strings.Repeat(",1", MaxParseBytes)
	start := time.Now()
	err := newTestGuard().Check(sql)
	var v *Violation
	if !errors.As(err, &v) || v.Rule != "too_large" {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
	// Without a dangerous token it is not parsed at all.
	if err := newTestGuard().Check("SELECT 1" + strings.Repeat(",1", MaxParseBytes)); err != nil {
		t.Fatal(err)
	}
}

// TestDiscardSequencesWithSigning: DISCARD SEQUENCES is refused only with
// context signing on, in session and transaction mode and with the
// pooling-only guard (guard = off in transaction mode).
func TestDiscardSequencesWithSigning(t *testing.T) {
	t.Parallel()
	const q = "discard  Sequences"
	for _, cfg := range []Config{{}, {TransactionMode: true}, {TransactionMode: true, PoolingOnly: true}} {
		cfg.ContextVariables = []string{"app.current_tenant_id"}
		if err := New(cfg).Check(q); err != nil {
			t.Errorf("%+v: refused without signing: %v", cfg, err)
		}
		cfg.ContextSigning = true
		var v *Violation
		if err := New(cfg).Check(q); !errors.As(err, &v) || v.Rule != "discard_sequences" {
			t.Errorf("%+v: %v, want discard_sequences", cfg, err)
		}
		// No hint may suggest DISCARD SEQUENCES then.
		if err := New(cfg).Check("DISCARD ALL"); errors.As(err, &v) && strings.Contains(v.Hint, "SEQUENCES") {
			t.Errorf("%+v: DISCARD ALL hint suggests DISCARD SEQUENCES: %q", cfg, v.Hint)
		}
	}
}
