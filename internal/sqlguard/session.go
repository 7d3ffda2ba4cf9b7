package sqlguard

import (
	"fmt"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// In transaction pooling a server connection serves many clients, one
// transaction at a time, so anything a statement leaves behind in the
// session outlives the transaction and reaches the next client. The rules
// here (on only with Config.TransactionMode) refuse each such construct,
// except the session settings in TrackedSettings, which the proxy records
// per client (Effects) and re-applies wherever the client lands.

// TrackedSettings are the parameters whose session-level SET and RESET
// transaction pooling tracks per client; a session SET of any other
// parameter is refused (SET LOCAL is always fine). They are the ones
// drivers and applications set per connection.
var TrackedSettings = []string{
	"application_name", "search_path", "timezone", "datestyle", "intervalstyle",
	"extra_float_digits", "bytea_output", "client_min_messages", "client_encoding",
	"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
	"default_transaction_isolation", "default_transaction_read_only", "default_transaction_deferrable",
	"work_mem", "jit", "geqo", "plan_cache_mode", "random_page_cost", "enable_seqscan",
	"enable_indexscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin", "enable_nestloop",
	"lc_monetary", "lc_numeric", "lc_time", "xmloption", "row_security",
}

// IsTracked reports whether name (any case) is in TrackedSettings.
func IsTracked(name string) bool { return tracked[normalizeGUC(name)] }

var tracked = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range TrackedSettings {
		m[s] = true
	}
	return m
}()

// listSettings hold identifier lists: PostgreSQL quotes each element when
// it flattens SET's arguments into the value (GUC_LIST_QUOTE).
var listSettings = map[string]bool{"search_path": true}

// Setting is one session-level change of a tracked parameter. Reset means
// RESET (or SET ... TO DEFAULT): back to the server's default.
type Setting struct {
	Name  string
	Value string
	Reset bool
}

// Effects are what a statement does to the session that transaction
// pooling must know about. Nil means nothing.
type Effects struct {
	// Settings are session-level SET/RESET of tracked parameters, in order.
	Settings []Setting
	// TxControl: the text contains BEGIN, COMMIT, ROLLBACK or a savepoint
	// command, so settings made in it may be undone by the client.
	TxControl bool
	// DeallocateAll: DEALLOCATE ALL drops every prepared statement of the
	// server connection.
	DeallocateAll bool
	// Block is how the statement stands to a transaction block (Citus
	// mode only; see citus.go).
	Block Block
}

// sessionAdvisory are the advisory-lock functions whose lock outlives the
// transaction; the _xact_ variants are fine.
var sessionAdvisory = map[string]bool{
	"pg_advisory_lock": true, "pg_advisory_lock_shared": true, "pg_try_advisory_lock": true,
	"pg_try_advisory_lock_shared": true, "pg_advisory_unlock": true, "pg_advisory_unlock_shared": true,
	"pg_advisory_unlock_all": true,
}

// txTokens extend the pre-filter in transaction mode.
var txTokens = []string{"u&", "listen", "setseed", "discard", "declare", "prepare", "deallocate", "execute", "pg_advisory", "pg_try_advisory", "temp",
	"do", "pg_settings", "seed", "set_config"}

const txHint = "In transaction pooling a server connection serves other clients between your transactions; see docs/pooling.md."

