package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

func TestMigrateCLI(t *testing.T) {
	s := pgtest.Shared()
	url := s.SuperURL(s.CreateDB(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}
	runOut := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, args, env, &out, &errOut)
		return out.String(), err
	}

	out, err := runOut("migrate", "status")
	if err != nil || strings.Count(out, "pending") != 5 {
		t.Fatalf("status before = %q, %v", out, err)
	}
	out, err = runOut("migrate", "up", "-modules", "auth")
	if err != nil || !strings.Contains(out, "applied auth 1") || strings.Contains(out, "booking") {
		t.Fatalf("up auth = %q, %v", out, err)
	}
	out, err = runOut("migrate", "up")
	if err != nil || strings.Contains(out, "applied auth") || !strings.Contains(out, "applied intake 1") {
		t.Fatalf("up all = %q, %v", out, err)
	}
	out, err = runOut("migrate", "up")
	if err != nil || strings.TrimSpace(out) != "up to date" {
		t.Fatalf("re-run = %q, %v", out, err)
	}
	out, err = runOut("migrate", "status")
	if err != nil || strings.Count(out, "up to date") != 5 {
		t.Fatalf("status after = %q, %v", out, err)
	}

	for _, args := range [][]string{{}, {"migrate"}, {"migrate", "down"}, {"serve"}, {"migrate", "up", "extra"}, {"migrate", "up", "-bogus"}} {
		if _, err := runOut(args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want usage", args, err)
		}
	}
	var out2 bytes.Buffer
	if err := run(ctx, []string{"migrate", "up"}, func(string) string { return "" }, &out2, &out2); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("no DATABASE_URL: %v", err)
	}
	if _, err := runOut("migrate", "up", "-modules", "billing"); err == nil {
		t.Fatal("unknown module accepted")
	}
}
