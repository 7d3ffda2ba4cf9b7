package sqlguard

import "github.com/multigres-proxy/multigres/internal/wire"

// Rule names the rule behind a refusal. Its string is the value of the rule
// label of multigres_guard_rejections_total and of wire.Error.Rule, so a
// constant's value must not change once released: dashboards and alerts
// match on it.
type Rule string

// The rules of the tenant guard (rules.go), refused with 42501
// insufficient_privilege unless noted.
const (
	RuleTooLarge               Rule = "too_large"  // longer than MaxParseBytes with a dangerous token
	RuleUnparsable             Rule = "unparsable" // 42601: a dangerous token and no parse
	RuleSetProtected           Rule = "set_protected"
	RuleSetConfigDynamic       Rule = "set_config_dynamic"
	RuleResetAll               Rule = "reset_all"
	RuleDiscardAll             Rule = "discard_all"
	RuleDiscardSequences       Rule = "discard_sequences"
	RuleDoBlock                Rule = "do_block"
	RuleAlterRoleSet           Rule = "alter_role_set"
	RuleAlterDatabaseSet       Rule = "alter_database_set"
	RuleAlterSystem            Rule = "alter_system"
	RuleAlterDefaultPrivileges Rule = "alter_default_privileges"
	RuleListenNotify           Rule = "listen_notify"
	RulePreparedTransaction    Rule = "prepared_transaction"
	RuleLockTable              Rule = "lock_table"
	RuleDeniedFunction         Rule = "denied_function"
	RuleDeniedRelation         Rule = "denied_relation"
	RuleClientEncoding         Rule = "client_encoding"
	RulePGSettingsDML          Rule = "pg_settings_dml"

	// RuleFunctionCallMessage is the frontend's refusal of the FunctionCall
	// protocol message, which carries no SQL text for the guard to read.
	RuleFunctionCallMessage Rule = "function_call_message"
)

// The transaction-pooling rules (session.go). Those that refuse a construct
// transaction pooling cannot support get 0A000 feature_not_supported; the
// tenant rules reused in transaction mode (do_block, reset_all,
// discard_all, pg_settings_dml) keep 42501.
const (
	RuleSessionSet          Rule = "session_set"
	RuleSessionSetConfig    Rule = "session_set_config"
	RuleSessionSetseed      Rule = "session_setseed"
	RuleSessionAdvisoryLock Rule = "session_advisory_lock"
	RuleListen              Rule = "listen"
	RuleCursorWithHold      Rule = "cursor_with_hold"
	RuleSQLPrepare          Rule = "sql_prepare"
	RuleTempObject          Rule = "temp_object"
)

// Code is the SQLSTATE a client gets for a refusal under r: 42601
// syntax_error for a statement the guard could not parse, 0A000
// feature_not_supported for session state transaction pooling cannot
// carry, and 42501 insufficient_privilege for everything else.
func (r Rule) Code() string {
	switch r {
	case RuleUnparsable:
		return wire.CodeSyntaxError
	case RuleSessionSet, RuleSessionSetConfig, RuleSessionSetseed, RuleSessionAdvisoryLock,
		RuleListen, RuleCursorWithHold, RuleSQLPrepare, RuleTempObject, RuleCitus:
		return wire.CodeFeatureNotSupported
	}
	return wire.CodeInsufficientPrivilege
}

// NewViolation is the refusal of a statement under rule, with the rule's
// SQLSTATE. hint may be empty.
func NewViolation(rule Rule, message, hint string) *Violation {
	return &Violation{Rule: rule, Code: rule.Code(), Message: message, Hint: hint}
}
