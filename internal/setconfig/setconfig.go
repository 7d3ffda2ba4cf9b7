// Package setconfig builds the SQL that applies a tenant context to a
// server session: one SELECT of pg_catalog.set_config calls whose names and
// values travel as bound parameters, so no value can inject SQL. It is pure
// (no I/O): the login (internal/backend) and the transaction-mode context
// switch (internal/txstate) both use it.
package setconfig

import (
	"fmt"
	"slices"
	"strings"
)

// Context is what multigres applies to a tenant's server connection before
// the client may send anything: context variables, then the role.
type Context struct {
	Variables []string
	Values    []string
	Role      string
	// MACNames/MACs are extra settings applied with the variables: the
	// signed-context MACs (see sql.ContextMAC), or nil.
	MACNames, MACs []string
	// Primed is how many of the first Variables are signed: after the
	// set_config calls, multigres.context_prime runs for each of them (see
	// SetConfigSQL). 0 without context signing.
	Primed int
	// Resets are settings put back to their defaults (set_config with a
	// NULL value), after the variables.
	Resets []string
	// PreResets are settings among Variables (past the signed ones) that
	// are put back to their defaults right before they are set: a
	// DateStyle of "ISO" keeps the order (DMY, MDY) already in effect, so
	// applied on top of another client's value it would mean something
	// else.
	PreResets []string
	// CheckRole adds a check, in the same round trip, that neither the
	// session user nor the effective role can bypass RLS.
	CheckRole bool
}

// Params are the (name, value) parameter pairs that apply ctx: the
// variables, the MACs, the resets (NULL values) and, with role, the role.
func Params(ctx Context, withRole bool) [][]byte {
	n := len(ctx.Variables) + len(ctx.MACNames) + len(ctx.Resets)
	if withRole {
		n++
	}
	params := make([][]byte, 0, 2*(n+len(ctx.PreResets)))
	for i, name := range ctx.Variables {
		if i >= ctx.Primed && slices.Contains(ctx.PreResets, name) {
			params = append(params, []byte(name), nil)
		}
		params = append(params, []byte(name), []byte(ctx.Values[i]))
	}
	for i, name := range ctx.MACNames {
		params = append(params, []byte(name), []byte(ctx.MACs[i]))
	}
	for _, name := range ctx.Resets {
		params = append(params, []byte(name), nil)
	}
	if withRole {
		params = append(params, []byte("role"), []byte(ctx.Role))
	}
	return params
}

// SQL is a SELECT of n set_config calls over parameters $1..$2n,
// then, with signed context, multigres.context_prime for each of the first
// primed variables (parameters $1, $3, …). Priming verifies the MAC once
// and leaves a per-session fingerprint, so the signed reader needs neither
// the key nor an HMAC on every statement (see sql/setup.sql). Target
// entries are evaluated in order, so every MAC is set before the first
// prime.
func SQL(n, primed int) string {
	var sql strings.Builder
	sql.WriteString("SELECT ")
	for i := range n {
		if i > 0 {
			sql.WriteString(", ")
		}
		fmt.Fprintf(&sql, "pg_catalog.set_config($%d, $%d, false)", 2*i+1, 2*i+2)
	}
	for i := range primed {
		fmt.Fprintf(&sql, ", multigres.context_prime($%d)", 2*i+1)
	}
	return sql.String()
}

// SetLocal is the statement that sets name to value for the current
// transaction only: `SET LOCAL name = E'value'`. Citus propagates SET
// LOCAL, as its text, to the workers a transaction reaches (with
// citus.propagate_set_commands = 'local'), which it does not do for
// set_config(..., true); so on a Citus coordinator the context travels
// this way, as SQL text rather than a bound parameter. The value is an
// escape string literal with its quotes and backslashes doubled, which
// reads the same whatever standard_conforming_strings says on the node
// that runs it. A value with a NUL byte cannot be written as SQL and is
// refused. A name that is not a plain dotted identifier is quoted part by
// part.
func SetLocal(name, value string) (string, error) {
	if strings.IndexByte(value, 0) >= 0 || strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("set local %s: the value contains a NUL byte", name)
	}
	var b strings.Builder
	b.WriteString("SET LOCAL ")
	for i, part := range strings.Split(name, ".") {
		if i > 0 {
			b.WriteByte('.')
		}
		if plainIdent(part) {
			b.WriteString(part)
		} else {
			b.WriteString(`"` + strings.ReplaceAll(part, `"`, `""`) + `"`)
		}
	}
	b.WriteString(" = E'")
	for i := 0; i < len(value); i++ {
		switch value[i] {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(value[i])
		}
	}
	b.WriteByte('\'')
	return b.String(), nil
}

// plainIdent reports a lower-case identifier that needs no quotes (and is
// not empty); keywords are fine after SET LOCAL's dotted name.
func plainIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' || s[0] == '$' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || c >= '0' && c <= '9' || c == '$') {
			return false
		}
	}
	return true
}
