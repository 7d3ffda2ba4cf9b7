package sqlguard

import (
	"fmt"
	"path"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/multigres-proxy/multigres/internal/wire"
	"google.golang.org/protobuf/proto"
)

const contextHint = "multigres sets the tenant context for the connection; connect with a different username to act for another tenant."

// protectedHint is the hint of a refused change of the protected setting
// name. statement_timeout is protected only when the proxy enforces
// tenant_statement_timeout (internal/frontend adds it then), so its hint
// names that setting rather than the tenant context.
func protectedHint(name string) string {
	if name == "statement_timeout" {
		return "multigres sets statement_timeout for tenant connections (tenant_statement_timeout)."
	}
	return contextHint
}

// discardAlternatives lists the DISCARD forms a tenant may use besides
// TEMP: with signing on, DISCARD SEQUENCES is refused too.
func (g *Guard) discardAlternatives() string {
	if g.signing {
		return "DISCARD PLANS"
	}
	return "DISCARD PLANS, DISCARD SEQUENCES"
}

// checkDiscardSequences refuses DISCARD SEQUENCES when context signing is
// on (see Config.ContextSigning).
func (g *Guard) checkDiscardSequences(n *pg_query.DiscardStmt) *Violation {
	if g.signing && n.Target == pg_query.DiscardMode_DISCARD_SEQUENCES {
		return NewViolation(RuleDiscardSequences, "DISCARD SEQUENCES is not allowed on tenant connections with context_signing = on: it would drop the signed context's session state",
			"Use DISCARD PLANS or DISCARD TEMP.")
	}
	return nil
}

// inspect applies the rules to one parse-tree node.
func (g *Guard) inspect(m proto.Message) *Violation {
	switch n := m.(type) {
	case *pg_query.VariableSetStmt:
		return g.checkSet(n)
	case *pg_query.DiscardStmt:
		if n.Target == pg_query.DiscardMode_DISCARD_ALL {
			return NewViolation(RuleDiscardAll, "DISCARD ALL is not allowed on tenant connections: it would reset the tenant context",
				"Use "+g.discardAlternatives()+" or DISCARD TEMP.")
		}
		return g.checkDiscardSequences(n)
	case *pg_query.FuncCall:
		return g.checkFunc(n)
	case *pg_query.A_Indirection:
		// (expr).func is a call of func(expr) in attribute notation.
		for _, ind := range n.Indirection {
			if str := ind.GetString_(); str != nil {
				if v := g.checkFuncName(strings.ToLower(str.Sval)); v != nil {
					return v
				}
			}
		}
	case *pg_query.DoStmt:
		return NewViolation(RuleDoBlock, "DO blocks are not allowed on tenant connections: multigres cannot inspect the SQL they run",
			"Run the statements directly, or ask an administrator to create a function.")
	case *pg_query.AlterRoleSetStmt:
		return NewViolation(RuleAlterRoleSet, "ALTER ROLE ... SET is not allowed on tenant connections: the role is shared by all tenants", "")
	case *pg_query.AlterDatabaseSetStmt:
		return NewViolation(RuleAlterDatabaseSet, "ALTER DATABASE ... SET is not allowed on tenant connections", "")
	case *pg_query.ListenStmt, *pg_query.NotifyStmt:
		return NewViolation(RuleListenNotify, "LISTEN and NOTIFY are not available on tenant connections: channel names are shared by all tenants",
			"Use a table protected by multigres_protect, or connect as a superuser_bypass user for cross-tenant events.")
	case *pg_query.TransactionStmt:
		switch n.Kind {
		case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE, pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED,
			pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
			return NewViolation(RulePreparedTransaction, "prepared transactions are not allowed on tenant connections: they belong to the role all tenants share",
				"Use ordinary transactions.")
		}
	case *pg_query.LockStmt:
		return NewViolation(RuleLockTable, "LOCK TABLE is not allowed on tenant connections: a table lock stalls every tenant",
			"Use row locks (SELECT ... FOR UPDATE), which only touch your rows.")
	case *pg_query.AlterDefaultPrivilegesStmt:
		return NewViolation(RuleAlterDefaultPrivileges, "ALTER DEFAULT PRIVILEGES is not allowed on tenant connections", "")
	case *pg_query.AlterSystemStmt:
		return NewViolation(RuleAlterSystem, "ALTER SYSTEM is not allowed on tenant connections", "")
	case *pg_query.UpdateStmt:
		return checkSettingsDML(n.Relation)
	case *pg_query.InsertStmt:
		return checkSettingsDML(n.Relation)
	case *pg_query.DeleteStmt:
		return checkSettingsDML(n.Relation)
	case *pg_query.RangeVar:
		for _, rel := range DeniedRelations {
			if strings.EqualFold(n.Relname, rel) {
				return NewViolation(RuleDeniedRelation, fmt.Sprintf("access to %s is not allowed on tenant connections: large objects are not covered by row-level security", rel), "")
			}
		}
	}
	return nil
}

