// Package escape is the attack suite: SQL a tenant can send, over the
// simple and the extended protocol, trying to leave its tenant. Every
// attempt runs in a fresh tenant connection and must leave the tenant
// seeing only its own rows, unable to write another tenant's rows, and
// with current_user unchanged.
package escape

import (
	"context"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
