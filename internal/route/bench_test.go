package route

import (
	"fmt"
	"testing"
)

// BenchmarkTenantExact: a login's route among 10,000 exact items and a
// few patterns listed after them (what a tenant directory of that size
// costs per login).
func BenchmarkTenantExact(b *testing.B) {
	items := make([]string, 0, 10004)
	for i := range 10000 {
		items = append(items, fmt.Sprintf("tenant%05d:c%d", i, i%3))
	}
	items = append(items, "big-*:c1", "eu-*:c2", "us-*:c0", "list*:c1")
	tab, err := NewTable(items, nil, "c0", nil)
	if err != nil {
		b.Fatal(err)
	}
	r := NewRouter(tab)
	r.SetOverride("tenant00001", "c2")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := r.Tenant("tenant07777", "app", DirAnswer{}); !ok {
			b.Fatal("no route")
		}
	}
}

// BenchmarkTenantPattern: a login placed by the fourth pattern item.
func BenchmarkTenantPattern(b *testing.B) {
	tab, _ := NewTable([]string{"big-*:c1", "eu-*:c2", "us-*:c0", "list*:c1"}, nil, "c0", nil)
	r := NewRouter(tab)
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := r.Tenant("list123", "app", DirAnswer{}); d.Cluster != "c1" {
			b.Fatal(d)
		}
	}
}

// BenchmarkEpoch: what a transaction-mode client pays per transaction
// while the routing does not change.
func BenchmarkEpoch(b *testing.B) {
	r := NewRouter(&Table{})
	seen := r.Epoch()
	b.ReportAllocs()
	for b.Loop() {
		if r.Epoch() != seen {
			b.Fatal("epoch moved")
		}
	}
}
