package sql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestNativeContextReader: the C reader (ext/multigres_context.c) returns
// the setting only while it is exactly the value context_prime verified in
// this backend, otherwise what the full MAC check says. A prime whose MAC
// fails forgets the previous tenant's value, tenants cannot record values
// themselves, and variables beyond the remembered sixteen still read
// correctly through the full check.
func TestNativeContextReader(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newSigningDB(t, ctx, "native", true)
	d.useReader(t, ctx, "native")
	admin, key := d.admin, d.key
	exec := func(c *pgx.Conn, q string, args ...any) {
		t.Helper()
		execSimple(t, ctx, c, q, args...)
	}
	var lang, secdef, parallel string
	if err := admin.QueryRow(ctx, `SELECT l.lanname, p.prosecdef::text, p.proparallel::text FROM pg_proc p
		JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = 'public.multigres_context(text)'::regprocedure`).Scan(&lang, &secdef, &parallel); err != nil ||
		lang != "c" || secdef != "true" || parallel != "r" {
		t.Fatalf("multigres_context: language %s, security definer %s, parallel %s (%v); want c, true, r", lang, secdef, parallel, err)
	}
	tenant, pid := d.connect(t, ctx)
	const v = "app.current_tenant_id"
	read := func(c *pgx.Conn, name string) *string {
		t.Helper()
		var got *string
		if err := c.QueryRow(ctx, "SELECT multigres_context($1)", pgx.QueryExecModeSimpleProtocol, name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	switchTo := func(c *pgx.Conn, pid uint32, name, value string) {
		t.Helper()
		d.switchTo(t, ctx, c, pid, name, value)
	}
	withKeyDisabled := func(f func()) {
		t.Helper()
		exec(admin, "UPDATE multigres.context_key SET enabled = false")
		defer exec(admin, "UPDATE multigres.context_key SET enabled = true")
		f()
	}

	// Primed: the value reads back with the key disabled, so without the
	// full check. No fingerprint is left: the native reader needs none.
	switchTo(tenant, pid, v, "acme")
	withKeyDisabled(func() {
		if got := read(tenant, v); got == nil || *got != "acme" {
			t.Fatalf("primed value reads as %v with the key disabled", got)
		}
		if got := read(tenant, "APP.Current_Tenant_ID"); got == nil || *got != "acme" {
			t.Fatalf("setting names are case-insensitive; another spelling reads %v", got)
		}
	})
	var fp *string
	if err := tenant.QueryRow(ctx, "SELECT current_setting('multigres_fp.app.current_tenant_id', true)").Scan(&fp); err != nil || (fp != nil && *fp != "") {
		t.Fatalf("native prime left a fingerprint %v (%v)", fp, err)
	}
	// Changed past the guard: no match, and the full check fails.
	exec(tenant, "SELECT set_config($1, 'globex', false)", v)
	if got := read(tenant, v); got != nil {
		t.Fatalf("unsigned value reads as %q", *got)
	}
	// Back to its own value: that is still its own tenant.
	exec(tenant, "SELECT set_config($1, 'acme', false)", v)
	if got := read(tenant, v); got == nil || *got != "acme" {
		t.Fatalf("own value reads as %v", got)
	}
	// Tenants cannot call context_remember; and granted it by mistake, it
	// still keeps only values whose MAC verifies.
	if _, err := tenant.Exec(ctx, "SELECT multigres.context_remember($1)", v); err == nil {
		t.Fatal("tenant called multigres.context_remember")
	}
	exec(admin, "GRANT EXECUTE ON FUNCTION multigres.context_remember(text) TO "+ident(d.role))
	exec(tenant, "SELECT set_config($1, 'globex', false), multigres.context_remember($1)", v)
	withKeyDisabled(func() {
		if got := read(tenant, v); got != nil {
			t.Fatalf("context_remember kept an unsigned value: %q", *got)
		}
	})
	exec(admin, "REVOKE EXECUTE ON FUNCTION multigres.context_remember(text) FROM "+ident(d.role))
	switchTo(tenant, pid, v, "acme")
	// The MAC is part of the match: a switch that rolls back leaves the
	// settings on acme while globex is kept; acme then reads through the
	// full check, and globex set by hand (acme's MAC still in place) does
	// not match what was kept.
	exec(tenant, "BEGIN")
	switchTo(tenant, pid, v, "globex")
	exec(tenant, "ROLLBACK")
	if got := read(tenant, v); got == nil || *got != "acme" {
		t.Fatalf("after a rolled-back switch the restored value reads as %v", got)
	}
	exec(tenant, "SELECT set_config($1, 'globex', false)", v)
	withKeyDisabled(func() {
		if got := read(tenant, v); got != nil {
			t.Fatalf("kept value matched with another tenant's MAC in place: %q", *got)
		}
	})
	exec(tenant, "SELECT set_config($1, 'acme', false)", v)
	// A pooled connection's next tenant, whose MAC fails: the prime
	// forgets acme, so acme set afterwards (with a garbage MAC) is NULL.
	exec(tenant, setAndPrime, v, "globex", ContextMACName(v), "garbage")
	exec(tenant, "SELECT set_config($1, 'acme', false)", v)
	withKeyDisabled(func() {
		if got := read(tenant, v); got != nil {
			t.Fatalf("previous tenant's value still reads after a failed prime: %q", *got)
		}
	})
	// A verified switch replaces the value: the previous one is gone.
	switchTo(tenant, pid, v, "globex")
	if got := read(tenant, v); got == nil || *got != "globex" {
		t.Fatalf("switched value reads as %v", got)
	}
	exec(tenant, "SELECT set_config($1, 'acme', false)", v)
	if got := read(tenant, v); got != nil {
		t.Fatalf("previous tenant's value reads after a switch: %q", *got)
	}
	// DISCARD ALL resets the settings: NULL, and the connection works.
	switchTo(tenant, pid, v, "acme")
	exec(tenant, "DISCARD ALL")
	if got := read(tenant, v); got != nil {
		t.Fatalf("after DISCARD ALL: %q", *got)
	}
	var null *string
	if err := tenant.QueryRow(ctx, "SELECT multigres_context(NULL)", pgx.QueryExecModeSimpleProtocol).Scan(&null); err != nil || null != nil {
		t.Fatalf("multigres_context(NULL) = %v, %v", null, err)
	}

	// A connection that was never primed, with a valid MAC: full check.
	fresh, freshPID := d.connect(t, ctx)
	exec(fresh, "SELECT set_config($1, 'acme', false), set_config($2, $3, false)", v, ContextMACName(v), ContextMAC(key, v, freshPID, "acme"))
	if got := read(fresh, v); got == nil || *got != "acme" {
		t.Fatalf("unprimed, MAC-signed value reads as %v", got)
	}
	withKeyDisabled(func() {
		if got := read(fresh, v); got != nil {
			t.Fatalf("unprimed value read without the key: %q", *got)
		}
	})

	// Twenty variables: sixteen are remembered, the rest take the full
	// check, and all read their own values.
	many, manyPID := d.connect(t, ctx)
	for i := range 20 {
		switchTo(many, manyPID, fmt.Sprintf("app.v%d", i), fmt.Sprintf("val%d", i))
	}
	for i := range 20 {
		name, want := fmt.Sprintf("app.v%d", i), fmt.Sprintf("val%d", i)
		if got := read(many, name); got == nil || *got != want {
			t.Fatalf("%s reads as %v, want %s", name, got, want)
		}
	}
	remembered := 0
	withKeyDisabled(func() {
		for i := range 20 {
			if got := read(many, fmt.Sprintf("app.v%d", i)); got != nil {
				remembered++
			}
		}
	})
	if remembered != 16 {
		t.Fatalf("%d of 20 variables read without the key, want 16", remembered)
	}
}

// TestNativeReaderMissingVerify: with the native reader installed but
// multigres.context_verify gone (a damaged or partial setup), a statement
// that needs the full check fails with 42883 and a hint to run multigres
// init, never reads a value.
func TestNativeReaderMissingVerify(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d := newSigningDB(t, ctx, "nover", true)
	d.useReader(t, ctx, "native")
	execSimple(t, ctx, d.admin, "DROP FUNCTION multigres.context_verify(text, text)")
	tenant, _ := d.connect(t, ctx)
	execSimple(t, ctx, tenant, "SELECT set_config('app.current_tenant_id', 'acme', false)")
	var got *string
	err := tenant.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&got)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42883" || !strings.Contains(pgErr.Message, "multigres.context_verify") ||
		!strings.Contains(pgErr.Hint, "run multigres init") {
		t.Fatalf("current_tenant_id() = %v, %v (%+v); want 42883 naming multigres.context_verify with a hint to run multigres init", got, err, pgErr)
	}
}
