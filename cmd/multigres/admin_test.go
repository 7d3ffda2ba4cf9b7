package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestAdminListen runs the real binary with admin_listen: /healthz,
// /readyz and /metrics answer, metrics move with a session, and SIGTERM
// closes the admin port too.
func TestAdminListen(t *testing.T) {
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	bin := buildBinary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminPort, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeConf(t, conf, fmt.Sprintf("port = %d", port), fmt.Sprintf("upstream_port = %d", pg.Port),
		"server_tls_mode = disable", "auth_password = "+proxytest.AuthPassword, "shutdown_timeout = 2s",
		fmt.Sprintf("admin_listen = 127.0.0.1:%d", adminPort))
	p := startProc(t, bin, conf)
	cmd, stderr, exited := p.cmd, p.stderr, p.exited

	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := client.Get(admin + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	waitFor(t, 15*time.Second, "/healthz", func() bool {
		status, _, err := get("/healthz")
		return err == nil && status == http.StatusOK
	})
	if status, body, err := get("/readyz"); err != nil || status != http.StatusOK {
		t.Fatalf("/readyz = %d %q %v\n%s", status, body, err, stderr.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, proxytest.URL(fmt.Sprintf("127.0.0.1:%d", port), "app_user.acme", proxytest.AppUserPassword, db))
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.String())
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "tenant acme in /metrics", func() bool {
		_, body, err := get("/metrics")
		return err == nil && strings.Contains(body, `multigres_tenant_connections_total{tenant="acme"} 1`) &&
			strings.Contains(body, `multigres_client_connections{state="idle"} 1`)
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx) // lets the drain finish at once
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", adminPort), time.Second); err == nil {
		c.Close()
		t.Fatal("admin port still open after exit")
	}
}
