package e2e

import (
	"testing"

	"github.com/multigres-proxy/multigres/internal/config"
)

// TestTwoContextVariables is the guide's "Multiple Context Variables"
// example: context_variables = app.current_list_id,app.current_user_id, a
// policy on list_id plus has_list_access(list_id), which reads
// app.current_user_id, and usernames app_user.<list>:<user>.
func TestTwoContextVariables(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) {
		c.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
	})
	e.exec(t, `
		CREATE TABLE list_access (list_id text NOT NULL, user_id text NOT NULL);
		INSERT INTO list_access VALUES ('list123', 'user456'), ('list999', 'user777');
		-- SECURITY DEFINER: the tenant role cannot read list_access itself.
		CREATE FUNCTION has_list_access(l text) RETURNS boolean
			LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
			AS $$ SELECT EXISTS (SELECT 1 FROM public.list_access a
				WHERE a.list_id = l AND a.user_id = multigres_context('app.current_user_id')) $$;
		CREATE TABLE items (id serial PRIMARY KEY, list_id text NOT NULL, title text NOT NULL);
		INSERT INTO items (list_id, title) VALUES ('list123', 'milk'), ('list123', 'eggs'), ('list999', 'secret');
		ALTER TABLE items ENABLE ROW LEVEL SECURITY;
		ALTER TABLE items FORCE ROW LEVEL SECURITY;
		CREATE POLICY tenant_isolation ON items FOR ALL TO app_user
			USING (list_id = multigres_context('app.current_list_id') AND has_list_access(list_id));
		GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app_user;
		GRANT USAGE ON SEQUENCE items_id_seq TO app_user;`)

	// Pool options style: the ':' needs no encoding.
	conn := e.connect(t, "app_user.list123:user456")
	if got := names(t, conn, "SELECT title FROM items ORDER BY title"); !eq(got, []string{"eggs", "milk"}) {
		t.Fatalf("list123/user456 sees %v", got)
	}
	var list, user string
	if err := conn.QueryRow(testCtx(t), "SELECT current_setting('app.current_list_id'), current_setting('app.current_user_id')").Scan(&list, &user); err != nil {
		t.Fatal(err)
	}
	if list != "list123" || user != "user456" {
		t.Fatalf("context = %q, %q", list, user)
	}
	// Connection URL style: the guide's %3A.
	urlConn, err := pgxConnectURL(t, "postgresql://app_user.list123%3Auser456:"+"app_user_password"+"@"+e.proxy.Addr+"/"+e.db+"?sslmode=disable")
	if err != nil {
		t.Fatalf("connect with %%3A in URL: %v", err)
	}
	if got := names(t, urlConn, "SELECT title FROM items ORDER BY title"); !eq(got, []string{"eggs", "milk"}) {
		t.Fatalf("URL connection sees %v", got)
	}
	// The right list but a user without access, and the reverse: nothing.
	for _, u := range []string{"app_user.list123:user777", "app_user.list999:user456"} {
		if got := names(t, e.connect(t, u), "SELECT title FROM items"); len(got) != 0 {
			t.Fatalf("%s sees %v", u, got)
		}
	}
	if got := names(t, e.connect(t, "app_user.list999:user777"), "SELECT title FROM items"); !eq(got, []string{"secret"}) {
		t.Fatalf("list999/user777 sees %v", got)
	}

	// One value for two variables: the guide's second troubleshooting error.
	_, err = e.tryConnect(t, "app_user.list123", "app_user_password")
	pe := wantPgError(t, err, "28000", "Expected 2 context value(s), got 1")
	if pe.Detail != "context_variables = app.current_list_id, app.current_user_id; separate the values with ':', e.g. app_user.value1:value2" {
		t.Fatalf("detail %q", pe.Detail)
	}
	_, err = e.tryConnect(t, "app_user.a:b:c", "app_user_password")
	wantPgError(t, err, "28000", "Expected 2 context value(s), got 3")
	_, err = e.tryConnect(t, "app_user", "app_user_password")
	pe = wantPgError(t, err, "28000", "Username must contain context values separated by '.'")
	if pe.Detail != "Expected format: role.value1:value2 (e.g. app_user.acme1:acme2)" {
		t.Fatalf("detail %q", pe.Detail)
	}
}
