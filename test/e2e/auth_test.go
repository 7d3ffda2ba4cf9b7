package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

func TestSCRAM(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.SuperuserBypass = []string{"postgres", "ghost"} })
	// Success is every other test; here the connection really went through
	// SCRAM (pgx reports no method, so check the upstream session).
	conn := e.connect(t, "app_user.acme")
	var user, session string
	if err := conn.QueryRow(testCtx(t), "SELECT current_user, session_user").Scan(&user, &session); err != nil {
		t.Fatal(err)
	}
	if user != "app_user" || session != "app_user" {
		t.Fatalf("current_user %q session_user %q", user, session)
	}

	start := time.Now()
	_, err := e.tryConnect(t, "app_user.acme", "wrong password")
	pe := wantPgError(t, err, "28P01", `password authentication failed for user "app_user.acme"`)
	if pe.Severity != "FATAL" || pe.Detail != "" || pe.Hint != "" {
		t.Fatalf("severity %q detail %q hint %q", pe.Severity, pe.Detail, pe.Hint)
	}
	if d := time.Since(start); d < e.proxy.Config.AuthFailureDelay {
		t.Fatalf("failure answered after %v, before auth_failure_delay", d)
	}

	// A user that does not exist gets the same answer as a wrong password,
	// and the same answer PostgreSQL itself gives.
	_, err = e.tryConnect(t, "ghost", "whatever")
	pe = wantPgError(t, err, "28P01", `password authentication failed for user "ghost"`)
	if pe.Detail != "" || pe.Hint != "" {
		t.Fatalf("ghost: detail %q hint %q", pe.Detail, pe.Hint)
	}
	_, direct := pgx.Connect(testCtx(t), e.pg.URL("ghost", "whatever", e.db))
	wantPgError(t, direct, "28P01", `password authentication failed for user "ghost"`)
	// The bypass user with a wrong password, for completeness.
	_, err = e.tryConnect(t, "postgres", "wrong")
	wantPgError(t, err, "28P01", `password authentication failed for user "postgres"`)
}

// TestAuthQuery: with the default auth_query, a role that exists only in
// pg_authid (no auth_file anywhere) logs in, and a wrong password fails.
func TestAuthQuery(t *testing.T) {
	t.Parallel()
	role := uniqueName("mg_tenant")
	const pw = "tenant role password"
	createRole(t, pgtest.Shared(), role, "NOSUPERUSER NOBYPASSRLS", pw)
	e := newEnv(t, func(c *config.Config) { c.TenantRoles = []string{"app_user", role} })
	if e.proxy.Config.AuthFile != "" || e.proxy.Config.AuthQuery == "" {
		t.Fatalf("auth_file %q auth_query %q", e.proxy.Config.AuthFile, e.proxy.Config.AuthQuery)
	}
	e.exec(t, "GRANT SELECT ON contacts TO "+pgx.Identifier{role}.Sanitize())
	conn, err := e.tryConnect(t, role+".globex", pw)
	if err != nil {
		t.Fatalf("login via auth_query: %v", err)
	}
	var user string
	if err := conn.QueryRow(testCtx(t), "SELECT current_user").Scan(&user); err != nil || user != role {
		t.Fatalf("current_user %q, %v", user, err)
	}
	if got := names(t, conn, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
		t.Fatalf("%s.globex sees %v", role, got)
	}
	_, err = e.tryConnect(t, role+".globex", "not it")
	wantPgError(t, err, "28P01", `password authentication failed for user "`+role+`.globex"`)
}

// TestAuthFile: a PgBouncer userlist.txt, with app_user's real SCRAM
// verifier from pg_authid or with its plaintext password, replaces the
// auth_query.
func TestAuthFile(t *testing.T) {
	t.Parallel()
	// app_user's verifier exists once a database is set up.
	base := newEnv(t, nil)
	var verifier string
	if err := base.super(t).QueryRow(testCtx(t),
		"SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'").Scan(&verifier); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, secret := range map[string]string{"scram": verifier, "plain": proxytest.AppUserPassword} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(dir, name+".txt")
			content := `;; PgBouncer userlist
"app_user" "` + secret + `"
"someone" "md5a3556571e93b0d20722ba62be61e8c2d"
`
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			proxy := proxytest.StartProxy(t, base.pg, func(c *config.Config) { c.AuthFile, c.AuthQuery = file, "" })
			e := &env{pg: base.pg, db: base.db, proxy: proxy}
			conn := e.connect(t, "app_user.acme")
			if got := names(t, conn, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
				t.Fatalf("acme sees %v", got)
			}
			_, err := e.tryConnect(t, "app_user.acme", "wrong")
			wantPgError(t, err, "28P01", `password authentication failed for user "app_user.acme"`)
			// Without auth_query, a user missing from the file cannot log
			// in, bypass user included.
			_, err = e.tryConnect(t, "postgres", pgtest.SuperPassword)
			wantPgError(t, err, "28P01", `password authentication failed for user "postgres"`)
		})
	}
}
