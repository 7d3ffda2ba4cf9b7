package frontend_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// The seed-style example: the username carries the user id, and resolvers
// derive the organisation and its plan from tables.
const resolverSeed = `
CREATE TABLE org_members (user_id text PRIMARY KEY, org_id int NOT NULL, role text);
CREATE TABLE orgs (id int PRIMARY KEY, plan text NOT NULL);
INSERT INTO org_members VALUES ('u1', 1, 'admin'), ('u2', 2, 'member'), ('u3', 3, NULL), ('dup', 4, 'x');
INSERT INTO orgs VALUES (1, 'gold');
GRANT SELECT ON org_members, orgs TO multigres_auth;
`

var orgResolver = config.ResolverConfig{Name: "org",
	Query:  "SELECT org_id, role FROM org_members WHERE user_id = $1",
	Params: []string{"app.current_user_id"}, Sets: []string{"app.org_id", "app.org_role"},
	Required: true, CacheTTL: time.Minute}

var planResolver = config.ResolverConfig{Name: "plan",
	Query:  "SELECT plan FROM orgs WHERE id = $1",
	Params: []string{"app.org_id"}, Sets: []string{"app.org_plan"},
	Required: false, CacheTTL: time.Minute}

// setupResolvers starts a proxy with context_variables = app.current_user_id
// and the given resolvers, on a database holding resolverSeed.
func setupResolvers(t *testing.T, resolvers ...config.ResolverConfig) (*proxytest.Proxy, string) {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	if err := pg.Exec(ctxT(t), db, resolverSeed); err != nil {
		t.Fatal(err)
	}
	p := proxytest.StartProxy(t, pg, func(c *config.Config) {
		c.ContextVariables = []string{"app.current_user_id"}
		c.Resolvers = resolvers
	})
	return p, db
}

