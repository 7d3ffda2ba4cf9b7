package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// directorySQL is the tenant directory of these tests, in the test
// database on the default cluster, readable by auth_user.
const directorySQL = `
CREATE TABLE tenant_directory (tenant text PRIMARY KEY, cluster text);
GRANT SELECT ON tenant_directory TO ` + proxytest.AuthUser + `;
`

// directoryQuery is tenant_directory_query in these tests.
const directoryQuery = "SELECT cluster FROM tenant_directory WHERE tenant = $1"

// newDirEnv is newEnv with the directory table (rows: tenant → cluster)
// and the proxy reading it; mutate adjusts the config further.
func newDirEnv(t *testing.T, rows map[string]string, mutate func(*config.Config)) *env {
	t.Helper()
	e := newEnvInit(t, nil, func(c *config.Config) {
		c.TenantDirectoryQuery = directoryQuery
		c.TenantDirectoryDatabase = c.AuthDatabase
		if mutate != nil {
			mutate(c)
		}
	})
	sql := directorySQL
	for tenant, cluster := range rows {
		sql += fmt.Sprintf("INSERT INTO tenant_directory VALUES ('%s', '%s');\n", tenant, cluster)
	}
	if err := clusters[0].Exec(testCtx(t), e.db, sql); err != nil {
		t.Fatalf("directory: %v", err)
	}
	return e
}

// setDir changes the directory on the default cluster, past the proxy.
func (e *env) setDir(t *testing.T, sql string) {
	t.Helper()
	if err := clusters[0].Exec(testCtx(t), e.db, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// whereNow is where, for a connection expected to follow its tenant: it
// reports instead of failing, so that waitUntil can poll it.
func whereNow(conn *pgx.Conn) string {
	got, err := whereErr(conn)
	if err != nil {
		return "error: " + err.Error()
	}
	return strings.Join(got, ",")
}

// TestDirectoryPlacesTenants: a row of the directory places a tenant
// (before tenant_routes, cluster names in any case); a tenant without a
// row, or with a NULL cluster, goes by the static routes; SHOW ROUTES
// lists the answers that placed tenants. Both pool modes.
func TestDirectoryPlacesTenants(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newDirEnv(t, map[string]string{"acme": "c2", "globex": "C3"}, func(c *config.Config) {
				c.PoolMode = mode
				c.TenantRoutes = []string{"acme:c3", "acme2:c2"}
			})
			e.setDir(t, "INSERT INTO tenant_directory VALUES ('big-corp', NULL)")
			for tenant, want := range map[string]string{"acme": "c2", "globex": "c3", "acme2": "c2", "big-corp": "default"} {
				conn := e.connect(t, "app_user."+tenant)
				for range 3 {
					if got := where(t, conn); !slices.Equal(got, []string{want}) {
						t.Errorf("tenant %s reached %v, want [%s]", tenant, got, want)
					}
				}
			}
			routes := show(t, e.console(t), "SHOW ROUTES")
			var dir []string
			for _, r := range routes {
				if r["source"] == "tenant_directory" {
					dir = append(dir, r["match"]+"="+r["cluster"]+" "+r["state"])
				}
			}
			slices.Sort(dir)
			if want := []string{"acme=c2 cached", "globex=c3 cached"}; !slices.Equal(dir, want) {
				t.Errorf("SHOW ROUTES directory rows %v, want %v (all: %v)", dir, want, routes)
			}
		})
	}
}

// TestDirectoryNotifyMovesClients: with tenant_directory_channel, a
// notification naming a tenant makes its connected transaction-mode
// clients and its new logins follow the directory's new answer; an empty
// payload does that for every tenant.
func TestDirectoryNotifyMovesClients(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, map[string]string{"acme": "c2", "globex": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryChannel = "tenant_moves"
		c.TenantDirectoryTTL = time.Hour // only the notifications can change answers here
	})
	acme := e.connect(t, "app_user.acme")
	globex := e.connect(t, "app_user.globex")
	if got := whereNow(acme); got != "c2" {
		t.Fatalf("acme reached %s, want c2", got)
	}
	if got := whereNow(globex); got != "c2" {
		t.Fatalf("globex reached %s, want c2", got)
	}
	// The notification is delivered at commit, with the row it announces.
	e.setDir(t, "BEGIN; UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'; SELECT pg_notify('tenant_moves', 'acme'); COMMIT")
	waitUntil(t, 20*time.Second, "acme's open connection to follow it to c3", func() bool { return whereNow(acme) == "c3" })
	if got := whereNow(e.connect(t, "app_user.acme")); got != "c3" {
		t.Errorf("a new acme login reached %s, want c3", got)
	}
	if got := whereNow(globex); got != "c2" {
		t.Errorf("globex reached %s after acme's notification, want c2 still", got)
	}
	e.setDir(t, "BEGIN; UPDATE tenant_directory SET cluster = 'default'; SELECT pg_notify('tenant_moves', ''); COMMIT")
	waitUntil(t, 20*time.Second, "every tenant to follow an empty notification", func() bool {
		return whereNow(acme) == "default" && whereNow(globex) == "default"
	})
}

