package e2e

import (
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestTroubleshootingErrors reproduces every error of the guide's
// Troubleshooting section, word for word, with its SQLSTATE.
func TestTroubleshootingErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)

	t.Run("no separator", func(t *testing.T) {
		_, err := e.tryConnect(t, "app_user", proxytest.AppUserPassword)
		pe := wantPgError(t, err, "28000", "Username must contain context values separated by '.'")
		if pe.Severity != "FATAL" || pe.Detail != "Expected format: role.value1 (e.g. app_user.acme)" {
			t.Fatalf("severity %q detail %q", pe.Severity, pe.Detail)
		}
	})
	t.Run("too many values", func(t *testing.T) {
		_, err := e.tryConnect(t, "app_user.acme:extra", proxytest.AppUserPassword)
		pe := wantPgError(t, err, "28000", "Expected 1 context value(s), got 2")
		if pe.Severity != "FATAL" || pe.Detail != "context_variables = app.current_tenant_id; separate the values with ':', e.g. app_user.value1" {
			t.Fatalf("severity %q detail %q", pe.Severity, pe.Detail)
		}
	})
	t.Run("zero rows", func(t *testing.T) {
		// A tenant without data sees nothing, not an error and not
		// everything; the bypass user confirms the data exists.
		initech := e.connect(t, "app_user.initech")
		if got := names(t, initech, "SELECT name FROM contacts"); len(got) != 0 {
			t.Fatalf("initech sees %v", got)
		}
		admin, err := e.tryConnect(t, "postgres", pgtest.SuperPassword)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(t, admin, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob", "Gina"}) {
			t.Fatalf("bypass sees %v", got)
		}
	})
	t.Run("permission denied until protected", func(t *testing.T) {
		e.exec(t, `CREATE TABLE notes (id serial PRIMARY KEY, tenant_id text NOT NULL, body text);
			INSERT INTO notes (tenant_id, body) VALUES ('acme', 'acme note'), ('globex', 'globex note');`)
		acme := e.connect(t, "app_user.acme")
		_, err := acme.Exec(testCtx(t), "SELECT body FROM notes")
		wantPgError(t, err, "42501", "permission denied for table notes")
		// The guide's advice: run multigres_protect (as the owner).
		e.exec(t, "SELECT multigres_protect('notes')")
		if got := names(t, acme, "SELECT body FROM notes"); !eq(got, []string{"acme note"}) {
			t.Fatalf("after protect acme sees %v", got)
		}
		if _, err := acme.Exec(testCtx(t), "INSERT INTO notes (tenant_id, body) VALUES ('acme', 'new')"); err != nil {
			t.Fatalf("insert after protect (sequence grant): %v", err)
		}
	})
}

// TestOtherBadUsernames: the remaining username errors are clear FATAL
// 28000s too.
func TestOtherBadUsernames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, tc := range []struct{ user, message string }{
		{".acme", "Username has an empty role before '.'"},
		{"app_user.", "context value 1 (app.current_tenant_id) is empty"},
		{"nobody.acme", `role "nobody" is not a tenant role`},
		{"app_user.ac me", "context value 1 (app.current_tenant_id) does not match tenant_value_pattern"},
		{"app_user." + strings.Repeat("a", 64), "context value 1 (app.current_tenant_id) does not match tenant_value_pattern"},
	} {
		_, err := e.tryConnect(t, tc.user, proxytest.AppUserPassword)
		wantPgError(t, err, "28000", tc.message)
	}
}

// TestRoleThatBypassesRLSIsRefused: a tenant role that is BYPASSRLS or
// SUPERUSER would see every tenant's rows, so the proxy refuses it before
// any client query runs, even when it is listed in tenant_roles. This is
// where the TypeScript original let postgres.acme in with RLS bypassed.
func TestRoleThatBypassesRLSIsRefused(t *testing.T) {
	t.Parallel()
	bypass := uniqueName("mg_bypassrls")
	super := uniqueName("mg_super")
	const pw = "role_password_1"
	pg := pgtest.Shared()
	createRole(t, pg, bypass, "BYPASSRLS", pw)
	createRole(t, pg, super, "SUPERUSER", pw)
	e := newEnv(t, func(c *config.Config) { c.TenantRoles = []string{"app_user", bypass, super} })
	for _, role := range []string{bypass, super} {
		_, err := e.tryConnect(t, role+".acme", pw)
		pe := wantPgError(t, err, "28000", `role "`+role+`" can bypass row-level security, so multigres refuses tenant connections for it`)
		if pe.Severity != "FATAL" || !strings.Contains(pe.Hint, "NOBYPASSRLS") {
			t.Fatalf("severity %q hint %q", pe.Severity, pe.Hint)
		}
	}
	// postgres is no tenant role by default ...
	_, err := e.tryConnect(t, "postgres.acme", pgtest.SuperPassword)
	wantPgError(t, err, "28000", `role "postgres" is not a tenant role`)
	// ... and listing it as one does not open the door either.
	e2 := &env{pg: e.pg, db: e.db, proxy: proxytest.StartProxy(t, pg, func(c *config.Config) {
		c.TenantRoles = []string{"app_user", "postgres"}
		c.SuperuserBypass = []string{"admin"}
	})}
	_, err = e2.tryConnect(t, "postgres.acme", pgtest.SuperPassword)
	wantPgError(t, err, "28000", `role "postgres" can bypass row-level security, so multigres refuses tenant connections for it`)
	// A role that was checked fine still works through the same proxy.
	if got := names(t, e.connect(t, "app_user.acme"), "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme sees %v", got)
	}
}
