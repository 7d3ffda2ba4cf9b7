// Package sql holds multigres's setup SQL (setup.sql, embedded) and the Go
// functions that apply it: Init installs the functions, creates the tenant
// roles and the auth user, and optionally hardens the database; Protect,
// Unprotect, Status and HardeningStatus wrap the SQL functions for the CLI.
//
// The security model: tenants share one login role (e.g. app_user) and are
// told apart only by context variables the proxy sets. Isolation therefore
// rests on row level security policies that read those variables
// fail-closed, on tenant roles that can neither bypass RLS nor own the
// tables, and (with hardening) on tenant roles being unable to create
// objects that run SQL later or to reach other sessions.
//
// SQL objects (setup.sql documents each one):
//
//	public.current_tenant_id()               fail-closed app.current_tenant_id (inlinable SQL, STABLE)
//	public.multigres_context(var)            fail-closed reader of any context variable
//	public.multigres_protect(tbl, col, var)  policy + ENABLE/FORCE RLS + grants, idempotent
//	public.multigres_unprotect(tbl)          drop policy, disable RLS; grants kept
//	public.multigres_status()                RLS state of every table in every non-system schema
//	public.multigres_hardening_status(roles) hardening items: ok / missing / advisory
//	multigres.user_lookup(username)          auth_query; SECURITY DEFINER; EXECUTE for the auth user only
//	multigres.apply_hardening()              the hardening applied by Init with Options.Harden
//	multigres.tenant_roles                   the roles multigres_protect grants to
//
// Hardening trade-offs (Options.Harden), all in the current database only:
// TEMPORARY is revoked from PUBLIC (PUBLIC holds it by default and a single
// role cannot be excluded from a PUBLIC grant), so roles that need temporary
// tables must be granted it explicitly; pg_stat_activity and friends raise
// "permission denied" for roles outside pg_read_all_stats; pg_cancel_backend
// and pg_terminate_backend need pg_signal_backend (protocol-level cancel
// still works); large objects, pg_stat_statements and dblink become
// unavailable to roles without an explicit grant. A tenant role that can
// connect to another database is unhardened there; HardeningStatus reports
// it as the advisory item other_databases.
//
// Importers alias the package (mgsql) since it shadows database/sql.
package sql

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/auth"
)

// SetupSQL is the idempotent setup script; see setup.sql for what each
// object is for.
//
//go:embed setup.sql
var SetupSQL string

// Defaults for Options.
const (
	DefaultTenantRole = "app_user"
	DefaultAuthUser   = "multigres_auth"
)

// Options configures Init.
type Options struct {
	// TenantRoles are the login roles the proxy uses for tenants. Default
	// []string{"app_user"}. Init creates missing ones and strips dangerous
	// attributes from existing ones; a superuser is refused.
	TenantRoles []string
	// AuthUser runs auth_query (multigres.user_lookup). Default
	// "multigres_auth"; set NoAuthUser to skip creating it.
	AuthUser string
	// NoAuthUser disables creating the auth user (the zero Options value
	// cannot express "" as distinct from the default).
	NoAuthUser bool
	// AuthPassword, when set, becomes the auth user's password. It is sent
	// to the server as a SCRAM-SHA-256 verifier computed here, so the
	// plaintext never reaches the server or its logs.
	AuthPassword string
	// Harden applies the database hardening of multigres.apply_hardening.
	Harden bool
	// ContextSigning turns signed context on in this database: a key is
	// created (once; an existing key is kept) and current_tenant_id() and
	// multigres_context() verify the MAC the proxy sets. See setup.sql.
	ContextSigning bool
	// DisableContextSigning turns it off again (the key is kept).
	DisableContextSigning bool
}

func (o Options) withDefaults() Options {
	if len(o.TenantRoles) == 0 {
		o.TenantRoles = []string{DefaultTenantRole}
	}
	if o.NoAuthUser {
		o.AuthUser = ""
	} else if o.AuthUser == "" {
		o.AuthUser = DefaultAuthUser
	}
	return o
}