func (g *Guard) checkSet(n *pg_query.VariableSetStmt) *Violation {
	switch n.Kind {
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		return NewViolation(RuleResetAll, "RESET ALL is not allowed on tenant connections: it would reset the tenant context",
			"Reset the parameters you changed one by one.")
	case pg_query.VariableSetKind_VAR_SET_MULTI:
		return nil // SET TRANSACTION ..., SET SESSION CHARACTERISTICS
	}
	name := normalizeGUC(n.Name)
	if name == "client_encoding" {
		for _, a := range n.Args {
			if v, ok := constString(a); ok && wire.UnsafeClientEncoding(v) {
				return unsafeEncoding(v)
			}
		}
	}
	if !g.protected[name] {
		return nil
	}
	verb := "SET"
	if n.Kind == pg_query.VariableSetKind_VAR_RESET {
		verb = "RESET"
	}
	return NewViolation(RuleSetProtected, fmt.Sprintf("%s of %s is not allowed on tenant connections", verb, name), protectedHint(name))
}

func (g *Guard) checkFunc(n *pg_query.FuncCall) *Violation {
	name := funcName(n)
	if name == "set_config" {
		return g.checkSetConfig(n)
	}
	return g.checkFuncName(name)
}

// checkFuncName applies the name-only rules: pg_notify and the deny list.
func (g *Guard) checkFuncName(name string) *Violation {
	switch name {
	case "set_config":
		return NewViolation(RuleSetConfigDynamic, "set_config in attribute notation is not allowed on tenant connections", "")
	case "pg_notify":
		return NewViolation(RuleListenNotify, "pg_notify is not available on tenant connections: channel names are shared by all tenants",
			"Use a table protected by multigres_protect, or connect as a superuser_bypass user for cross-tenant events.")
	}
	for _, pat := range g.denied {
		if ok, _ := path.Match(pat, name); ok {
			return NewViolation(RuleDeniedFunction, fmt.Sprintf("function %s is not allowed on tenant connections", name),
				"It can reach other tenants' data or sessions; see guard_denied_functions.")
		}
	}
	return nil
}

// checkSetConfig allows set_config only with a constant name that is not
// protected, so the name cannot be computed at run time.
func (g *Guard) checkSetConfig(n *pg_query.FuncCall) *Violation {
	if len(n.Args) == 0 {
		return nil // no such function; the server will say so
	}
	name, ok := constString(n.Args[0])
	if !ok {
		return NewViolation(RuleSetConfigDynamic, "set_config with a non-constant parameter name is not allowed on tenant connections",
			"Pass the parameter name as a string literal.")
	}
	if g.protected[normalizeGUC(name)] {
		return NewViolation(RuleSetProtected, fmt.Sprintf("set_config of %s is not allowed on tenant connections", normalizeGUC(name)), protectedHint(normalizeGUC(name)))
	}
	if normalizeGUC(name) == "client_encoding" && len(n.Args) > 1 {
		v, ok := constString(n.Args[1])
		if !ok || wire.UnsafeClientEncoding(v) {
			return unsafeEncoding(v)
		}
	}
	return nil
}

func unsafeEncoding(v string) *Violation {
	return NewViolation(RuleClientEncoding, "this client_encoding is not allowed on tenant connections",
		"Use UTF8; SJIS, BIG5, GBK, UHC, GB18030 and JOHAB can hide quotes inside multibyte characters.")
}

func checkSettingsDML(rel *pg_query.RangeVar) *Violation {
	if rel != nil && strings.EqualFold(rel.Relname, "pg_settings") {
		return NewViolation(RulePGSettingsDML, "changing pg_settings is not allowed on tenant connections",
			"Use SET for ordinary parameters.")
	}
	return nil
}

// funcName is the function's unqualified name, lower-cased (over-matching
// a quoted mixed-case name only refuses a call that could not resolve to
// the built-in anyway).
func funcName(n *pg_query.FuncCall) string {
	if len(n.Funcname) == 0 {
		return ""
	}
	last := n.Funcname[len(n.Funcname)-1].GetString_()
	if last == nil {
		return ""
	}
	return strings.ToLower(last.Sval)
}

// constString unwraps casts around a string literal.
func constString(n *pg_query.Node) (string, bool) {
	for {
		if tc := n.GetTypeCast(); tc != nil {
			n = tc.Arg
			continue
		}
		if c := n.GetCollateClause(); c != nil {
			n = c.Arg
			continue
		}
		break
	}
	c := n.GetAConst()
	if c == nil || c.GetSval() == nil {
		return "", false
	}
	return c.GetSval().Sval, true
}
