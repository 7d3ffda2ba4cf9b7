package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
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

	// cleanup as the superuser: every tenant's expired rows go.
	out, err = runOut("cleanup")
	if err != nil || strings.TrimSpace(out) != "deleted 0 expired sessions, 0 expired invitations, 0 stale attempt counters" {
		t.Fatalf("cleanup = %q, %v", out, err)
	}
	for _, args := range [][]string{{"cleanup", "-modules", "auth"}, {"cleanup", "extra"}} {
		if _, err := runOut(args...); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want usage", args, err)
		}
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

// TestCleanupCLI: `authpg cleanup` removes every tenant's expired sessions
// on a role that bypasses RLS, and refuses a role that does not.
func TestCleanupCLI(t *testing.T) {
	s := pgtest.Shared()
	db := s.CreateDB(t)
	url := s.SuperURL(db)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env := func(string) string { return url }
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate", "up", "-modules", "auth"}, env, &out, &out); err != nil {
		t.Fatal(err)
	}
	conn := s.Connect(t, db)
	role := fmt.Sprintf("authpg_cli_%d", os.Getpid())
	for _, q := range []string{
		`INSERT INTO auth.users (tenant_id, id, handle) VALUES ('11111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111112', 'a'),
			('22222222-2222-4222-8222-222222222222', '22222222-2222-4222-8222-222222222223', 'b')`,
		`INSERT INTO auth.sessions (tenant_id, user_id, expires_at) SELECT tenant_id, id, now() - interval '1 s' FROM auth.users`,
		`INSERT INTO auth.sessions (tenant_id, user_id, expires_at) SELECT tenant_id, id, now() + interval '1 day' FROM auth.users`,
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'pw' NOSUPERUSER NOBYPASSRLS`, role),
		fmt.Sprintf(`GRANT USAGE ON SCHEMA auth TO %[1]s; GRANT SELECT, DELETE ON ALL TABLES IN SCHEMA auth TO %[1]s`, role),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role) })
	rlsBound := s.URL(role, "pw", db)
	out.Reset()
	if err := run(ctx, []string{"cleanup", "-database-url", rlsBound}, env, &out, &out); err == nil || !strings.Contains(err.Error(), "BYPASSRLS") {
		t.Fatalf("cleanup on an RLS-bound role = %v, want a refusal naming BYPASSRLS", err)
	}
	out.Reset()
	if err := run(ctx, []string{"cleanup"}, env, &out, &out); err != nil || !strings.HasPrefix(out.String(), "deleted 2 expired sessions") {
		t.Fatalf("cleanup = %q, %v", out.String(), err)
	}
	var left int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM auth.sessions`).Scan(&left); err != nil || left != 2 {
		t.Fatalf("%d sessions left, want the 2 live ones: %v", left, err)
	}
}