func validRoleName(name string) error {
	if name == "" {
		return errors.New("empty role name")
	}
	if len(name) > 63 {
		return fmt.Errorf("role name %q longer than 63 bytes", name)
	}
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("role name %q contains NUL", name)
	}
	if strings.HasPrefix(name, "pg_") {
		return fmt.Errorf("role name %q: the pg_ prefix is reserved", name)
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Init applies SetupSQL, creates or fixes the tenant roles and the auth user,
// grants the auth user EXECUTE on multigres.user_lookup, re-grants access to
// already protected tables (so a newly added tenant role gets it), and with
// opts.Harden applies the hardening. Everything runs in one transaction, so a
// failure leaves the database unchanged; running it again is harmless.
//
// It must run as a superuser: user_lookup reads pg_authid, and only a
// superuser may remove BYPASSRLS or REPLICATION from a role.
func Init(ctx context.Context, conn *pgx.Conn, opts Options) error {
	opts = opts.withDefaults()
	seen := map[string]bool{}
	for _, r := range opts.TenantRoles {
		if err := validRoleName(r); err != nil {
			return fmt.Errorf("init: tenant role: %w", err)
		}
		if seen[r] {
			return fmt.Errorf("init: tenant role %q listed twice", r)
		}
		seen[r] = true
	}
	if opts.AuthUser != "" {
		if err := validRoleName(opts.AuthUser); err != nil {
			return fmt.Errorf("init: auth user: %w", err)
		}
		if seen[opts.AuthUser] {
			return fmt.Errorf("init: auth user %q is also a tenant role", opts.AuthUser)
		}
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("init: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // no-op after commit

	var super bool
	var me string
	if err := tx.QueryRow(ctx, "SELECT rolname, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&me, &super); err != nil {
		return fmt.Errorf("init: check current user: %w", err)
	}
	if !super {
		return fmt.Errorf("init: must run as a superuser (connected as %q): user_lookup reads pg_authid", me)
	}
	// Keep NOTICEs such as "schema already exists, skipping" off the client.
	if _, err := tx.Exec(ctx, "SET LOCAL client_min_messages = warning"); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// Roles are cluster-wide: two Inits in different databases (parallel
	// tests, several app databases) would race on CREATE ROLE (unique
	// violation) or ALTER ROLE ("tuple concurrently updated"). pg_authid is
	// a shared catalog, so this lock serialises Inits across the cluster.
	// SHARE ROW EXCLUSIVE conflicts with itself and with role DDL, not with
	// the ACCESS SHARE that logins take, so connections are not held up.
	if _, err := tx.Exec(ctx, "LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("init: lock roles: %w", err)
	}
	if _, err := tx.Exec(ctx, SetupSQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("init: setup.sql: %w", err)
	}

	for _, r := range opts.TenantRoles {
		if r == me {
			return fmt.Errorf("init: tenant role %q is the user running init", r)
		}
		if err := ensureTenantRole(ctx, tx, r); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO multigres.tenant_roles(rolname) VALUES ($1) ON CONFLICT DO NOTHING", r); err != nil {
			return fmt.Errorf("init: record tenant role %q: %w", r, err)
		}
		// Belt and braces: a tenant role must never read verifiers.
		if _, err := tx.Exec(ctx, "REVOKE ALL ON FUNCTION multigres.user_lookup(text) FROM "+ident(r)); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}

	if opts.AuthUser != "" {
		if err := ensureAuthUser(ctx, tx, opts.AuthUser, opts.AuthPassword); err != nil {
			return fmt.Errorf("init: %w", err)
		}
	}

	// Tables protected before a tenant role was added get its grants now.
	// Partitions carry the policy too but, like multigres_protect, get no
	// grants: tenants reach them only through the parent.
	if _, err := tx.Exec(ctx, `SELECT multigres.grant_tenant_access(p.polrelid)
		FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
		WHERE p.polname = 'multigres_tenant_isolation' AND NOT c.relispartition`); err != nil {
		return fmt.Errorf("init: re-grant protected tables: %w", err)
	}

	if opts.Harden {
		if _, err := tx.Exec(ctx, "SELECT multigres.apply_hardening()"); err != nil {
			return fmt.Errorf("init: harden: %w", err)
		}
	}
	if err := setContextSigning(ctx, tx, opts); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("init: commit: %w", err)
	}
	return nil
}

// ensureTenantRole creates role as LOGIN with every RLS-escaping attribute
// off, or strips those attributes from an existing role. A superuser is
// refused rather than demoted: it may be a bootstrap or admin role that
// something else depends on, and demoting it silently would be worse than an
// error that names it.
func ensureTenantRole(ctx context.Context, tx pgx.Tx, role string) error {
	const attrs = " NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"
	var super bool
	err := tx.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = $1", role).Scan(&super)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(role)+" LOGIN"+attrs); err != nil {
			return fmt.Errorf("create tenant role %q: %w", role, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("look up tenant role %q: %w", role, err)
	case super:
		return fmt.Errorf("tenant role %q is a superuser and would bypass row level security; use a dedicated role", role)
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(role)+attrs); err != nil {
		return fmt.Errorf("alter tenant role %q: %w", role, err)
	}
	return nil
}

// ensureAuthUser creates the auth_query user if missing (no extra
// attributes), sets its password when given, and grants it what
// user_lookup needs and nothing else. An existing auth user's attributes are
// left alone: it is the operator's role.
func ensureAuthUser(ctx context.Context, tx pgx.Tx, user, password string) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", user).Scan(&exists); err != nil {
		return fmt.Errorf("look up auth user %q: %w", user, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(user)+" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"); err != nil {
			return fmt.Errorf("create auth user %q: %w", user, err)
		}
	}
	if password != "" {
		// Re-setting an unchanged password would only draw a new salt;
		// keep Init free of such churn.
		var current *string
		if err := tx.QueryRow(ctx, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1", user).Scan(&current); err != nil {
			return fmt.Errorf("read auth user %q verifier: %w", user, err)
		}
		if current != nil && isPrintableASCII(password) && scramMatches(*current, password) {
			return grantAuthUser(ctx, tx, user)
		}
		if err := setPassword(ctx, tx, user, password); err != nil {
			return fmt.Errorf("auth user %q: %w", user, err)
		}
	}
	return grantAuthUser(ctx, tx, user)
}