// TestDirectoryRefreshAndTTL: without a channel, REFRESH TENANT makes a
// tenant's clients follow a changed row at once, and an answer past
// tenant_directory_ttl is asked again by the clients it placed.
func TestDirectoryRefreshAndTTL(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryTTL = time.Hour
	})
	acme := e.connect(t, "app_user.acme")
	if got := whereNow(acme); got != "c2" {
		t.Fatalf("acme reached %s, want c2", got)
	}
	e.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
	if got := whereNow(acme); got != "c2" {
		t.Errorf("acme reached %s before the refresh, want c2 (answers live an hour)", got)
	}
	con := e.console(t)
	rows := show(t, con, "REFRESH TENANT acme")
	want := map[string]string{"tenant": "acme", "forgotten": "1", "cluster": "c3", "source": "tenant_directory", "override_dropped": "false", "closed": "0"}
	if len(rows) != 1 || fmt.Sprint(rows[0]) != fmt.Sprint(want) {
		t.Errorf("REFRESH TENANT acme = %v, want %v", rows, want)
	}
	if got := whereNow(acme); got != "c3" {
		t.Errorf("acme reached %s at its first transaction after REFRESH, want c3", got)
	}
	if rows := show(t, con, "REFRESH TENANTS"); len(rows) != 1 || rows[0]["tenant"] != "*" {
		t.Errorf("REFRESH TENANTS = %v", rows)
	}

	// A short TTL: the answer is asked again by the client it placed.
	short := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryTTL = time.Second
	})
	conn := short.connect(t, "app_user.acme")
	if got := whereNow(conn); got != "c2" {
		t.Fatalf("acme reached %s, want c2", got)
	}
	short.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
	waitUntil(t, 20*time.Second, "acme to follow its row once its answer expired", func() bool { return whereNow(conn) == "c3" })
}

// TestDirectoryFailsClosed: when the directory cannot be read, a tenant
// without a cached answer is refused with 08006 rather than sent to a
// guessed cluster, as is a tenant whose row names an unknown cluster;
// cached answers keep serving; a connected client whose answer was
// forgotten gets 08006 at its next transaction.
func TestDirectoryFailsClosed(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, map[string]string{"acme": "c2", "initech": "nowhere"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryTTL = time.Hour
	})
	acme := e.connect(t, "app_user.acme")
	if got := whereNow(acme); got != "c2" {
		t.Fatalf("acme reached %s, want c2", got)
	}
	_, err := e.tryConnect(t, "app_user.initech", proxytest.AppUserPassword)
	if pgCode(err) != "08006" || !strings.Contains(err.Error(), `tenant directory`) {
		t.Errorf("a row naming an unknown cluster: %v, want 08006 about the tenant directory", err)
	}
	e.setDir(t, "REVOKE SELECT ON tenant_directory FROM "+proxytest.AuthUser)
	if got := whereNow(e.connect(t, "app_user.acme")); got != "c2" {
		t.Errorf("a cached tenant's new login reached %s, want c2", got)
	}
	_, err = e.tryConnect(t, "app_user.globex", proxytest.AppUserPassword)
	if pgCode(err) != "08006" || !strings.Contains(err.Error(), `could not read the tenant directory to find the cluster of tenant "globex"`) {
		t.Errorf("an unreadable directory: %v, want 08006 naming the tenant", err)
	}
	con := e.console(t)
	if _, err := con.Exec(testCtx(t), "REFRESH TENANT acme"); pgCode(err) != "08006" {
		t.Errorf("REFRESH TENANT with the directory unreadable: %v, want 08006", err)
	}
	_, err = con.Exec(testCtx(t), "MOVE TENANT globex TO c3")
	if pgCode(err) != "08006" || !strings.Contains(err.Error(), `cannot tell which cluster tenant "globex" is on`) {
		t.Errorf("MOVE TENANT with the directory unreadable: %v, want 08006 naming the tenant", err)
	}
	if got := whereNow(acme); !strings.Contains(got, "08006") {
		t.Errorf("acme's next transaction after its answer was forgotten and the directory broke: %s, want 08006", got)
	}
	if n := e.metric(t, `multigres_tenant_directory_lookups_total{result="error"}`); n < 3 {
		t.Errorf("directory lookups counted as errors: %v, want at least 3 (initech, globex, acme)", n)
	}
	e.setDir(t, "GRANT SELECT ON tenant_directory TO "+proxytest.AuthUser)
	if got := whereNow(e.connect(t, "app_user.acme")); got != "c2" {
		t.Errorf("acme after the directory came back reached %s, want c2", got)
	}
}

