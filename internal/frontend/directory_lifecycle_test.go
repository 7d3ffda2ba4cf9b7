package frontend

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
)

// listenerGoroutines counts the goroutines running the tenant
// directory's LISTEN loop.
func listenerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "(*tenantDirectory).listen.func")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestDirectoryNewFailureLeavesNoListener: when New fails after the tenant
// directory was built (here: auth_file is gone when it reads it), nothing of the
// directory keeps running; there is no Server to Shutdown, so a LISTEN
// loop started by New would retry against the directory database forever.
func TestDirectoryNewFailureLeavesNoListener(t *testing.T) {
	before := listenerGoroutines()
	cfg := config.Default()
	cfg.UpstreamHost, cfg.UpstreamPort = "127.0.0.1", 1 // nothing listens: the loop backs off
	cfg.AuthType = "md5"
	cfg.AuthFile = filepath.Join(t.TempDir(), "userlist.txt")
	if err := os.WriteFile(cfg.AuthFile, []byte("\"app_user\" \"md5abc\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.AuthUser = "multigres_auth"
	cfg.TenantDirectoryQuery = "SELECT cluster FROM tenant_directory WHERE tenant = $1"
	cfg.TenantDirectoryDatabase = "directory"
	cfg.TenantDirectoryChannel = "tenant_moves"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	if err := os.Remove(cfg.AuthFile); err != nil { // valid when checked, gone when New reads it
		t.Fatal(err)
	}
	if _, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
		t.Fatal("New with a missing auth_file succeeded; the test needs it to fail")
	}
	deadline := time.Now().Add(3 * time.Second)
	for listenerGoroutines() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d tenant directory LISTEN loop(s) still running after New failed", listenerGoroutines()-before)
		}
		time.Sleep(10 * time.Millisecond) // polling, bounded by deadline
	}
}
