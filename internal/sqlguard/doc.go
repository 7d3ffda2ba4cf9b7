// Package sqlguard decides whether a tenant may run a piece of SQL. It is
// pure (no I/O) and parses with PostgreSQL's own parser (pg_query_go), so a
// statement is judged by its parse tree, not by its spelling: quoting,
// case, comments, E” and U&"" escapes and dollar quoting are already
// resolved when the rules look at it.
//
// The tenant context is set once per connection by multigres; the guard
// stops a tenant from changing it from inside. It refuses:
//
//   - SET / SET LOCAL / RESET / SET ... TO DEFAULT of a context variable,
//     role or session_authorization, and RESET ALL;
//   - DISCARD ALL (it resets the role and the context variables);
//   - set_config() of a context variable, role or session_authorization,
//     anywhere in the tree, and any set_config() whose first argument is
//     not a string constant (so it cannot be built at run time);
//   - UPDATE/INSERT/DELETE on pg_settings (its rules call set_config);
//   - DO blocks (their PL/pgSQL bodies run SQL the guard cannot see);
//   - ALTER ROLE/DATABASE ... SET and ALTER SYSTEM;
//   - LISTEN, NOTIFY and pg_notify(): channel names are global, so one
//     tenant could hear another's events (UNLISTEN stays allowed);
//   - calls to denied functions: by default the ones that reach across
//     tenants or execute SQL text (pg_terminate_backend, pg_cancel_backend,
//     lo_*, dblink*, pg_read_file*, query_to_xml*, ts_stat, ...) and
//     references to pg_largeobject.
//
// A refusal is a *Violation: its Rule (a constant whose string is the
// metrics label), the SQLSTATE the client gets (Rule.Code) and a hint, so
// the proxy copies the verdict into the client's error as it is.
//
// Statements that cannot contain any of these skip the parse through a
// cheap textual pre-filter, and verdicts are cached by statement text in a
// bounded LRU.
package sqlguard
