package backend

import (
	"fmt"
	"strings"
	"time"
)

// CheckRoles runs, as a simple query of the proxy's own, the check that
// Apply's CheckRole makes inside the injection round trip (see
// roleCheckSQL), for named roles instead of the session's: effective is
// the role tenants run as (set_role, or the login role), login the role
// the connection logged in as. It serves a transaction-mode client that
// follows its tenant to another cluster, whose pooled connections may
// carry another client's role: it returns ErrRoleBypassesRLS when either
// role is SUPERUSER or BYPASSRLS there, ErrDatabaseNotHardened when
// effective could create temporary objects or read other sessions'
// statements in the connection's database or multigres init never ran
// there, and the server's error if a role does not exist. The query
// leaves no session state behind (but drops the unnamed statement, as any
// simple query does).
func (c *Conn) CheckRoles(effective, login string, timeout time.Duration) error {
	rows, err := c.SimpleQuery(roleCheckForSQL(effective, login), timeout)
	if err != nil {
		return fmt.Errorf("role check: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return fmt.Errorf("role check: unexpected result %q", rows)
	}
	switch {
	case rows[0][1] != "f":
		return ErrRoleBypassesRLS
	case rows[0][0] != "f":
		return ErrDatabaseNotHardened
	}
	return nil
}

// roleCheckForSQL is roleCheckSQL with the session's roles replaced by
// effective and login, given as literals (role names come from the
// configuration; quotes are doubled all the same).
func roleCheckForSQL(effective, login string) string {
	e, l := quoteLiteral(effective), quoteLiteral(login)
	roles := "2"
	if effective == login {
		roles = "1"
	}
	// A role missing there counts as a failed check.
	return "SELECT coalesce(bool_or(rolsuper OR rolbypassrls), true) OR count(*) < " + roles +
		" OR pg_catalog.has_database_privilege(" + e + ", pg_catalog.current_database(), 'TEMPORARY')" +
		" OR pg_catalog.to_regprocedure('multigres.apply_hardening()') IS NULL" +
		" OR pg_catalog.has_function_privilege(" + e + ", 'pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')" +
		" OR pg_catalog.has_function_privilege(" + e + ", 'pg_catalog.pg_prepared_statement()', 'EXECUTE'), " +
		"coalesce(bool_or(rolsuper OR rolbypassrls), true) FROM pg_catalog.pg_roles WHERE rolname IN (" + e + ", " + l + ")"
}

// quoteLiteral quotes s as a standard-conforming SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), "'", "''") + "'"
}
