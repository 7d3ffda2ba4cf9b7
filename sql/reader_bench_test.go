package sql

import (
	"context"
	"testing"
	"time"
)

// BenchmarkReaders compares the unsigned and signed current_tenant_id()
// (primed, as the proxy leaves it, and unprimed, the full check), as a
// policy would call it once per statement:
// go test ./sql -run '^$' -bench Readers
func BenchmarkReaders(b *testing.B) {
	for _, name := range []string{"unsigned", "signed", "signed-unprimed"} {
		signed := name != "unsigned"
		b.Run(name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			d := newSigningDB(b, ctx, "bench", signed)
			conn, pid := d.connect(b, ctx)
			key := d.key
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
