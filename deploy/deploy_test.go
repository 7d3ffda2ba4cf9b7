// Package deploy_test checks the shipped deployment examples against the
// code, so that a renamed key or a changed default cannot leave them stale.
package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestKubernetesConfig: the ConfigMap's multigres.conf loads (with the
// peer id a pod gets from its ordinal), the pod's grace period exceeds its
// shutdown_timeout, and the peers list names every pod of the StatefulSet
// at its headless-Service address and the port it listens on.
func TestKubernetesConfig(t *testing.T) {
	t.Parallel()
	manifest := read(t, filepath.Join("kubernetes", "multigres.yaml"))
	_, block, ok := strings.Cut(manifest, "  multigres.conf: |\n")
	if !ok {
		t.Fatal("no multigres.conf in the ConfigMap")
	}
	var conf strings.Builder
	for line := range strings.Lines(block) {
		if !strings.HasPrefix(line, "    ") && strings.TrimSpace(line) != "" {
			break
		}
		conf.WriteString(strings.TrimPrefix(line, "    "))
	}
	file := filepath.Join(t.TempDir(), "multigres.conf")
	if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	replicas := atoi(t, manifest, `(?m)^  replicas: (\d+)$`)
	start := atoi(t, manifest, `ordinals: \{start: (\d+)\}`)
	if start < 1 {
		t.Errorf("ordinals start at %d: the pod with ordinal 0 would have peering off", start)
	}
	var cfg *config.Config
	for ordinal := start; ordinal < start+replicas; ordinal++ {
		var err error
		cfg, err = config.Load([]string{"--config", file}, []string{"MULTIGRES_AUTH_PASSWORD=x", "MULTIGRES_PEER_ID=" + strconv.Itoa(ordinal)})
		if err != nil {
			t.Fatalf("ConfigMap multigres.conf for the pod of ordinal %d: %v", ordinal, err)
		}
	}
	peers := cfg.PeerList()
	if len(peers) != replicas {
		t.Errorf("peers lists %d processes, the StatefulSet runs %d", len(peers), replicas)
	}
	for i, p := range peers {
		if want := "multigres-" + strconv.Itoa(start+i) + ".multigres-peers:" + strconv.Itoa(cfg.Port); p.ID != start+i || p.Addr != want {
			t.Errorf("peers entry %d is %d=%s, want %d=%s", i+1, p.ID, p.Addr, start+i, want)
		}
	}
	if cfg.AdminListen == "" || cfg.ListenHost != "*" {
		t.Errorf("admin_listen %q, listen_host %q: probes and the Service need both on all interfaces", cfg.AdminListen, cfg.ListenHost)
	}
	m := regexp.MustCompile(`terminationGracePeriodSeconds: (\d+)`).FindStringSubmatch(manifest)
	if m == nil {
		t.Fatal("no terminationGracePeriodSeconds")
	}
	if grace, _ := strconv.Atoi(m[1]); time.Duration(grace)*time.Second <= cfg.ShutdownTimeout {
		t.Errorf("terminationGracePeriodSeconds %ds must exceed shutdown_timeout %v", grace, cfg.ShutdownTimeout)
	}
	for _, want := range []string{"path: /readyz", "path: /healthz", "kind: Service", "kind: StatefulSet",
		"serviceName: multigres-peers", "name: multigres-peers", "clusterIP: None", "publishNotReadyAddresses: true",
		"name: MULTIGRES_PEER_ID", "fieldPath: \"metadata.labels['apps.kubernetes.io/pod-index']\""} {
		if !strings.Contains(manifest, want) {
			t.Errorf("manifest lacks %q", want)
		}
	}
}

func atoi(t *testing.T, text, pattern string) int {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("manifest lacks %s", pattern)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSystemdUnit: the stop timeout exceeds the default shutdown_timeout and
// the unit reloads with SIGHUP.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	unit := read(t, "multigres.service")
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("no TimeoutStopSec")
	}
	stop, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: %v", m[1], err)
	}
	if def := config.Default().ShutdownTimeout; stop <= def {
		t.Errorf("TimeoutStopSec %v must exceed the default shutdown_timeout %v", stop, def)
	}
	for _, want := range []string{"Type=simple", "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM",
		"NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
}

// TestDockerfile: static cgo build, distroless final stage.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := read(t, "Dockerfile")
	for _, want := range []string{"FROM golang:1.26 AS build", "CGO_ENABLED=1", "-linkmode external -extldflags -static",
		"FROM gcr.io/distroless/static", "./cmd/multigres"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
