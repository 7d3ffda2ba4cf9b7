package sqlguard

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func newTxGuard(poolingOnly bool) *Guard {
	return New(Config{ContextVariables: []string{"app.current_tenant_id"}, TransactionMode: true, PoolingOnly: poolingOnly})
}

// TestTxRefusals: session state that would outlive the transaction is
// refused in transaction mode, with the rule named, whether or not the
// tenant rules are on; transaction-scoped forms pass.
func TestTxRefusals(t *testing.T) {
	t.Parallel()
	// With the guard off, the pooling rules refuse a set_config whose
	// setting they cannot name (it could be seed).
	var v *Violation
	if err := newTxGuard(true).Check("SELECT set_config('se' || 'ed', '0.5', true)"); !errors.As(err, &v) || v.Rule != "session_set_config" {
		t.Errorf("dynamic set_config name with the guard off: %v", err)
	}
	refuse := map[string]string{
		"SET work_mem = '1MB'; SET enable_seqscan = off; SET jit_above_cost = 1": "session_set",
		"SET SESSION jit_above_cost = 1":                                         "session_set",
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY":                   "session_set",
		"SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE":                         "session_set",
		"RESET ALL": "reset_all",
		"SELECT set_config('work_mem', '1MB', false)":                      "session_set_config",
		"SELECT set_config('work_mem', '1MB', $1)":                         "session_set_config",
		"SELECT pg_advisory_lock(1)":                                       "session_advisory_lock",
		"SELECT x FROM t WHERE pg_try_advisory_lock_shared(x)":             "session_advisory_lock",
		"SELECT pg_catalog.pg_advisory_unlock_all()":                       "session_advisory_lock",
		"DECLARE c CURSOR WITH HOLD FOR SELECT 1":                          "cursor_with_hold",
		"PREPARE p AS SELECT 1":                                            "sql_prepare",
		"EXECUTE p":                                                        "sql_prepare",
		"DEALLOCATE p":                                                     "sql_prepare",
		"CREATE TEMP TABLE x (a int)":                                      "temp_object",
		"CREATE TEMPORARY TABLE x AS SELECT 1":                             "temp_object",
		"CREATE TEMP VIEW v AS SELECT 1":                                   "temp_object",
		"CREATE TEMP SEQUENCE s":                                           "temp_object",
		"DISCARD ALL":                                                      "discard_all",
		"DO $$ BEGIN PERFORM set_config('work_mem', '1MB', false); END $$": "do_block",
		"UPDATE pg_settings SET setting = '1MB' WHERE name = 'work_mem'":   "pg_settings_dml",
		"update PG_CATALOG.pg_settings set setting = 'x'":                  "pg_settings_dml",
		"SELECT (0.5::float8).setseed":                                     "session_setseed",
		"SELECT (4242::bigint).pg_advisory_lock":                           "session_advisory_lock",
		"SET LOCAL seed = 0.5":                                             "session_setseed",
		"SET seed TO 0.5":                                                  "session_setseed",
		"SELECT set_config('seed', '0.5', true)":                           "session_setseed",
	}
	allow := []string{
		"SET LOCAL work_mem = '1MB'", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
		"SELECT set_config('work_mem', '1MB', true)", "SELECT pg_advisory_xact_lock(1)",
		"DECLARE c CURSOR FOR SELECT 1", "DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 1",
		"CREATE TEMP TABLE x (a int) ON COMMIT DROP", "DEALLOCATE ALL", "DISCARD PLANS",
		"SELECT 'SET work_mem = 1' AS settings", "UPDATE t SET a = 1",
	}
	for _, only := range []bool{false, true} {
		g := newTxGuard(only)
		for sql, rule := range refuse {
			var v *Violation
			if err := g.Check(sql); !errors.As(err, &v) || string(v.Rule) != rule {
				t.Errorf("poolingOnly=%v: %q: got %v, want rule %s", only, sql, err, rule)
			} else if only && !strings.Contains(v.Hint, "docs/pooling.md") {
				t.Errorf("%q: hint %q does not point to docs/pooling.md", sql, v.Hint)
			}
		}
		for _, sql := range allow {
			if err := g.Check(sql); err != nil {
				t.Errorf("poolingOnly=%v: %q refused: %v", only, sql, err)
			}
		}
	}
	// Pooling-only keeps the context rules off (guard = off).
	if err := newTxGuard(true).Check("SET LOCAL app.current_tenant_id = 'x'"); err != nil {
		t.Errorf("pooling-only refused SET LOCAL of a context variable: %v", err)
	}
	if err := newTxGuard(false).Check("SET LOCAL app.current_tenant_id = 'x'"); err == nil {
		t.Error("tenant rules off in transaction mode")
	}
}