// settings reads the named settings (NULL when never set) on conn.
func settings(ctx context.Context, t *testing.T, conn *pgx.Conn, names ...string) []*string {
	t.Helper()
	out := make([]*string, len(names))
	for i, n := range names {
		if err := conn.QueryRow(ctx, "SELECT current_setting($1, true)", n).Scan(&out[i]); err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

func TestResolverSetsVariables(t *testing.T) {
	t.Parallel()
	p, db := setupResolvers(t, orgResolver)
	ctx := ctxT(t)
	conn, err := connect(ctx, p, db, "app_user.u1")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	got := settings(ctx, t, conn, "app.current_user_id", "app.org_id", "app.org_role")
	if str(got[0]) != "u1" || str(got[1]) != "1" || str(got[2]) != "admin" {
		t.Fatalf("settings = %s, %s, %s; want u1, 1, admin", str(got[0]), str(got[1]), str(got[2]))
	}

	// The guard protects resolved variables like context variables.
	for _, sql := range []string{"SET app.org_id = '2'", "SELECT set_config('app.org_role', 'admin', false)", "RESET app.org_id"} {
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		wantPgError(t, err, "42501", "app.org")
	}
	if got := settings(ctx, t, conn, "app.org_id"); str(got[0]) != "1" {
		t.Errorf("app.org_id changed to %s", str(got[0]))
	}

	// A NULL column sets the empty string.
	c3, err := connect(ctx, p, db, "app_user.u3")
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close(ctx)
	if got := settings(ctx, t, c3, "app.org_id", "app.org_role"); str(got[0]) != "3" || str(got[1]) != "" {
		t.Errorf("u3: %s, %s; want 3 and empty", str(got[0]), str(got[1]))
	}
}

// TestResolverFailsClosed: a required resolver without a row refuses the
// login with 28000 during the handshake, so the client never reaches
// ReadyForQuery and no query of its runs; a resolver error is 08006.
func TestResolverFailsClosed(t *testing.T) {
	t.Parallel()
	p, db := setupResolvers(t, orgResolver)
	ctx := ctxT(t)

	_, err := connect(ctx, p, db, "app_user.nobody")
	wantPgError(t, err, "28000", `context resolver "org" found no row for this login`)

	// More than one row is an error, not a pick.
	pg := pgtest.Shared()
	if err := pg.Exec(ctx, db, "ALTER TABLE org_members DROP CONSTRAINT org_members_pkey; INSERT INTO org_members VALUES ('dup', 5, 'y')"); err != nil {
		t.Fatal(err)
	}
	_, err = connect(ctx, p, db, "app_user.dup")
	wantPgError(t, err, "08006", `context resolver "org" failed: query returned more than one row`)
}

// TestResolverErrorClosesConnection: an error fails the login even for a
// resolver that is not required.
func TestResolverErrorClosesConnection(t *testing.T) {
	t.Parallel()
	broken := config.ResolverConfig{Name: "broken", Query: "SELECT org_id FROM no_such_table WHERE user_id = $1",
		Params: []string{"app.current_user_id"}, Sets: []string{"app.broken"}, Required: false}
	p, db := setupResolvers(t, orgResolver, broken)
	ctx := ctxT(t)
	_, err := connect(ctx, p, db, "app_user.u1")
	wantPgError(t, err, "08006", `context resolver "broken" failed: see the multigres log`) // the server error names tables: log only
}

// TestResolverChained: the second resolver takes the first one's output as
// its parameter; an optional resolver without a row sets nothing.
func TestResolverChained(t *testing.T) {
	t.Parallel()
	p, db := setupResolvers(t, orgResolver, planResolver)
	ctx := ctxT(t)
	c1, err := connect(ctx, p, db, "app_user.u1")
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close(ctx)
	if got := settings(ctx, t, c1, "app.org_id", "app.org_plan"); str(got[0]) != "1" || str(got[1]) != "gold" {
		t.Errorf("u1: org %s plan %s; want 1 gold", str(got[0]), str(got[1]))
	}
	c2, err := connect(ctx, p, db, "app_user.u2") // org 2 has no orgs row
	if err != nil {
		t.Fatalf("optional resolver without a row refused the login: %v", err)
	}
	defer c2.Close(ctx)
	// An optional resolver without a row sets its variables to '' (which
	// multigres_context reads as NULL), so nothing else can stand in.
	if got := settings(ctx, t, c2, "app.org_id", "app.org_plan"); str(got[0]) != "2" || str(got[1]) != "" {
		t.Errorf("u2: org %s plan %s; want 2 and empty", str(got[0]), str(got[1]))
	}
}

// TestResolvedVariablesProtectedAtStartup: a tenant cannot supply a
// resolved variable (or an optional resolver's) through startup
// parameters or options.
func TestResolvedVariablesProtectedAtStartup(t *testing.T) {
	t.Parallel()
	p, db := setupResolvers(t, orgResolver, planResolver)
	ctx := ctxT(t)
	for _, params := range []map[string]string{
		{"app.org_plan": "enterprise"},
		{"options": "-c app.org_plan=enterprise"},
		{"options": "-c app.org_role=admin"},
	} {
		cfg, err := pgx.ParseConfig(proxytest.URL(p.Addr, "app_user.u2", proxytest.AppUserPassword, db))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range params {
			cfg.RuntimeParams[k] = v
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			got := settings(ctx, t, conn, "app.org_plan")
			conn.Close(ctx)
			t.Fatalf("startup %v accepted; app.org_plan = %s", params, str(got[0]))
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" {
			t.Fatalf("startup %v: %v", params, err)
		}
	}
}

// TestResolverCacheTTL: within cache_ttl a reconnect sees the cached row
// even after the table changed; once the TTL has passed it sees the change.
func TestResolverCacheTTL(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	r := orgResolver
	r.CacheTTL = ttl
	p, db := setupResolvers(t, r)
	ctx := ctxT(t)
	pg := pgtest.Shared()

	orgOf := func() string {
		t.Helper()
		c, err := connect(ctx, p, db, "app_user.u1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		return str(settings(ctx, t, c, "app.org_id")[0])
	}
	start := time.Now() // the cached row was resolved after this
	if got := orgOf(); got != "1" {
		t.Fatalf("org = %s, want 1", got)
	}
	if err := pg.Exec(ctx, db, "UPDATE org_members SET org_id = 42 WHERE user_id = 'u1'"); err != nil {
		t.Fatal(err)
	}
	got := orgOf()
	if time.Since(start) >= ttl {
		t.Fatalf("machine too slow: two logins took over the %v TTL, so the cache check is inconclusive", ttl)
	}
	if got != "1" {
		t.Fatalf("within the TTL org = %s, want the cached 1", got)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got = orgOf()
		if got == "42" {
			break
		}
		if got != "1" || time.Now().After(deadline) {
			t.Fatalf("org = %s; want 42 after the TTL", got)
		}
		// Poll pacing, not synchronisation: the loop ends on the value.
		time.Sleep(100 * time.Millisecond)
	}
	if since := time.Since(start); since < ttl {
		t.Errorf("new value after %v, before the %v TTL ran out", since, ttl)
	}
}