// inspectTx applies the transaction-mode rules to one node, collecting
// effects. It runs after inspect found nothing.
func (g *Guard) inspectTx(m proto.Message, fx *Effects) *Violation {
	switch n := m.(type) {
	case *pg_query.VariableSetStmt:
		return sessionSet(n, fx)
	case *pg_query.FuncCall:
		name := funcName(n)
		if v := txFuncRule(name); v != nil {
			return v
		}
		if name == "set_config" && len(n.Args) == 3 && !isTrue(n.Args[2]) {
			return NewViolation(RuleSessionSetConfig, "set_config with is_local = false is not allowed in transaction pooling",
				"Use set_config(name, value, true) or SET LOCAL, or SET in its own statement outside a transaction block. "+txHint)
		}
		if name == "set_config" && len(n.Args) == 3 {
			setting, ok := constString(n.Args[0])
			if !ok {
				return NewViolation(RuleSessionSetConfig, "set_config with a setting name that is not a constant is not allowed in transaction pooling",
					"Name the setting as a string literal. "+txHint)
			}
			if normalizeGUC(setting) == "seed" {
				return seedViolation()
			}
		}
	case *pg_query.A_Indirection:
		// (expr).func is func(expr) in attribute notation.
		for _, ind := range n.Indirection {
			if str := ind.GetString_(); str != nil {
				if v := txFuncRule(strings.ToLower(str.Sval)); v != nil {
					return v
				}
			}
		}
	case *pg_query.DoStmt:
		// Even with the guard off: a DO block can set_config, LISTEN, take
		// session locks or PREPARE where these rules cannot see.
		return NewViolation(RuleDoBlock, "DO blocks are not allowed in transaction pooling: multigres cannot see the session state they leave",
			"Run the statements directly, or use a session-mode database. "+txHint)
	case *pg_query.UpdateStmt:
		return txSettingsDML(n.Relation)
	case *pg_query.InsertStmt:
		return txSettingsDML(n.Relation)
	case *pg_query.DeleteStmt:
		return txSettingsDML(n.Relation)
	case *pg_query.ListenStmt:
		return NewViolation(RuleListen, "LISTEN is not allowed in transaction pooling: the server connection would keep listening for other clients",
			"Listen on a session-mode connection (a superuser_bypass user, or pool_mode_databases). "+txHint)
	case *pg_query.DeclareCursorStmt:
		if n.Options&cursorOptHold != 0 {
			return NewViolation(RuleCursorWithHold, "WITH HOLD cursors are not allowed in transaction pooling: the cursor would outlive the transaction",
				"Declare the cursor without WITH HOLD inside a transaction. "+txHint)
		}
	case *pg_query.PrepareStmt:
		return NewViolation(RuleSQLPrepare, "SQL-level PREPARE is not allowed in transaction pooling",
			"Use protocol-level prepared statements (your driver's prepare), which multigres tracks per client. "+txHint)
	case *pg_query.ExecuteStmt:
		return NewViolation(RuleSQLPrepare, "SQL-level EXECUTE is not allowed in transaction pooling",
			"Use protocol-level prepared statements (your driver's prepare), which multigres tracks per client. "+txHint)
	case *pg_query.DeallocateStmt:
		if n.Name != "" {
			return NewViolation(RuleSQLPrepare, "DEALLOCATE of a named statement is not allowed in transaction pooling",
				"Close protocol-level statements with your driver. "+txHint)
		}
		fx.DeallocateAll = true
	case *pg_query.TransactionStmt:
		fx.TxControl = true
	case *pg_query.DiscardStmt:
		if n.Target == pg_query.DiscardMode_DISCARD_ALL {
			return NewViolation(RuleDiscardAll, "DISCARD ALL is not allowed in transaction pooling: multigres resets server connections itself",
				"Use "+g.discardAlternatives()+". "+txHint)
		}
		if v := g.checkDiscardSequences(n); v != nil {
			return v
		}
	case *pg_query.CreateStmt:
		if n.Relation != nil && n.Relation.Relpersistence == "t" && n.Oncommit != pg_query.OnCommitAction_ONCOMMIT_DROP {
			return tempViolation()
		}
	case *pg_query.CreateTableAsStmt:
		if n.Into != nil && n.Into.Rel != nil && n.Into.Rel.Relpersistence == "t" && n.Into.OnCommit != pg_query.OnCommitAction_ONCOMMIT_DROP {
			return tempViolation()
		}
	case *pg_query.ViewStmt:
		if n.View != nil && n.View.Relpersistence == "t" {
			return tempViolation()
		}
	case *pg_query.CreateSeqStmt:
		if n.Sequence != nil && n.Sequence.Relpersistence == "t" {
			return tempViolation()
		}
	}
	return nil
}

// cursorOptHold is CURSOR_OPT_HOLD from PostgreSQL's parsenodes.h.
const cursorOptHold = 0x0020

func tempViolation() *Violation {
	return NewViolation(RuleTempObject, "temporary objects that outlive the transaction are not allowed in transaction pooling",
		"Use CREATE TEMP TABLE ... ON COMMIT DROP inside a transaction. "+txHint)
}

func isTrue(n *pg_query.Node) bool {
	for n.GetTypeCast() != nil {
		n = n.GetTypeCast().Arg
	}
	c := n.GetAConst()
	if c == nil {
		return false
	}
	if b := c.GetBoolval(); b != nil {
		return b.Boolval
	}
	if s := c.GetSval(); s != nil {
		switch strings.ToLower(strings.TrimSpace(s.Sval)) {
		case "t", "true", "on", "yes", "y", "1":
			return true
		}
	}
	return false
}

// txFuncRule refuses, by name, the functions whose effect outlives the
// transaction: session advisory locks and setseed.
func txFuncRule(name string) *Violation {
	if sessionAdvisory[name] {
		return NewViolation(RuleSessionAdvisoryLock, fmt.Sprintf("%s is not allowed in transaction pooling: a session-level advisory lock outlives the transaction", name),
			"Use pg_advisory_xact_lock or pg_try_advisory_xact_lock. "+txHint)
	}
	if name == "setseed" {
		return NewViolation(RuleSessionSetseed, "setseed is not allowed in transaction pooling: the seed would carry over to other clients' random()",
			"Seed in your application, or use a session-mode database. "+txHint)
	}
	return nil
}