// grantAuthUser gives the auth user what user_lookup needs and nothing else.
func grantAuthUser(ctx context.Context, tx pgx.Tx, user string) error {
	for _, q := range []string{
		"GRANT USAGE ON SCHEMA multigres TO " + ident(user),
		"GRANT EXECUTE ON FUNCTION multigres.user_lookup(text) TO " + ident(user),
		"GRANT EXECUTE ON FUNCTION multigres.context_signing_key() TO " + ident(user),
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("grant to auth user %q: %w", user, err)
		}
	}
	return nil
}

// setPassword sets role's password. For printable-ASCII passwords (where
// SASLprep is the identity) the SCRAM-SHA-256 verifier is computed here and
// only the verifier is sent. Otherwise the server must apply SASLprep, so the
// plaintext is sent as an escaped literal with statement logging switched
// off for the transaction.
func setPassword(ctx context.Context, tx pgx.Tx, role, password string) error {
	var lit string
	if isPrintableASCII(password) {
		v, err := ScramVerifier(password)
		if err != nil {
			return err
		}
		lit = v
	} else {
		if _, err := tx.Exec(ctx, "SET LOCAL log_statement = 'none'; SET LOCAL log_min_duration_statement = -1", pgx.QueryExecModeSimpleProtocol); err != nil {
			return fmt.Errorf("disable statement logging: %w", err)
		}
		lit = password
	}
	esc, err := tx.Conn().PgConn().EscapeString(lit)
	if err != nil {
		return fmt.Errorf("escape password: %w", err)
	}
	if _, err := tx.Exec(ctx, "ALTER ROLE "+ident(role)+" PASSWORD '"+esc+"'", pgx.QueryExecModeSimpleProtocol); err != nil {
		// The error text cannot contain the password: ALTER ROLE errors
		// name the role, not the literal.
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// scramMatches reports whether verifier is a SCRAM-SHA-256 verifier of
// password. Callers pass printable ASCII only, where SASLprep is the
// identity. Parsing and key derivation are internal/auth's.
func scramMatches(verifier, password string) bool {
	sec, err := auth.ParseSecret(verifier)
	if err != nil || sec.Kind != auth.SecretSCRAM {
		return false
	}
	return auth.VerifyPassword(sec, "", password)
}

// ScramVerifier returns the PostgreSQL SCRAM-SHA-256 verifier of password
// ("SCRAM-SHA-256$4096:salt$StoredKey:ServerKey") with a random 16-byte salt
// and 4096 iterations, PostgreSQL's defaults, as internal/auth derives it.
// Passwords are prepared as auth does (see its doc), which matches the
// server exactly for printable ASCII, the only passwords Init hashes here.
func ScramVerifier(password string) (string, error) {
	sec, err := auth.NewSCRAMSecret(password, nil, auth.DefaultIterations)
	if err != nil {
		return "", fmt.Errorf("scram verifier: %w", err)
	}
	return sec.Encode(), nil
}

// Protect runs multigres_protect(table, column): see setup.sql. An empty
// column means tenant_id. The table name is passed as a parameter and
// resolved by the server (to_regclass), so schema-qualified and quoted names
// work and nothing is concatenated into SQL here.
func Protect(ctx context.Context, conn *pgx.Conn, table, column string) error {
	if column == "" {
		column = "tenant_id"
	}
	if _, err := conn.Exec(ctx, "SELECT public.multigres_protect($1::text, $2::text)", table, column); err != nil {
		return fmt.Errorf("protect %s: %w", table, err)
	}
	return nil
}

// Unprotect runs multigres_unprotect(table): drops the policy and disables
// RLS unless other policies remain. Grants stay.
func Unprotect(ctx context.Context, conn *pgx.Conn, table string) error {
	if _, err := conn.Exec(ctx, "SELECT public.multigres_unprotect($1::text)", table); err != nil {
		return fmt.Errorf("unprotect %s: %w", table, err)
	}
	return nil
}

// TableStatus is one row of multigres_status().
type TableStatus struct {
	Schema, Table string
	RLSEnabled    bool
	RLSForced     bool
	// Protected: RLS enabled and forced, and the multigres policy present.
	Protected bool
	// Policies counts the policies on this table only.
	Policies int
	// Citus is how Citus distributes the table: "distributed",
	// "reference", "local", or "" (not in Citus' metadata, or no Citus).
	Citus string
}

// Status returns the RLS state of every table in every non-system schema.
func Status(ctx context.Context, conn *pgx.Conn) ([]TableStatus, error) {
	rows, err := conn.Query(ctx, `SELECT schema_name::text, table_name::text, rls_enabled, rls_forced, protected, policies,
		coalesce(citus, '') FROM public.multigres_status()`)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TableStatus, error) {
		var s TableStatus
		err := r.Scan(&s.Schema, &s.Table, &s.RLSEnabled, &s.RLSForced, &s.Protected, &s.Policies, &s.Citus)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return out, nil
}

// HardeningItem is one row of multigres_hardening_status(): Item is
// "<role>: <check>".
type HardeningItem struct {
	Item   string
	OK     bool
	Detail string
	// Advisory items are not changed by Init because fixing them needs an
	// operator's decision (views that bypass RLS, CONNECT on other
	// databases); a missing advisory item is a warning, not an Init gap.
	Advisory bool
}

// HardeningStatus reports each hardening item for tenantRoles (nil: the
// roles recorded by Init) in the connected database.
func HardeningStatus(ctx context.Context, conn *pgx.Conn, tenantRoles []string) ([]HardeningItem, error) {
	var arg any
	if tenantRoles != nil {
		arg = tenantRoles
	}
	rows, err := conn.Query(ctx, "SELECT item, ok, detail, advisory FROM public.multigres_hardening_status($1::text[])", arg)
	if err != nil {
		return nil, fmt.Errorf("hardening status: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HardeningItem, error) {
		var h HardeningItem
		err := r.Scan(&h.Item, &h.OK, &h.Detail, &h.Advisory)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("hardening status: %w", err)
	}
	return out, nil
}

// ContextReader names the tenant context reader in force in conn's
// database: "unsigned", "native" (signed, the C reader of ext/) or
// "plpgsql" (signed, the portable reader). See setup.sql.
func ContextReader(ctx context.Context, conn *pgx.Conn) (string, error) {
	var form string
	if err := conn.QueryRow(ctx, "SELECT multigres.context_reader()").Scan(&form); err != nil {
		return "", fmt.Errorf("context reader: %w", err)
	}
	return form, nil
}

// setContextSigning creates the signing key (HMAC-SHA256, 32 random bytes,
// with its ipad/opad precomputed for the SQL readers) and switches the
// readers between their signed and unsigned forms.
func setContextSigning(ctx context.Context, tx pgx.Tx, opts Options) error {
	switch {
	case opts.ContextSigning && opts.DisableContextSigning:
		return errors.New("context signing: enable and disable both requested")
	case opts.ContextSigning:
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("context signing key: %w", err)
		}
		ipad, opad := hmacPads(key)
		if _, err := tx.Exec(ctx, `INSERT INTO multigres.context_key (key, ipad, opad, enabled) VALUES ($1, $2, $3, true)
			ON CONFLICT (id) DO UPDATE SET enabled = true`, key, ipad, opad); err != nil {
			return fmt.Errorf("context signing key: %w", err)
		}
		_, err := tx.Exec(ctx, "SELECT multigres.install_context_readers(true)")
		return err
	case opts.DisableContextSigning:
		if _, err := tx.Exec(ctx, "UPDATE multigres.context_key SET enabled = false"); err != nil {
			return fmt.Errorf("disable context signing: %w", err)
		}
		_, err := tx.Exec(ctx, "SELECT multigres.install_context_readers(false)")
		return err
	}
	return nil
}

// hmacPads returns HMAC-SHA256's inner and outer padded keys (block size
// 64) for a key of at most 64 bytes.
func hmacPads(key []byte) (ipad, opad []byte) {
	ipad, opad = make([]byte, 64), make([]byte, 64)
	copy(ipad, key)
	copy(opad, key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	return ipad, opad
}

// ContextMACName is the setting that carries the MAC of context variable
// name; ContextMAC computes the MAC the signed readers verify.
func ContextMACName(variable string) string {
	sum := md5.Sum([]byte(strings.ToLower(variable)))
	return "multigres_mac.v" + hex.EncodeToString(sum[:])
}

// ContextMAC is hex(HMAC-SHA256(key, lower(var) | pid | value)).
func ContextMAC(key []byte, variable string, pid uint32, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.ToLower(variable) + "|" + strconv.FormatUint(uint64(pid), 10) + "|" + value))
	return hex.EncodeToString(m.Sum(nil))
}
