package stack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hugeFiles(t *testing.T, nr, free string) *HugePages {
	t.Helper()
	dir := t.TempDir()
	h := &HugePages{nrPath: filepath.Join(dir, "nr"), memPath: filepath.Join(dir, "meminfo")}
	if err := os.WriteFile(h.nrPath, []byte(nr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.memPath, []byte("MemTotal: 100 kB\nHugePages_Free:    "+free+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestHugePagesReserveAndRestore(t *testing.T) {
	h := hugeFiles(t, "0", "640")
	h.reserve()
	if !h.On || read(t, h.nrPath) != "640" {
		t.Fatalf("on=%v nr=%s", h.On, read(t, h.nrPath))
	}
	h.Restore()
	if read(t, h.nrPath) != "0" {
		t.Errorf("not restored: %s", read(t, h.nrPath))
	}
}

func TestHugePagesNotEnoughFree(t *testing.T) {
	h := hugeFiles(t, "2", "10")
	h.reserve()
	if h.On || read(t, h.nrPath) != "2" {
		t.Errorf("on=%v nr=%s: too few free pages must leave them off and restored", h.On, read(t, h.nrPath))
	}
}

func TestHugePagesAlreadyReserved(t *testing.T) {
	h := hugeFiles(t, "1000", "900")
	h.reserve()
	h.Restore()
	if !h.On || read(t, h.nrPath) != "1000" {
		t.Errorf("on=%v nr=%s: a larger reservation is used and left alone", h.On, read(t, h.nrPath))
	}
}

func TestChildEnv(t *testing.T) {
	t.Setenv("PGHOST", "elsewhere")
	t.Setenv("MULTIGRES_BIN", "/x")
	t.Setenv("PGSSLMODE", "require")
	env := strings.Join(ChildEnv("EXTRA=1"), "\n")
	for _, bad := range []string{"PGHOST=", "MULTIGRES_BIN=", "PGSSLMODE=require"} {
		if strings.Contains(env, bad) {
			t.Errorf("child env keeps %s", bad)
		}
	}
	for _, want := range []string{"PGSSLMODE=disable", "PGGSSENCMODE=disable", "EXTRA=1"} {
		if !strings.Contains(env, want) {
			t.Errorf("child env lacks %s", want)
		}
	}
}

func TestFreePortDistinct(t *testing.T) {
	seen := map[int]bool{}
	for i := 0; i < 20; i++ {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p < 20000 || p >= 32000 {
			t.Fatalf("port %d (seen before: %v)", p, seen[p])
		}
		seen[p] = true
	}
}
