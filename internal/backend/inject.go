package backend

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Context is what multigres applies to a tenant's server connection (see
// setconfig.Context).
type Context = setconfig.Context

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
	msgs = append(msgs, &pgproto3.Close{ObjectType: wire.TargetStatement}, &pgproto3.Close{ObjectType: wire.TargetPortal}, &pgproto3.Sync{})
	for _, m := range msgs {
		if err := c.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// setConfigMessages is one SELECT of set_config calls with bound
// parameters (see setconfig.Params), nil when there is nothing to set.
func setConfigMessages(ctx Context, withRole bool) []pgproto3.FrontendMessage {
	params := setconfig.Params(ctx, withRole)
	if len(params) == 0 {
		return nil
	}
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: setconfig.SQL(len(params)/2, ctx.Primed)}, &pgproto3.Bind{Parameters: params}, &pgproto3.Execute{}}
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
		switch wire.ServerType(typ) {
		case wire.ErrorResponse:
			if firstErr == nil {
				firstErr = decodeError(body)
			}
		case wire.DataRow:
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
		case wire.CommandComplete:
			completed++
		case wire.ParameterStatus:
			// SET ROLE reports is_superuser; the client must see the
			// value in effect, not the login role's.
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err == nil {
				c.setParam(ps.Name, ps.Value)
			}
		case wire.ReadyForQuery:
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
			case c.TxStatus != wire.TxIdle:
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

// Param returns the value the server last reported for a parameter.
func (c *Conn) Param(name string) (string, bool) {
	for _, p := range c.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}