// TestDirectoryAndMoveTenant: MOVE TENANT starts from the directory's
// cluster and its override comes first; once the directory names the new
// cluster, REFRESH TENANT drops the override (and the state file's line).
func TestDirectoryAndMoveTenant(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryTTL = time.Hour
	})
	con := e.console(t)
	rows := show(t, con, "MOVE TENANT acme TO c3")
	if len(rows) != 1 || rows[0]["from"] != "c2" || rows[0]["to"] != "c3" {
		t.Fatalf("MOVE TENANT acme TO c3 = %v, want from c2 (the directory's)", rows)
	}
	acme := e.connect(t, "app_user.acme")
	if got := whereNow(acme); got != "c3" {
		t.Errorf("acme after the move reached %s, want c3 (the override beats the directory)", got)
	}
	// The directory still says c2: REFRESH keeps the override.
	if rows := show(t, con, "REFRESH TENANT acme"); rows[0]["override_dropped"] != "false" || rows[0]["source"] != "override" {
		t.Errorf("REFRESH while the directory disagrees = %v, want the override kept", rows)
	}
	e.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
	rows = show(t, con, "REFRESH TENANT acme")
	if rows[0]["override_dropped"] != "true" || rows[0]["source"] != "tenant_directory" || rows[0]["cluster"] != "c3" {
		t.Errorf("REFRESH once the directory agrees = %v, want the override dropped, c3 by tenant_directory", rows)
	}
	for _, r := range show(t, con, "SHOW ROUTES") {
		if r["source"] == "override" {
			t.Errorf("an override is left: %v", r)
		}
	}
	if got := whereNow(acme); got != "c3" {
		t.Errorf("acme reached %s, want c3", got)
	}
}

// TestDirectoryCacheBounded: tenants a client invents cannot grow the
// cache past tenant_directory_cache_size, found rows or not, and a login
// that fails its password still leaves a bounded trace; nor do they push
// out the answer of a tenant that authenticated.
func TestDirectoryCacheBounded(t *testing.T) {
	t.Parallel()
	rows := map[string]string{"acme": "c3"}
	for i := range 20 {
		rows[fmt.Sprintf("t%02d", i)] = "c2"
	}
	e := newDirEnv(t, rows, func(c *config.Config) {
		c.TenantDirectoryCacheSize = 5
		c.AuthFailureDelay = 0
	})
	if got := whereNow(e.connect(t, "app_user.acme")); got != "c3" {
		t.Fatalf("acme reached %s, want c3", got)
	}
	for i := range 20 {
		_, err := e.tryConnect(t, fmt.Sprintf("app_user.t%02d", i), "wrong password")
		if pgCode(err) != "28P01" {
			t.Fatalf("t%02d with a wrong password: %v, want 28P01", i, err)
		}
	}
	n, acme := 0, false
	for _, r := range show(t, e.console(t), "SHOW ROUTES") {
		if r["source"] == "tenant_directory" {
			n++
			acme = acme || r["match"] == "acme"
		}
	}
	if !acme {
		t.Error("the answer of acme, whose login authenticated, was pushed out by 20 invented tenants")
	}
	if n == 0 || n > 5 {
		t.Errorf("%d cached directory answers after 20 tenants, want 1..5 (tenant_directory_cache_size)", n)
	}
}
