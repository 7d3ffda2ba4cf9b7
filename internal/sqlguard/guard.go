package sqlguard

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DefaultDeniedFunctions are refused on tenant connections unless the
// configuration says otherwise. A trailing * matches any suffix.
var DefaultDeniedFunctions = []string{
	// Reach other tenants' sessions (all tenants share one role).
	"pg_terminate_backend", "pg_cancel_backend",
	// Large objects are not covered by RLS.
	"lo_*", "loread", "lowrite", "be_lo_*",
	// Cross-database access and the file system.
	"dblink*", "pg_read_file*", "pg_read_binary_file*", "pg_ls_*", "pg_stat_file",
	// Execute SQL given as text, where the guard cannot see it.
	"query_to_xml*", "query_to_xmlschema", "cursor_to_xml*", "ts_stat", "ts_rewrite",
	"table_to_xml*", "schema_to_xml*", "database_to_xml*",
	// Show other sessions' statement text or lock keys: on a server
	// connection shared by tenants in transaction pooling, the statements
	// and cursors of the tenants before (behind pg_prepared_statements,
	// pg_cursors, pg_prepared_xacts, pg_locks).
	"pg_prepared_statement", "pg_cursor", "pg_prepared_xact", "pg_lock_status",
}

// DeniedRelations may not be referenced at all.
var DeniedRelations = []string{"pg_largeobject", "pg_largeobject_metadata"}

// Config configures a Guard.
type Config struct {
	// ContextVariables are the protected variables (e.g.
	// app.current_tenant_id). role and session_authorization are always
	// protected.
	ContextVariables []string
	// DeniedFunctions; nil means DefaultDeniedFunctions.
	DeniedFunctions []string
	// CacheSize bounds the verdict cache; 0 means 10,000 statements.
	CacheSize int
	// TransactionMode adds the transaction-pooling rules (session.go):
	// session state that would outlive the transaction is refused, and
	// session SETs of tracked parameters are reported as Effects.
	TransactionMode bool
	// PoolingOnly turns the tenant-context rules off and keeps only the
	// transaction-mode ones: with guard = off, transaction pooling must
	// still refuse session state that would reach the next client.
	PoolingOnly bool
	// ContextSigning refuses DISCARD SEQUENCES, in every mode: it would
	// drop the seed behind the signed reader's per-session fingerprint
	// (multigres.context_prime in sql/setup.sql), and every later read on
	// that server connection would fail.
	ContextSigning bool
	// Citus adds the rules of a Citus database (citus.go): every statement
	// is classified for the per-transaction block (Effects.Block), what
	// cannot run in it is refused, citus.propagate_set_commands is
	// protected and CitusDeniedFunctions are denied. With PoolingOnly and
	// without TransactionMode only the classification and its refusals
	// apply (guard = off in session mode).
	Citus bool
}

// verdict is the cached outcome of checking one statement text.
type verdict struct {
	v  *Violation
	fx *Effects
}

// Violation is a refused statement: the verdict the frontend copies into
// the client's error. Build one with NewViolation, so Code matches Rule.
type Violation struct {
	Rule    Rule   // which rule refused it (the metrics label)
	Code    string // SQLSTATE for the client: Rule.Code()
	Message string
	Hint    string // may be empty
}

func (v *Violation) Error() string { return v.Message }

// Guard checks SQL text. It is safe for concurrent use.
type Guard struct {
	protected map[string]bool
	denied    []string
	tokens    []string
	byFirst   [256][]string
	cache     *lru
	mu        sync.Mutex
	txMode    bool
	poolOnly  bool
	signing   bool
	citus     bool
}

// New builds a guard.
func New(cfg Config) *Guard {
	g := &Guard{protected: map[string]bool{"role": true, "session_authorization": true,
		// With these off, backslashes in '...' strings escape; pg_query
		// always lexes as if they were on, so the guard would misread
		// where a string ends.
		"standard_conforming_strings": true, "backslash_quote": true,
	}, denied: cfg.DeniedFunctions, txMode: cfg.TransactionMode, poolOnly: cfg.PoolingOnly, signing: cfg.ContextSigning,
		citus: cfg.Citus}
	for _, v := range cfg.ContextVariables {
		g.protected[normalizeGUC(v)] = true
	}
	if g.denied == nil {
		g.denied = DefaultDeniedFunctions
	}
	if g.citus {
		g.protected["citus.propagate_set_commands"] = true
		g.denied = append(append([]string(nil), g.denied...), CitusDeniedFunctions...)
	}
	g.tokens = prefilterTokens(g.denied)
	if g.txMode {
		g.tokens = append(g.tokens, txTokens...)
	}
	switch {
	case g.poolOnly && g.txMode:
		g.tokens = append([]string{"set"}, txTokens...)
	case g.poolOnly:
		g.tokens = nil // Citus classification only (citusNeedsParse)
	}
	g.byFirst = indexTokens(g.tokens)
	size := cfg.CacheSize
	if size <= 0 {
		size = 10000
	}
	g.cache = newLRU(size)
	return g
}

