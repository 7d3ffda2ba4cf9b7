// Package citus tests multigres in front of a Citus coordinator with two
// workers (citus_databases): tenant isolation on distributed and reference
// tables in both pool modes and both protocols, the client-visible
// protocol of the per-transaction block, the seed's two-variable example,
// and the escape attack set. Without Citus installed every test skips,
// saying how to install it.
package citus

import (
	"context"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.MainCitus(m) }

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
