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
	s := pgtest.Shared()
	db := s.CreateDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	role := uniqueRole("sign")
	admin := s.Connect(t, db)
	if err := Init(ctx, admin, Options{TenantRoles: []string{role}, NoAuthUser: true, ContextSigning: true}); err != nil {
		t.Fatal(err)
	}
	var key []byte
	if err := admin.QueryRow(ctx, "SELECT multigres.context_signing_key()").Scan(&key); err != nil || len(key) != 32 {
		t.Fatalf("key %x: %v", key, err)
	}
	// Init again keeps the key and the signed mode.
	if err := Init(ctx, admin, Options{TenantRoles: []string{role}, NoAuthUser: true}); err != nil {
		t.Fatal(err)
	}
	var again []byte
	if err := admin.QueryRow(ctx, "SELECT multigres.context_signing_key()").Scan(&again); err != nil || string(again) != string(key) {
		t.Fatalf("key changed on re-init: %v", err)
	}
	if _, err := admin.Exec(ctx, "ALTER ROLE "+ident(role)+" PASSWORD 'pw'"); err != nil {
		t.Fatal(err)
	}
	tenant, err := pgx.Connect(ctx, s.URL(role, "pw", db))
	if err != nil {
		t.Fatal(err)
	}
	defer tenant.Close(context.Background())
	var pid uint32
	if err := tenant.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
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
