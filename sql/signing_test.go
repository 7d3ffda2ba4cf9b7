package sql

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// TestContextSigning: with signing on, the readers return a value only
// when the MAC the proxy would set verifies for this backend; a value set
// by any other path reads as NULL (zero rows), and turning signing off
// restores the plain readers.
func TestContextSigning(t *testing.T) {
	t.Parallel()
	for _, reader := range []string{"native", "plpgsql"} {
		t.Run(reader, func(t *testing.T) {
			t.Parallel()
			testContextSigning(t, reader)
		})
	}
}

func testContextSigning(t *testing.T, reader string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newSigningDB(t, ctx, "sign", true)
	d.useReader(t, ctx, reader)
	admin, role, key := d.admin, d.role, d.key
	if len(key) != 32 {
		t.Fatalf("key %x", key)
	}
	// Init again keeps the key and the signed mode (and installs the
	// native reader when it can).
	if err := Init(ctx, admin, Options{TenantRoles: []string{role}, NoAuthUser: true}); err != nil {
		t.Fatal(err)
	}
	d.useReader(t, ctx, reader)
	var again []byte
	if err := admin.QueryRow(ctx, "SELECT multigres.context_signing_key()").Scan(&again); err != nil || string(again) != string(key) {
		t.Fatalf("key changed on re-init: %v", err)
	}
	tenant, pid := d.connect(t, ctx)
	read := func() *string {
		t.Helper()
		var v *string
		if err := tenant.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	set := func(value, mac string) {
		t.Helper()
		if _, err := tenant.Exec(ctx, "SELECT set_config('app.current_tenant_id', $1, false), set_config($2, $3, false)",
			value, ContextMACName("app.current_tenant_id"), mac); err != nil {
			t.Fatal(err)
		}
	}
	set("acme", ContextMAC(key, "app.current_tenant_id", pid, "acme"))
	if v := read(); v == nil || *v != "acme" {
		t.Fatalf("signed value reads as %v", v)
	}
	// Unsigned change (what an escape past the guard would do): NULL.
	if _, err := tenant.Exec(ctx, "SELECT set_config('app.current_tenant_id', 'globex', false)"); err != nil {
		t.Fatal(err)
	}
	if v := read(); v != nil {
		t.Fatalf("unsigned value reads as %q", *v)
	}
	// A MAC for another backend pid, or made with another key: NULL.
	set("globex", ContextMAC(key, "app.current_tenant_id", pid+1, "globex"))
	if v := read(); v != nil {
		t.Fatalf("MAC of another pid accepted: %q", *v)
	}
	set("globex", ContextMAC([]byte("wrong key"), "app.current_tenant_id", pid, "globex"))
	if v := read(); v != nil {
		t.Fatalf("MAC with another key accepted: %q", *v)
	}
	// The tenant role cannot read the key.
	if _, err := tenant.Exec(ctx, "SELECT multigres.context_signing_key()"); err == nil {
		t.Fatal("tenant role read the signing key")
	}
	if _, err := tenant.Exec(ctx, "SELECT key FROM multigres.context_key"); err == nil {
		t.Fatal("tenant role read the key table")
	}
	// Off again: plain readers.
	if err := Init(ctx, admin, Options{TenantRoles: []string{role}, NoAuthUser: true, DisableContextSigning: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := tenant.Exec(ctx, "SELECT set_config('app.current_tenant_id', 'plain', false)"); err != nil {
		t.Fatal(err)
	}
	if v := read(); v == nil || *v != "plain" {
		t.Fatalf("plain reader returns %v", v)
	}
}

// TestContextSigningFingerprint: multigres.context_prime verifies the MAC
// once and leaves a fingerprint that the signed reader checks without the
// key. The fingerprint binds the value, cannot be forged or reused by
// the tenant, and the reader (no SET search_path) picks up
// schema-qualified objects only.
func TestContextSigningFingerprint(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newSigningDB(t, ctx, "fp", true)
	d.useReader(t, ctx, "plpgsql")
	admin, role := d.admin, d.role
	exec := func(c *pgx.Conn, q string, args ...any) {
		t.Helper()
		execSimple(t, ctx, c, q, args...)
	}
	exec(admin, "CREATE SCHEMA evil")
	exec(admin, "GRANT USAGE, CREATE ON SCHEMA evil TO "+ident(role))
	tenant, pid := d.connect(t, ctx)
	const v = "app.current_tenant_id"
	read := func(c *pgx.Conn) *string {
		t.Helper()
		var got *string
		if err := c.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	fingerprint := func() string {
		t.Helper()
		var fp *string
		if err := tenant.QueryRow(ctx, "SELECT current_setting('multigres_fp.app.current_tenant_id', true)").Scan(&fp); err != nil {
			t.Fatal(err)
		}
		if fp == nil {
			return ""
		}
		return *fp
	}
	switchTo := func(c *pgx.Conn, pid uint32, value string) {
		t.Helper()
		d.switchTo(t, ctx, c, pid, v, value)
	}

	switchTo(tenant, pid, "acme")
	fpAcme := fingerprint()
	if len(fpAcme) != 32 {
		t.Fatalf("no fingerprint after prime: %q", fpAcme)
	}
	// The seed lives only in this session's currval(): the sequences
	// themselves are back at 1, not called.
	for _, seq := range []string{"multigres.context_seed_a", "multigres.context_seed_b"} {
		var last int64
		var called bool
		if err := admin.QueryRow(ctx, "SELECT last_value, is_called FROM "+seq).Scan(&last, &called); err != nil || last != 1 || called {
			t.Fatalf("%s stores %d (is_called %v, %v): the seed leaked into the sequence", seq, last, called, err)
		}
	}
	// Priming a name that was never signed creates no setting, so calls
	// with arbitrary names cannot pile up placeholders.
	exec(tenant, "SELECT multigres.context_prime('x.never_signed')")
	var placeholder *string
	if err := tenant.QueryRow(ctx, "SELECT current_setting('multigres_fp.x.never_signed', true)").Scan(&placeholder); err != nil || placeholder != nil {
		t.Fatalf("prime of an unsigned name created multigres_fp.x.never_signed = %v (%v)", placeholder, err)
	}
	// With the key disabled the full check fails, so only the fingerprint
	// can make the reader return the value: the fast path is taken.
	exec(admin, "UPDATE multigres.context_key SET enabled = false")
	got := read(tenant)
	exec(admin, "UPDATE multigres.context_key SET enabled = true")
	if got == nil || *got != "acme" {
		t.Fatalf("primed value reads as %v with the key disabled", got)
	}

	// A value changed past the guard does not match the fingerprint.
	exec(tenant, "SELECT set_config($1, 'globex', false)", v)
	if got := read(tenant); got != nil {
		t.Fatalf("unsigned value with a primed fingerprint reads as %q", *got)
	}
	// Priming an unsigned value clears the fingerprint.
	exec(tenant, "SELECT multigres.context_prime($1)", v)
	if fp := fingerprint(); fp != "" {
		t.Fatalf("prime of an unsigned value left the fingerprint %q", fp)
	}
	// Forged fingerprints: a guessed all-zero seed, and a fingerprint the
	// tenant saw for another value.
	exec(tenant, `SELECT set_config('multigres_fp.app.current_tenant_id',
		md5('0:0|app.current_tenant_id|globex'), false)`)
	if got := read(tenant); got != nil {
		t.Fatalf("forged fingerprint accepted: %q", *got)
	}
	exec(tenant, "SELECT set_config('multigres_fp.app.current_tenant_id', $1, false)", fpAcme)
	if got := read(tenant); got != nil {
		t.Fatalf("fingerprint of acme accepted for globex: %q", *got)
	}
	// The seed is out of the tenant's reach.
	for _, q := range []string{"SELECT currval('multigres.context_seed_a')", "SELECT last_value FROM multigres.context_seed_b",
		"SELECT setval('multigres.context_seed_a', 1)", "SELECT nextval('multigres.context_seed_b')",
		"SELECT pg_sequence_last_value('multigres.context_seed_a')", "SELECT multigres.context_verify('app.current_tenant_id', 'acme')"} {
		if _, err := tenant.Exec(ctx, q); err == nil {
			t.Fatalf("tenant ran %s", q)
		}
	}
	// Objects in a schema on the tenant's search_path are never used by
	// the reader: an "=" that is always true, a current_setting and an
	// md5 that return what the reader compares with change nothing.
	switchTo(tenant, pid, "acme")
	exec(tenant, "SELECT set_config($1, 'globex', false)", v)
	exec(tenant, "CREATE FUNCTION evil.eq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
	exec(tenant, "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.eq)")
	exec(tenant, "CREATE FUNCTION evil.md5(text) RETURNS text LANGUAGE sql AS $$SELECT pg_catalog.current_setting('multigres_fp.app.current_tenant_id')$$")
	exec(tenant, "CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS $$SELECT 'x'$$")
	exec(tenant, "SET search_path = evil, pg_catalog, public")
	if got := read(tenant); got != nil {
		t.Fatalf("hostile search_path made the reader return %q", *got)
	}
	exec(tenant, "RESET search_path")

	// Read-only transactions on a fresh backend: prime cannot set the
	// seed and must not fail; the reader then verifies in full.
	ro, roPID := d.connect(t, ctx)
	exec(ro, "SET default_transaction_read_only = on")
	switchTo(ro, roPID, "acme")
	var fp *string
	if err := ro.QueryRow(ctx, "SELECT current_setting('multigres_fp.app.current_tenant_id', true)").Scan(&fp); err != nil || (fp != nil && *fp != "") {
		t.Fatalf("read-only prime left a fingerprint %v (%v)", fp, err)
	}
	if got := read(ro); got == nil || *got != "acme" {
		t.Fatalf("read-only: %v", got)
	}
}

// signingDB is a fresh database set up by Init for a new tenant role
// (password "pw"), with context signing on or off.
type signingDB struct {
	s        *pgtest.Server
	db, role string
	admin    *pgx.Conn
	key      []byte // the signing key; nil with signing off
}

func newSigningDB(tb testing.TB, ctx context.Context, rolePrefix string, signed bool) *signingDB {
	tb.Helper()
	s := pgtest.Shared()
	d := &signingDB{s: s, db: s.CreateDB(tb), role: uniqueRole(rolePrefix)}
	d.admin = s.Connect(tb, d.db)
	if err := Init(ctx, d.admin, Options{TenantRoles: []string{d.role}, NoAuthUser: true, ContextSigning: signed}); err != nil {
		tb.Fatal(err)
	}
	if signed {
		if err := d.admin.QueryRow(ctx, "SELECT multigres.context_signing_key()").Scan(&d.key); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := d.admin.Exec(ctx, "ALTER ROLE "+ident(d.role)+" PASSWORD 'pw'"); err != nil {
		tb.Fatal(err)
	}
	return d
}

// useReader installs the signed reader named ("native" or "plpgsql") and
// checks that it is the one in force. Without the native library
// (scripts/build-native.sh, which make test runs) "native" skips the test.
func (d *signingDB) useReader(tb testing.TB, ctx context.Context, reader string) {
	tb.Helper()
	if reader == "native" && pgtest.NativeLibrary() == "" {
		tb.Skip("native context reader not built: run scripts/build-native.sh (make test does)")
	}
	var got string
	if err := d.admin.QueryRow(ctx, "SELECT multigres.install_context_readers(true, $1)", reader == "native").Scan(&got); err != nil {
		tb.Fatal(err)
	}
	if form, err := ContextReader(ctx, d.admin); err != nil || got != reader || form != reader {
		tb.Fatalf("installed reader %q, in force %q (%v), want %q", got, form, err, reader)
	}
}

// setAndPrime is what the proxy sends to set a signed context variable:
// the value ($2), its MAC ($4 in the setting named $3) and the prime, in
// one statement.
const setAndPrime = "SELECT set_config($1, $2, false), set_config($3, $4, false), multigres.context_prime($1)"

// switchTo sets name to value on c, a tenant connection with backend pid,
// as the proxy does: with the MAC for that pid, then primed.
func (d *signingDB) switchTo(tb testing.TB, ctx context.Context, c *pgx.Conn, pid uint32, name, value string) {
	tb.Helper()
	execSimple(tb, ctx, c, setAndPrime, name, value, ContextMACName(name), ContextMAC(d.key, name, pid, value))
}

// execSimple runs q on c over the simple protocol, so that a DISCARD ALL
// (which drops pgx's prepared statements) does not break later calls.
func execSimple(tb testing.TB, ctx context.Context, c *pgx.Conn, q string, args ...any) {
	tb.Helper()
	if _, err := c.Exec(ctx, q, append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// connect opens a tenant connection (closed at cleanup) and returns it
// with its backend pid.
func (d *signingDB) connect(tb testing.TB, ctx context.Context) (*pgx.Conn, uint32) {
	tb.Helper()
	c, err := pgx.Connect(ctx, d.s.URL(d.role, "pw", d.db))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	var pid uint32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		tb.Fatal(err)
	}
	return c, pid
}