// maxCachedLen keeps huge statements (bulk inserts) out of the cache.
const maxCachedLen = 4096

// MaxParseBytes caps what the guard parses: parse time grows faster than
// linearly with statement size, so a huge statement could pin the proxy's
// CPU and memory. Larger statements that contain a dangerous token are
// refused; large data belongs in COPY or in bind parameters.
const MaxParseBytes = 256 << 10

// CheckBytes is Check for a statement still in a protocol buffer: the
// pre-filter reads it in place, so the common case allocates nothing.
func (g *Guard) CheckBytes(sql []byte) error {
	_, err := g.CheckTx(sql)
	return err
}

// CheckTx is CheckBytes that also returns the statement's effects on the
// session (transaction mode only; nil when there are none).
func (g *Guard) CheckTx(sql []byte) (*Effects, error) {
	if !g.needsParse(unsafe.String(unsafe.SliceData(sql), len(sql))) {
		return nil, nil
	}
	vd := g.verdict(string(sql))
	return vd.fx, asError(vd.v)
}

// Check returns nil if sql may run, or a *Violation. Like the server, it
// reads sql only up to its first NUL.
func (g *Guard) Check(sql string) error {
	if !g.needsParse(sql) {
		return nil
	}
	return asError(g.verdict(sql).v)
}

func (g *Guard) verdict(sql string) verdict {
	if i := strings.IndexByte(sql, 0); i >= 0 {
		sql = sql[:i]
	}
	if len(sql) <= maxCachedLen {
		g.mu.Lock()
		vd, ok := g.cache.get(sql)
		g.mu.Unlock()
		if ok {
			return vd
		}
	}
	v, fx := g.check(sql)
	vd := verdict{v, fx}
	if len(sql) <= maxCachedLen {
		g.mu.Lock()
		g.cache.put(sql, vd)
		g.mu.Unlock()
	}
	return vd
}

// needsParse reports whether sql must be parsed: it may be refused, or
// (Citus mode) it may not be a plain single statement.
func (g *Guard) needsParse(sql string) bool {
	return g.mayBeDangerous(sql) || g.citus && citusNeedsParse(sql)
}

func asError(v *Violation) error {
	if v == nil {
		return nil
	}
	return v
}

func (g *Guard) check(sql string) (*Violation, *Effects) {
	if len(sql) > MaxParseBytes {
		return NewViolation(RuleTooLarge, fmt.Sprintf("statement of %d bytes is too large for the SQL guard (limit %d)", len(sql), MaxParseBytes),
			"Send large data with COPY or as bind parameters."), nil
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		// The text contains a dangerous token and does not parse: refuse
		// rather than let a parser difference through. The parser's
		// message quotes the input, so it is not passed on.
		return NewViolation(RuleUnparsable, "syntax error: multigres could not parse this statement",
			"Check the statement's syntax."), nil
	}
	var found *Violation
	fx := &Effects{}
	for _, st := range tree.Stmts {
		walk(st.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			if !g.poolOnly {
				found = g.inspect(m.Interface())
			}
			if found == nil && g.txMode {
				found = g.inspectTx(m.Interface(), fx)
			}
			return found == nil
		})
		if found != nil {
			return found, nil
		}
	}
	if g.citus {
		block, v := classifyCitus(tree.Stmts)
		if v != nil {
			return v, nil
		}
		fx.Block = block
	}
	if len(fx.Settings) == 0 && !fx.TxControl && !fx.DeallocateAll && fx.Block == BlockPlain {
		fx = nil
	}
	return nil, fx
}

// walk visits every message in the tree, depth first, until visit returns
// false. Walking the generic protobuf form means no node type can be
// forgotten: a set_config inside any construct is reached.
func walk(m protoreflect.Message, visit func(protoreflect.Message) bool) bool {
	if !m.IsValid() {
		return true
	}
	if !visit(m) {
		return false
	}
	ok := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && ok; i++ {
				ok = walk(l.Get(i).Message(), visit)
			}
		case fd.IsMap():
		case fd.Message() != nil:
			ok = walk(v.Message(), visit)
		}
		return ok
	})
	return ok
}

func normalizeGUC(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}
