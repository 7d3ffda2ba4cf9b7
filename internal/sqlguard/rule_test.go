package sqlguard

import (
	"errors"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// TestVerdictCarriesCodeAndHint: a refusal carries the SQLSTATE of its
// rule (42601 unparsable, 0A000 session state transaction pooling cannot
// carry, 42501 otherwise) and its hint, so the frontend only copies them.
func TestVerdictCarriesCodeAndHint(t *testing.T) {
	t.Parallel()
	tenant := New(Config{ContextVariables: []string{"app.current_tenant_id", "statement_timeout"}})
	tx := New(Config{ContextVariables: []string{"app.current_tenant_id"}, TransactionMode: true})
	cases := []struct {
		g          *Guard
		sql        string
		rule       Rule
		code, hint string
	}{
		{tenant, "SET app.current_tenant_id = 'x' ;;(", RuleUnparsable, wire.CodeSyntaxError, "syntax"},
		{tenant, "SET app.current_tenant_id = 'x'", RuleSetProtected, wire.CodeInsufficientPrivilege, "tenant context"},
		{tenant, "SET statement_timeout = 0", RuleSetProtected, wire.CodeInsufficientPrivilege, "(tenant_statement_timeout)"},
		{tenant, "RESET statement_timeout", RuleSetProtected, wire.CodeInsufficientPrivilege, "(tenant_statement_timeout)"},
		{tenant, "SELECT set_config('statement_timeout', '0', false)", RuleSetProtected, wire.CodeInsufficientPrivilege, "(tenant_statement_timeout)"},
		{tenant, "ALTER SYSTEM SET work_mem = '1MB'", RuleAlterSystem, wire.CodeInsufficientPrivilege, ""},
		{tx, "SET maintenance_work_mem = '1MB'", RuleSessionSet, wire.CodeFeatureNotSupported, "SET LOCAL"},
		{tx, "LISTEN ch", RuleListenNotify, wire.CodeInsufficientPrivilege, "superuser_bypass"},
		{New(Config{TransactionMode: true, PoolingOnly: true}), "LISTEN ch", RuleListen, wire.CodeFeatureNotSupported, "session-mode"},
		{tx, "SELECT pg_advisory_lock(1)", RuleSessionAdvisoryLock, wire.CodeFeatureNotSupported, "xact"},
		{tx, "DO $$BEGIN END$$", RuleDoBlock, wire.CodeInsufficientPrivilege, "Run the statements directly"},
	}
	for _, c := range cases {
		var v *Violation
		if err := c.g.Check(c.sql); !errors.As(err, &v) {
			t.Errorf("%q: got %v, want a violation", c.sql, err)
			continue
		}
		if v.Rule != c.rule || v.Code != c.code || !strings.Contains(v.Hint, c.hint) || (c.hint == "" && v.Hint != "") {
			t.Errorf("%q: rule %s code %s hint %q; want %s %s hint containing %q", c.sql, v.Rule, v.Code, v.Hint, c.rule, c.code, c.hint)
		}
	}
	if got := RuleFunctionCallMessage.Code(); got != wire.CodeInsufficientPrivilege {
		t.Errorf("function_call_message code %s", got)
	}
}
