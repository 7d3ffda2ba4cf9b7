package backend

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
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

// ErrRoleBypassesRLS means the tenant role is SUPERUSER or BYPASSRLS, so RLS
// would not filter its queries.
var ErrRoleBypassesRLS = errors.New("role bypasses row-level security")

// ErrDatabaseNotHardened means the tenant role may create temporary
// objects in the database, so `multigres init` (with hardening) has not run
// there: a pg_temp function could run SQL the guard never sees, and
// databases such as postgres or template1 would expose other tenants'
// sessions.
var ErrDatabaseNotHardened = errors.New("database not hardened for tenants")

// roleCheckSQL returns 't' when the tenant must be refused: the session or
// effective role can bypass RLS, or the role may create temporary objects
// in this database (see ErrDatabaseNotHardened). The second column tells
// which.
// The database counts as hardened only when multigres init ran there
// (multigres.apply_hardening exists) and its effects hold: no TEMPORARY,
// and no pg_stat_get_activity or pg_prepared_statement (other tenants'
// query text; a database hardened by an older multigres fails here until
// multigres init runs again). template1, for
// example, grants no TEMPORARY to PUBLIC but was never hardened.
const roleCheckSQL = "SELECT coalesce(bool_or(rolsuper OR rolbypassrls), true)" +
	" OR pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY')" +
	" OR pg_catalog.to_regprocedure('multigres.apply_hardening()') IS NULL" +
	" OR pg_catalog.has_function_privilege('pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')" +
	" OR pg_catalog.has_function_privilege('pg_catalog.pg_prepared_statement()', 'EXECUTE'), " +
	"coalesce(bool_or(rolsuper OR rolbypassrls), true) FROM pg_catalog.pg_roles WHERE rolname IN (current_user, session_user)"

// Apply sets the context in one round trip over the extended protocol. The
// values travel as bound parameters, so no value can inject SQL and none
// appears in pg_stat_activity.query. Any error fails the whole call and the
// caller must close the connection: it is never handed to a client
// half-configured.
func (c *Conn) Apply(ctx Context) error {
	if len(ctx.Variables) != len(ctx.Values) || len(ctx.MACNames) != len(ctx.MACs) {
		return errors.New("apply context: variables and values differ in number")
	}
	if err := c.queueApply(ctx); err != nil {
		return fmt.Errorf("apply context: %w", err)
	}
	if err := c.W.Flush(); err != nil {
		return fmt.Errorf("apply context: %w", err)
	}
	checkStage := -1 // index of the role check among the statements sent
	if ctx.CheckRole {
		checkStage = 1
		if len(ctx.Variables)+len(ctx.MACNames)+len(ctx.Resets) > 0 {
			checkStage = 2
		}
	}
	return c.readApplyResult(checkStage)
}

func (c *Conn) queueApply(ctx Context) error {
	var msgs []pgproto3.FrontendMessage
	if m := setConfigMessages(ctx, false); m != nil {
		msgs = append(msgs, m...)
	}
	msgs = append(msgs, &pgproto3.Parse{Query: "SET ROLE " + QuoteIdent(ctx.Role)}, &pgproto3.Bind{}, &pgproto3.Execute{})
	if ctx.CheckRole {
		msgs = append(msgs, &pgproto3.Parse{Query: roleCheckSQL}, &pgproto3.Bind{}, &pgproto3.Execute{})
	}
	// Leave no unnamed statement or portal of ours behind for the client.
	msgs = append(msgs, &pgproto3.Close{ObjectType: 'S'}, &pgproto3.Close{ObjectType: 'P'}, &pgproto3.Sync{})
	for _, m := range msgs {
		if err := c.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// setConfigMessages is one SELECT of set_config calls with bound
// parameters (see SetConfigParams), nil when there is nothing to set.
func setConfigMessages(ctx Context, withRole bool) []pgproto3.FrontendMessage {
	params := SetConfigParams(ctx, withRole)
	if len(params) == 0 {
		return nil
	}
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: SetConfigSQL(len(params)/2, ctx.Primed)}, &pgproto3.Bind{Parameters: params}, &pgproto3.Execute{}}
}

// SetConfigParams are the (name, value) parameter pairs that apply ctx: the
// variables, the MACs, the resets (NULL values) and, with role, the role.
func SetConfigParams(ctx Context, withRole bool) [][]byte {
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

// SetConfigSQL is a SELECT of n set_config calls over parameters $1..$2n,
// then, with signed context, multigres.context_prime for each of the first
// primed variables (parameters $1, $3, …). Priming verifies the MAC once
// and leaves a per-session fingerprint, so the signed reader needs neither
// the key nor an HMAC on every statement (see sql/setup.sql). Target
// entries are evaluated in order, so every MAC is set before the first
// prime.
func SetConfigSQL(n, primed int) string {
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

func (c *Conn) readApplyResult(checkStage int) error {
	var firstErr error
	completed := 0
	refuse := checkStage >= 0 // fail closed until the check's row says otherwise
	bypass := refuse
	for {
		typ, frame, err := c.Frames.Next()
		if err != nil {
			return fmt.Errorf("apply context: read: %w", err)
		}
		body := frame[5:]
		switch typ {
		case 'E':
			if firstErr == nil {
				firstErr = decodeError(body)
			}
		case 'D':
			var row pgproto3.DataRow
			if err := row.Decode(body); err != nil {
				return fmt.Errorf("apply context: decode row: %w", err)
			}
			// Only the check's row counts: set_config's row echoes the
			// tenant's values, which may well be "f".
			if completed == checkStage && len(row.Values) == 2 {
				refuse = string(row.Values[0]) != "f"
				bypass = string(row.Values[1]) != "f"
			}
		case 'C':
			completed++
		case 'S':
			// SET ROLE reports is_superuser; the client must see the
			// value in effect, not the login role's.
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err == nil {
				c.setParam(ps.Name, ps.Value)
			}
		case 'Z':
			if len(body) != 1 {
				return errors.New("apply context: malformed ReadyForQuery")
			}
			c.TxStatus = body[0]
			switch {
			case firstErr != nil:
				return fmt.Errorf("apply context: %w", firstErr)
			case bypass:
				return ErrRoleBypassesRLS
			case refuse:
				return ErrDatabaseNotHardened
			case c.TxStatus != 'I':
				return fmt.Errorf("apply context: server not idle after context (status %q)", c.TxStatus)
			}
			return nil
		}
	}
}

// QuoteIdent quotes an SQL identifier the way quote_ident does.
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `"`, `""`) + `"`
}

func (c *Conn) setParam(name, value string) {
	for i := range c.Params {
		if c.Params[i].Name == name {
			c.Params[i].Value = value
			return
		}
	}
	c.Params = append(c.Params, Param{name, value})
}

// NoteParameterStatus records a ParameterStatus frame the server sent
// after login (the relay forwards it to the client), so that Params stays
// what the server last reported: a client logging in on a pooled
// connection is told exactly that.
func (c *Conn) NoteParameterStatus(frame []byte) {
	var ps pgproto3.ParameterStatus
	if len(frame) > 5 && ps.Decode(frame[5:]) == nil {
		c.setParam(ps.Name, ps.Value)
	}
}
