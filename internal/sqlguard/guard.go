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
}

// Violation is a refused statement. Rule names the rule (for metrics).
type Violation struct {
	Rule    string
	Message string
	Hint    string
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
}

// New builds a guard.
func New(cfg Config) *Guard {
	g := &Guard{protected: map[string]bool{"role": true, "session_authorization": true,
		// With these off, backslashes in '...' strings escape; pg_query
		// always lexes as if they were on, so the guard would misread
		// where a string ends.
		"standard_conforming_strings": true, "backslash_quote": true,
	}, denied: cfg.DeniedFunctions}
	for _, v := range cfg.ContextVariables {
		g.protected[normalizeGUC(v)] = true
	}
	if g.denied == nil {
		g.denied = DefaultDeniedFunctions
	}
	g.tokens = prefilterTokens(g.denied)
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
	if !g.mayBeDangerous(unsafe.String(unsafe.SliceData(sql), len(sql))) {
		return nil
	}
	return g.Check(string(sql))
}

// Check returns nil if sql may run, or a *Violation. Like the server, it
// reads sql only up to its first NUL.
func (g *Guard) Check(sql string) error {
	if i := strings.IndexByte(sql, 0); i >= 0 {
		sql = sql[:i]
	}
	if !g.mayBeDangerous(sql) {
		return nil
	}
	if len(sql) <= maxCachedLen {
		g.mu.Lock()
		v, ok := g.cache.get(sql)
		g.mu.Unlock()
		if ok {
			return asError(v)
		}
	}
	v := g.check(sql)
	if len(sql) <= maxCachedLen {
		g.mu.Lock()
		g.cache.put(sql, v)
		g.mu.Unlock()
	}
	return asError(v)
}

func asError(v *Violation) error {
	if v == nil {
		return nil
	}
	return v
}

func (g *Guard) check(sql string) *Violation {
	if len(sql) > MaxParseBytes {
		return &Violation{Rule: "too_large", Message: fmt.Sprintf("statement of %d bytes is too large for the SQL guard (limit %d)", len(sql), MaxParseBytes),
			Hint: "Send large data with COPY or as bind parameters."}
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		// The text contains a dangerous token and does not parse: refuse
		// rather than let a parser difference through. The parser's
		// message quotes the input, so it is not passed on.
		return &Violation{Rule: "unparsable", Message: "syntax error: multigres could not parse this statement",
			Hint: "Check the statement's syntax."}
	}
	var found *Violation
	for _, st := range tree.Stmts {
		walk(st.Stmt.ProtoReflect(), func(m protoreflect.Message) bool {
			found = g.inspect(m.Interface())
			return found == nil
		})
		if found != nil {
			return found
		}
	}
	return nil
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
