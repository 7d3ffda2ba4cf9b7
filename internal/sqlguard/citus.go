package sqlguard

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// Citus mode (Config.Citus). On a Citus coordinator multigres runs every
// tenant transaction inside a block it opens (BEGIN, then SET LOCAL of each
// context variable, which Citus propagates to the workers with
// citus.propagate_set_commands = 'local'). The state machine
// (internal/txstate) needs to know how each statement stands to that
// block, and a few statements cannot run in it at all. The guard tells
// both: Effects.Block classifies a statement, and RuleCitus refuses what
// the block rules out.

// Block is how a statement stands to the transaction block it runs in.
type Block uint8

const (
	// BlockPlain statements run inside any block (the zero value: a
	// statement the guard did not parse is plain).
	BlockPlain Block = iota
	// BlockBegin: BEGIN or START TRANSACTION.
	BlockBegin
	// BlockEnd: COMMIT, END, ROLLBACK or ABORT.
	BlockEnd
	// BlockSavepoint, BlockRelease, BlockRollbackTo: SAVEPOINT, RELEASE,
	// ROLLBACK TO (in this order: the savepoint commands are the last).
	BlockSavepoint
	BlockRelease
	BlockRollbackTo
)

// RuleCitus refuses, on a Citus database, what multigres' per-transaction
// block cannot carry (0A000 feature_not_supported).
const RuleCitus Rule = "citus_unsupported"

const citusHint = "On a Citus database multigres runs each tenant transaction in a block of its own, so that the tenant context reaches every node; see docs/scaling.md."

// CitusDeniedFunctions are refused on tenant connections to a Citus
// database, in addition to guard_denied_functions: they run SQL text on
// the workers or the coordinator (where the guard cannot see it, in a
// session of the tenant's role with a context of its choosing), or show
// other sessions' statements.
var CitusDeniedFunctions = []string{
	"run_command_on_*", "master_run_on_worker", "citus_run_local_command", "database_command",
	"worker_*", "citus_internal_*", "create_intermediate_result", "broadcast_intermediate_result",
	"master_apply_delete_command", "citus_stat_activity", "citus_dist_stat_activity", "citus_worker_stat_activity",
	"get_all_active_transactions", "get_global_active_transactions", "citus_stat_statements*", "citus_query_stats",
}

// citusFirstWords are the first keywords of every statement that is not
// plain, or cannot run in a block: a single statement starting with none
// of them needs no parse in Citus mode.
var citusFirstWords = map[string]bool{
	"begin": true, "start": true, "commit": true, "end": true, "rollback": true, "abort": true,
	"savepoint": true, "release": true, "prepare": true, "vacuum": true, "create": true, "drop": true,
	"reindex": true, "cluster": true, "alter": true, "copy": true, "discard": true,
}

// citusNeedsParse reports whether sql may hold more than one statement, or
// a statement that citusFirstWords flag. It allocates nothing.
func citusNeedsParse(sql string) bool {
	i := skipSpaceAndComments(sql, 0)
	j := i
	for j < len(sql) && (isLetter(sql[j]) || sql[j] == '_' || j > i && (sql[j] >= '0' && sql[j] <= '9' || sql[j] == '$')) {
		j++
	}
	if j == i || j < len(sql) && sql[j] >= 0x80 {
		return true // no plain keyword first: parse, to be sure
	}
	var word [16]byte
	if j-i > len(word) {
		return multiStatement(sql)
	}
	for k := i; k < j; k++ {
		word[k-i] = lowerASCII(sql[k])
	}
	return citusFirstWords[string(word[:j-i])] || multiStatement(sql)
}

// multiStatement reports whether a semicolon in sql is followed by
// anything but white space: a second statement, or (conservatively) a
// comment or a semicolon inside a literal.
func multiStatement(sql string) bool {
	for i := 0; i < len(sql); i++ {
		if sql[i] != ';' {
			continue
		}
		for k := i + 1; k < len(sql); k++ {
			if !isSpace(sql[k]) && sql[k] != ';' {
				return true
			}
		}
		return false
	}
	return false
}

