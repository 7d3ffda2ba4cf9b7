package main

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// TestOpenFilesLimitRefusesWith53300: under an open-files limit of 40, the
// proxy refuses the client past what the limit leaves room for with FATAL
// 53300 naming the limit, instead of letting accept fail and the client
// time out, and logs the effective limit.
func TestOpenFilesLimitRefusesWith53300(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	pg := pgtest.Shared()
	bin := buildBinary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	writeConf(t, conf, fmt.Sprintf("port = %d", port), fmt.Sprintf("upstream_port = %d", pg.Port),
		"server_tls_mode = disable", "auth_type = trust", "handshake_timeout = 30s", "log_level = info")
	p := &proc{stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(prlimit, "--nofile=40:40", bin, "--config", conf)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr)
	if !strings.Contains(p.stderr.String(), "max_clients_by_files=10") {
		t.Errorf("the effective limit is not logged:\n%s", p.stderr.String())
	}
	// Ten clients in their handshake fill what 40 descriptors allow.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for range 10 {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	// The proxy counts a client once it accepted it: retry the eleventh
	// until the count has caught up (bounded).
	var er *pgproto3.ErrorResponse
	waitFor(t, 10*time.Second, "a refusal at the open-files limit", func() bool {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": "postgres", "database": "postgres"}})
		if fe.Flush() != nil {
			return false
		}
		m, err := fe.Receive()
		if e, ok := m.(*pgproto3.ErrorResponse); ok && err == nil && e.Code == "53300" {
			er = e
			return true
		}
		return false
	})
	if !strings.Contains(er.Message, "open-files limit") {
		t.Fatalf("refusal: %s %s", er.Code, er.Message)
	}
}