// TestTxEffects: tracked settings are reported with the value set_config
// would take, in order, with transaction control and DEALLOCATE ALL noted.
func TestTxEffects(t *testing.T) {
	t.Parallel()
	g := newTxGuard(false)
	cases := map[string]Effects{
		`SET search_path TO "$user", public, "My Schema"`:     {Settings: []Setting{{Name: "search_path", Value: `"$user", public, "My Schema"`}}},
		`SET search_path = 'default', 'user', public, 'name'`: {Settings: []Setting{{Name: "search_path", Value: `"default", "user", public, name`}}},
		"SET TIME ZONE 'UTC'; RESET statement_timeout":        {Settings: []Setting{{Name: "timezone", Value: "UTC"}, {Name: "statement_timeout", Reset: true}}},
		"SET statement_timeout = 5000":                        {Settings: []Setting{{Name: "statement_timeout", Value: "5000"}}},
		"SET extra_float_digits = 2.5":                        {Settings: []Setting{{Name: "extra_float_digits", Value: "2.5"}}},
		"SET jit TO on; SET DateStyle TO DEFAULT":             {Settings: []Setting{{Name: "jit", Value: "on"}, {Name: "datestyle", Reset: true}}},
		"BEGIN; SET application_name = 'x'; COMMIT":           {Settings: []Setting{{Name: "application_name", Value: "x"}}, TxControl: true},
		"DEALLOCATE ALL": {DeallocateAll: true},
	}
	for sql, want := range cases {
		fx, err := g.CheckTx([]byte(sql))
		if err != nil || fx == nil || !reflect.DeepEqual(*fx, want) {
			t.Errorf("%q: got %+v, %v; want %+v", sql, fx, err, want)
		}
	}
	if fx, err := g.CheckTx([]byte("SELECT 1")); fx != nil || err != nil {
		t.Errorf("SELECT 1: %+v %v", fx, err)
	}
	if fx, err := g.CheckTx([]byte("SET LOCAL search_path = x")); fx != nil || err != nil {
		t.Errorf("SET LOCAL: %+v %v", fx, err)
	}
}

// FuzzTxGuard: arbitrary SQL never crashes the transaction-mode guard, and
// session state it accepts is never left unreported after a valid
// statement: appending a session SET of an untracked parameter is refused.
func FuzzTxGuard(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SET search_path = a", "BEGIN", "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
		"SELECT pg_advisory_lock(1)", "DEALLOCATE ALL", "SET LOCAL x.y = 1", "PREPARE p AS SELECT 1"} {
		f.Add(s)
	}
	g := newTxGuard(false)
	f.Fuzz(func(t *testing.T, sql string) {
		_, _ = g.CheckTx([]byte(sql))
		if strings.IndexByte(sql, 0) >= 0 {
			return
		}
		if _, err := pg_query.Parse(sql); err != nil {
			return
		}
		if _, err := g.CheckTx([]byte(sql + ";\nSET jit_above_cost = 1")); err == nil {
			t.Fatalf("accepted a session SET of jit_above_cost after %q", sql)
		}
	})
}