// skipSpaceAndComments returns the index of the first byte at or after i
// that is neither white space nor inside a comment (-- to end of line,
// nested /* */).
func skipSpaceAndComments(sql string, i int) int {
	for i < len(sql) {
		switch {
		case isSpace(sql[i]):
			i++
		case sql[i] == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*':
			depth := 0
			for i < len(sql) {
				if sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*' {
					depth++
					i += 2
				} else if sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/' {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
		default:
			return i
		}
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// classifyCitus classifies a parsed text for the Citus block, or refuses
// it.
func classifyCitus(stmts []*pg_query.RawStmt) (Block, *Violation) {
	block := BlockPlain
	for _, st := range stmts {
		b, v := classifyCitusStmt(st.Stmt)
		if v != nil {
			return 0, v
		}
		if len(stmts) > 1 && (b != BlockPlain || propagatedSet(st.Stmt)) {
			return 0, NewViolation(RuleCitus, "on a Citus database a query of several statements cannot contain BEGIN, COMMIT, ROLLBACK, savepoints, SET LOCAL, SET TRANSACTION or RESET",
				"Send transaction control and SET LOCAL as queries of their own. "+citusHint)
		}
		block = b
	}
	return block, nil
}

// propagatedSet reports a SET that Citus sends to the workers as the text
// of the whole query (SET LOCAL, SET TRANSACTION, RESET).
func propagatedSet(n *pg_query.Node) bool {
	s := n.GetVariableSetStmt()
	if s == nil {
		return false
	}
	switch s.Kind {
	case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_RESET_ALL, pg_query.VariableSetKind_VAR_SET_MULTI:
		return true
	}
	return s.IsLocal
}

// classifyCitusStmt classifies one statement.
func classifyCitusStmt(n *pg_query.Node) (Block, *Violation) {
	noBlock := func(what string) (Block, *Violation) {
		return 0, NewViolation(RuleCitus, what+" is not supported for tenants on a Citus database: it cannot run inside a transaction block",
			"Run it as a superuser_bypass user. "+citusHint)
	}
	switch {
	case n.GetTransactionStmt() != nil:
		t := n.GetTransactionStmt()
		switch t.Kind {
		case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
			return BlockBegin, nil
		case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT, pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
			if t.Chain {
				return 0, NewViolation(RuleCitus, "COMMIT AND CHAIN and ROLLBACK AND CHAIN are not supported for tenants on a Citus database",
					"End the transaction, then send BEGIN. "+citusHint)
			}
			return BlockEnd, nil
		case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
			return BlockSavepoint, nil
		case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
			return BlockRelease, nil
		case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
			return BlockRollbackTo, nil
		}
		return 0, NewViolation(RuleCitus, "prepared transactions are not supported for tenants on a Citus database", "Use ordinary transactions. "+citusHint)
	case n.GetVacuumStmt() != nil && n.GetVacuumStmt().IsVacuumcmd:
		return noBlock("VACUUM")
	case n.GetIndexStmt() != nil && n.GetIndexStmt().Concurrent:
		return noBlock("CREATE INDEX CONCURRENTLY")
	case n.GetDropStmt() != nil && n.GetDropStmt().Concurrent:
		return noBlock("DROP INDEX CONCURRENTLY")
	case n.GetReindexStmt() != nil:
		r := n.GetReindexStmt()
		if r.Kind == pg_query.ReindexObjectType_REINDEX_OBJECT_SCHEMA || r.Kind == pg_query.ReindexObjectType_REINDEX_OBJECT_SYSTEM ||
			r.Kind == pg_query.ReindexObjectType_REINDEX_OBJECT_DATABASE || hasDefElem(r.Params, "concurrently") {
			return noBlock("this REINDEX")
		}
	case n.GetClusterStmt() != nil && n.GetClusterStmt().Relation == nil:
		return noBlock("CLUSTER without a table")
	case n.GetCreatedbStmt() != nil, n.GetDropdbStmt() != nil:
		return noBlock("CREATE DATABASE and DROP DATABASE")
	case n.GetCreateTableSpaceStmt() != nil, n.GetDropTableSpaceStmt() != nil:
		return noBlock("CREATE TABLESPACE and DROP TABLESPACE")
	case n.GetAlterSystemStmt() != nil:
		return noBlock("ALTER SYSTEM")
	case n.GetCreateSubscriptionStmt() != nil, n.GetAlterSubscriptionStmt() != nil, n.GetDropSubscriptionStmt() != nil:
		return noBlock("a subscription command")
	case n.GetDiscardStmt() != nil && n.GetDiscardStmt().Target == pg_query.DiscardMode_DISCARD_ALL:
		return noBlock("DISCARD ALL")
	case n.GetAlterTableStmt() != nil:
		for _, c := range n.GetAlterTableStmt().Cmds {
			if cmd := c.GetAlterTableCmd(); cmd != nil && cmd.Subtype == pg_query.AlterTableType_AT_DetachPartition &&
				cmd.Def != nil && cmd.Def.GetPartitionCmd() != nil && cmd.Def.GetPartitionCmd().Concurrent {
				return noBlock("DETACH PARTITION CONCURRENTLY")
			}
		}
	case n.GetCopyStmt() != nil:
		c := n.GetCopyStmt()
		if c.IsFrom && !c.IsProgram && c.Filename == "" {
			// The block's COMMIT follows the query on the wire, where the
			// server reads COPY data; and PostgreSQL refuses COPY FROM into
			// a table with row-level security anyway.
			return 0, NewViolation(RuleCitus, "COPY FROM STDIN is not supported for tenants on a Citus database",
				"Use INSERT (COPY FROM cannot write into tables with row-level security). "+citusHint)
		}
	}
	return BlockPlain, nil
}

func hasDefElem(params []*pg_query.Node, name string) bool {
	for _, p := range params {
		if d := p.GetDefElem(); d != nil && d.Defname == name {
			return true
		}
	}
	return false
}
