package admin_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// TestProbeUpstreamQuiet: the readiness probe succeeds against PostgreSQL
// without TLS ('N') and with it ('S', then a TLS handshake), and leaves no
// line in PostgreSQL's log either way.
//
// Not parallel: it turns ssl on in the package's shared cluster (the other
// tests' proxies use server_tls_mode = disable, so they do not mind).
func TestProbeUpstreamQuiet(t *testing.T) {
	s := pgtest.Shared()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.Connect(t, "postgres")
	var dataDir, ssl string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory'), current_setting('ssl')").Scan(&dataDir, &ssl); err != nil {
		t.Fatal(err)
	}
	// pgtest writes the server's output next to the data directory.
	logPath := filepath.Join(filepath.Dir(dataDir), "postgres.log")
	before, err := os.ReadFile(logPath)
	if err != nil {
		t.Skipf("no pgtest server log to check (%v)", err)
	}
	// Leave the cluster as found (ssl off), also for -count=N.
	t.Cleanup(func() { sslOff(t, s) })
	if ssl != "off" {
		sslOff(t, s)
	}
	probe := func(what string) {
		t.Helper()
		for range 3 {
			if err := admin.ProbeUpstream(ctx, s.Addr()); err != nil {
				t.Fatalf("probe (%s): %v", what, err)
			}
		}
	}
	probe("ssl off")
	if _, err := s.EnableTLS(ctx); err != nil {
		t.Fatal(err)
	}
	probe("ssl on")
	// PostgreSQL writes a connection's complaint as that backend exits; a
	// query over a new connection after the probes orders us behind them
	// only loosely, so poll the log briefly for any complaint.
	noisy := [][]byte{[]byte("could not receive data"), []byte("incomplete startup packet"), []byte("SSL"), []byte("could not accept")}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		after, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(after[len(before):], []byte("\n")) {
			for _, n := range noisy {
				if bytes.Contains(line, n) {
					t.Fatalf("probe left a line in the PostgreSQL log: %s", line)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sslOff turns ssl off in the cluster and waits until new sessions see it.
func sslOff(t *testing.T, s *pgtest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Exec(ctx, "postgres", "ALTER SYSTEM RESET ssl"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "postgres", "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	for {
		conn, err := pgx.Connect(ctx, s.SuperURL("postgres"))
		if err != nil {
			t.Fatalf("ssl off: %v", err)
		}
		var on string
		err = conn.QueryRow(ctx, "SHOW ssl").Scan(&on)
		conn.Close(context.Background())
		if err == nil && on == "off" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ssl still %q: %v", on, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
