package admin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/metrics"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// startHTTP starts a proxy with metrics and the admin HTTP server on a
// fresh database.
func startHTTP(t *testing.T, mutate func(*config.Config)) (*proxytest.Proxy, string) {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	return proxytest.StartProxyMetrics(t, pg, mutate), db
}

// get fetches url and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// TestHealthAndReady: /healthz is 200 "ok"; /readyz is 200 with the
// upstream up and 503 when nothing listens on upstream_port.
func TestHealthAndReady(t *testing.T) {
	t.Parallel()
	p, _ := startHTTP(t, nil)
	if status, body := get(t, p.AdminURL+"/healthz"); status != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", status, body)
	}
	if status, body := get(t, p.AdminURL+"/readyz"); status != http.StatusOK {
		t.Errorf("/readyz with the upstream up = %d %q, want 200", status, body)
	}
	if status, _ := get(t, p.AdminURL+"/nope"); status != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", status)
	}

	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	bad := proxytest.StartProxyMetrics(t, pgtest.Shared(), func(c *config.Config) { c.UpstreamPort = port })
	start := time.Now()
	if status, body := get(t, bad.AdminURL+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with no upstream = %d %q, want 503", status, body)
	}
	if d := time.Since(start); d > admin.ReadyTimeout+time.Second {
		t.Errorf("/readyz took %v, want at most about %v", d, admin.ReadyTimeout)
	}
	if status, _ := get(t, bad.AdminURL+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz with no upstream = %d, want 200 (the process is alive)", status)
	}
}

// TestReadyTimesOut: an upstream that accepts but never answers fails the
// probe within its deadline.
func TestReadyTimesOut(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := admin.ProbeUpstream(ctx, l.Addr().String()); err == nil {
		t.Fatal("probe of a silent server succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("probe took %v with a 300ms deadline", d)
	}
}

// TestAdminShutdown: after Shutdown the admin port no longer answers.
func TestAdminShutdown(t *testing.T) {
	t.Parallel()
	m := metrics.New(10)
	pg := pgtest.Shared()
	p := proxytest.StartProxy(t, pg, nil)
	a, err := admin.StartHTTP("127.0.0.1:0", m.Registry, p.Server, p.Server.Logger)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + a.Addr() + "/healthz"
	if status, _ := get(t, url); status != http.StatusOK {
		t.Fatalf("/healthz = %d", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	if resp, err := client.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("admin server still answers after Shutdown")
	}
}

// TestReadyzWhileDraining: once Shutdown begins, /readyz says 503 although
// the upstream is fine, so load balancers stop sending new clients.
func TestReadyzWhileDraining(t *testing.T) {
	t.Parallel()
	p, db := startHTTP(t, nil)
	ctx := ctxT(t)
	if status, _ := get(t, p.AdminURL+"/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz before shutdown = %d", status)
	}
	conn := tenant(t, ctx, p, db, "app_user.acme")
	drained := make(chan error, 1)
	go func() { drained <- p.Server.Shutdown(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, body := get(t, p.AdminURL+"/readyz")
		if status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the drain = %d %q, want 503", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status, _ := get(t, p.AdminURL+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz during the drain = %d, want 200", status)
	}
	conn.Close(ctx)
	if err := <-drained; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
