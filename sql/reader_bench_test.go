package sql

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// BenchmarkReaders compares the unsigned and signed current_tenant_id()
// (primed, as the proxy leaves it, and unprimed, the full check), as a
// policy would call it once per statement:
// go test ./sql -run '^$' -bench Readers
func BenchmarkReaders(b *testing.B) {
	for _, name := range []string{"unsigned", "signed", "signed-unprimed"} {
		signed := name != "unsigned"
		b.Run(name, func(b *testing.B) {
			s := pgtest.Shared()
			db := s.CreateDB(b)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			role := uniqueRole("bench")
			admin := s.Connect(b, db)
			if err := Init(ctx, admin, Options{TenantRoles: []string{role}, NoAuthUser: true, ContextSigning: signed}); err != nil {
				b.Fatal(err)
			}
			var key []byte
			_ = admin.QueryRow(ctx, "SELECT multigres.context_signing_key()").Scan(&key)
			if _, err := admin.Exec(ctx, "ALTER ROLE "+ident(role)+" PASSWORD 'pw'"); err != nil {
				b.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, s.URL(role, "pw", db))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(context.Background())
			var pid uint32
			_ = conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
			if _, err := conn.Exec(ctx, "SELECT set_config('app.current_tenant_id', 'acme', false), set_config($1, $2, false)",
				ContextMACName("app.current_tenant_id"), ContextMAC(key, "app.current_tenant_id", pid, "acme")); err != nil {
				b.Fatal(err)
			}
			if name == "signed" {
				if _, err := conn.Exec(ctx, "SELECT multigres.context_prime('app.current_tenant_id')"); err != nil {
					b.Fatal(err)
				}
			}
			var v string
			b.ResetTimer()
			for b.Loop() {
				if err := conn.QueryRow(ctx, "SELECT current_tenant_id()").Scan(&v); err != nil || v != "acme" {
					b.Fatalf("%q %v", v, err)
				}
			}
		})
	}
}
