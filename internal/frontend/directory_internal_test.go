package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/route"
)

// slowDirectory is a tenant directory on the shared test server whose
// query takes a few seconds (pg_sleep) and finds no row; every query is
// counted in *queries. stop ends the server's context, as Shutdown does.
func slowDirectory(t *testing.T) (*tenantDirectory, *atomic.Int64, context.CancelFunc) {
	t.Helper()
	pg := pgtest.Shared()
	cfg := config.Default()
	cfg.UpstreamHost, cfg.UpstreamPort = pg.Host, pg.Port
	cfg.AuthUser, cfg.AuthPassword = pg.User, pg.Password
	cfg.TenantDirectoryQuery = "SELECT NULL::text FROM pg_sleep(3) WHERE $1 <> ''"
	cfg.TenantDirectoryDatabase = "postgres"
	cfg.ServerTLSMode = "disable"
	clusters, err := newClusters(cfg)
	if err != nil {
		t.Fatal(err)
	}
	table, err := cfg.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	base, stop := context.WithCancel(context.Background())
	d, err := newTenantDirectory(base, cfg, clusters, route.NewRouter(table), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var queries atomic.Int64
	d.observe = func(string) { queries.Add(1) }
	t.Cleanup(func() {
		stop()
		d.close()
	})
	return d, &queries, stop
}

// inflight is the number of tenants being looked up.
func (d *tenantDirectory) inflightLen() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inflight)
}

// TestDirectoryLookupsBounded: a flood of tenants without cached answers
// (logins before authentication) holds at most dirMaxInflight lookups;
// the next tenant is refused at once, while a tenant already being looked
// up is shared, not refused, and connected clients wait rather than being
// refused. Lookups end with the server's context.
func TestDirectoryLookupsBounded(t *testing.T) {
	t.Parallel()
	d, queries, stop := slowDirectory(t)
	// Callers that give up at once (a login that hung up): the lookups
	// they started go on.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range dirMaxInflight {
		_, err := d.lookup(gone, fmt.Sprintf("invented-%d", i), true)
		if !errors.Is(err, errDirectory) || !errors.Is(err, context.Canceled) {
			t.Fatalf("lookup %d of a slow directory: %v, want the caller's cancellation", i, err)
		}
	}
	if n := d.inflightLen(); n != dirMaxInflight {
		t.Fatalf("%d lookups in flight, want %d", n, dirMaxInflight)
	}
	start := time.Now()
	_, err := d.lookup(context.Background(), "one-more", true)
	if !errors.Is(err, errDirectory) || !strings.Contains(err.Error(), "in flight") {
		t.Errorf("a tenant past the bound: %v, want refused as too many in flight", err)
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("the refusal took %v, want at once", waited)
	}
	// A connected client (or the console) is not refused for want of a
	// slot: it waits for its answer, here until its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = d.lookup(ctx, "connected", false)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a connected client's lookup past the bound: %v, want to wait (the caller's deadline)", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = d.lookup(ctx, "invented-7", true)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a tenant already being looked up: %v, want to wait for that lookup (the caller's deadline)", err)
	}
	// The lookups run on the directory's four connections; none has
	// finished yet, so no more than those were sent.
	if n := queries.Load(); n > dirPoolConns {
		t.Errorf("%d queries finished within the first moments, want at most %d", n, dirPoolConns)
	}
	stop()
	deadline := time.Now().Add(10 * time.Second)
	for d.inflightLen() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d lookups still in flight 10 s after the server's context ended", d.inflightLen())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
