package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// syncBuffer collects a child's output while the test reads it.
type syncBuffer = proxytest.SyncBuffer

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "multigres")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// proc is a multigres process started by a test; it is killed at cleanup.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan error
}

func startProc(t *testing.T, bin, conf string) *proc {
	t.Helper()
	p := &proc{stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, "--config", conf)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

// waitListening waits until addr accepts TCP connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 15*time.Second, "the proxy to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func writeConf(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestSignals runs the real binary: SIGHUP applies a reloadable key to new
// connections without dropping open ones and names the keys that need a
// restart; SIGTERM shuts down within shutdown_timeout and exits 0.
func TestSignals(t *testing.T) {
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	bin := buildBinary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	base := []string{
		"# test config", fmt.Sprintf("port = %d", port), fmt.Sprintf("upstream_port = %d", pg.Port),
		"server_tls_mode = disable", "auth_password = " + proxytest.AuthPassword, "shutdown_timeout = 2s",
	}
	writeConf(t, conf, base...)
	p := startProc(t, bin, conf)
	cmd, stderr, exited := p.cmd, p.stderr, p.exited
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := func(user string) string { return proxytest.URL(addr, user, proxytest.AppUserPassword, db) }
	open, err := pgx.Connect(ctx, url("app_user.acme"))
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.String())
	}

	writeConf(t, conf, append(base, "tenant_value_pattern = ^[a-z]{1,3}$", "upstream_host = 127.0.0.2")...)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the reload to refuse app_user.acme", func() bool {
		c, err := pgx.Connect(ctx, url("app_user.acme"))
		if err == nil {
			c.Close(ctx)
		}
		return err != nil && strings.Contains(err.Error(), "tenant_value_pattern")
	})
	if c, err := pgx.Connect(ctx, url("app_user.abc")); err != nil {
		t.Fatalf("after reload, a matching tenant (and the unchanged upstream_host) should work: %v", err)
	} else {
		c.Close(ctx)
	}
	var one int
	if err := open.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("open connection dropped by SIGHUP: %v", err)
	}
	if !strings.Contains(stderr.String(), "need a restart") || !strings.Contains(stderr.String(), "upstream_host") {
		t.Fatalf("reload did not report upstream_host as needing a restart:\n%s", stderr.String())
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15 s of SIGTERM")
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("exited after %v: did not wait for the open session (shutdown_timeout 2s)", d)
	}
	if err := open.QueryRow(ctx, "SELECT 1").Scan(&one); err == nil {
		t.Fatal("session still open after shutdown")
	}
	for _, secret := range []string{proxytest.AuthPassword, proxytest.AppUserPassword} {
		if strings.Contains(stderr.String(), secret) {
			t.Fatalf("log contains a password")
		}
	}
}

// TestBadConfigFailsAtStartup: an unknown key stops startup with exit code
// 2 and a message naming the key.
func TestBadConfigFailsAtStartup(t *testing.T) {
	bin := buildBinary(t)
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeConf(t, conf, "listen_hots = 0.0.0.0")
	out, err := exec.Command(bin, "--config", conf).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "listen_hots") {
		t.Fatalf("exit %v, output %q", err, out)
	}
}