// seedViolation: setting seed seeds random() for the session, and the
// generator keeps that state when a local setting reverts at commit.
func seedViolation() *Violation {
	return NewViolation(RuleSessionSetseed, "setting seed is not allowed in transaction pooling, even locally: the seed would carry over to other clients' random()",
		"Seed in your application, or use a session-mode database. "+txHint)
}

// sessionSet classifies a SET/RESET: transaction-scoped ones pass, tracked
// session ones become effects, the rest are refused. seed is refused in
// every form.
func sessionSet(n *pg_query.VariableSetStmt, fx *Effects) *Violation {
	name := normalizeGUC(n.Name)
	if name == "seed" {
		return seedViolation()
	}
	if n.IsLocal {
		return nil
	}
	switch n.Kind {
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		return NewViolation(RuleResetAll, "RESET ALL is not allowed in transaction pooling",
			"Reset the parameters you changed one by one. "+txHint)
	case pg_query.VariableSetKind_VAR_SET_MULTI:
		if name == "transaction" || name == "transaction snapshot" {
			return nil // SET TRANSACTION: this transaction only
		}
		return NewViolation(RuleSessionSet, "SET SESSION CHARACTERISTICS is not allowed in transaction pooling",
			"Use SET TRANSACTION at the start of each transaction. "+txHint)
	case pg_query.VariableSetKind_VAR_SET_CURRENT:
		return NewViolation(RuleSessionSet, "SET ... FROM CURRENT is not allowed in transaction pooling", txHint)
	}
	if !tracked[name] {
		return NewViolation(RuleSessionSet, fmt.Sprintf("session-level SET of %s is not allowed in transaction pooling", name),
			"Use SET LOCAL inside a transaction. "+txHint)
	}
	if n.Kind == pg_query.VariableSetKind_VAR_RESET || n.Kind == pg_query.VariableSetKind_VAR_SET_DEFAULT {
		fx.Settings = append(fx.Settings, Setting{Name: name, Reset: true})
		return nil
	}
	value, ok := flattenArgs(name, n.Args)
	if !ok {
		return NewViolation(RuleSessionSet, fmt.Sprintf("this form of SET %s is not supported in transaction pooling", name),
			"Give the value as a string literal, or use SET LOCAL. "+txHint)
	}
	fx.Settings = append(fx.Settings, Setting{Name: name, Value: value})
	return nil
}

// flattenArgs turns SET's arguments into the text set_config takes, as
// PostgreSQL's flatten_set_variable_args does for constants.
func flattenArgs(name string, args []*pg_query.Node) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	parts := make([]string, 0, len(args))
	for _, a := range args {
		c := a.GetAConst()
		if c == nil {
			return "", false // TypeCast (SET TIME ZONE INTERVAL ...) and the like
		}
		var s string
		switch {
		case c.GetSval() != nil:
			s = c.GetSval().Sval
			if listSettings[name] {
				s = quoteIdent(s)
			}
		case c.GetIval() != nil:
			s = strconv.FormatInt(int64(c.GetIval().Ival), 10)
		case c.GetFval() != nil:
			s = c.GetFval().Fval
		case c.GetBoolval() != nil:
			s = strconv.FormatBool(c.GetBoolval().Boolval)
		default:
			return "", false
		}
		parts = append(parts, s)
	}
	if len(parts) > 1 && !listSettings[name] {
		return "", false
	}
	return strings.Join(parts, ", "), true
}

// quoteIdent quotes like quote_identifier: names that are not plain
// lower-case identifiers, and keywords other than unreserved ones (the
// server records search_path = 'default' as "default").
func quoteIdent(s string) string {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		ch := s[i]
		plain = ch >= 'a' && ch <= 'z' || ch == '_' || i > 0 && ch >= '0' && ch <= '9'
	}
	if plain && !reservedKeyword(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// reservedKeyword reports whether a plain identifier is a keyword that
// quote_identifier quotes (any kind but unreserved), by PostgreSQL's own
// scanner.
func reservedKeyword(s string) bool {
	res, err := pg_query.Scan(s)
	if err != nil || len(res.Tokens) != 1 {
		return false
	}
	k := res.Tokens[0].KeywordKind
	return k != pg_query.KeywordKind_NO_KEYWORD && k != pg_query.KeywordKind_UNRESERVED_KEYWORD
}

// txSettingsDML refuses changing pg_settings (its rule calls set_config at
// session level) in transaction pooling, even with the guard off.
func txSettingsDML(rel *pg_query.RangeVar) *Violation {
	if v := checkSettingsDML(rel); v != nil {
		v.Message = "changing pg_settings is not allowed in transaction pooling: it sets parameters for the session"
		v.Hint = "Use SET LOCAL, or SET of a tracked parameter on its own. " + txHint
		return v
	}
	return nil
}
