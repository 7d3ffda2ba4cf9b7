package routing

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// dirAppName is the application_name of the directory's connections.
const dirAppName = "multigres tenant directory"

// superConn is a superuser connection to the test database on the
// default cluster (where the directory lives), past the proxy.
func (e *env) superConn(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), clusters[0].SuperURL(e.db))
	if err != nil {
		t.Fatalf("superuser connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dirBackends lists the pids of the directory's connections to the test
// database whose current or last query contains like (an SQL LIKE
// pattern) and whose state is state ("" for any).
func dirBackends(t *testing.T, su *pgx.Conn, db, like, state string) []int {
	t.Helper()
	rows, err := su.Query(testCtx(t), `SELECT pid FROM pg_stat_activity
		WHERE datname = $1 AND application_name = $2 AND query LIKE $3 AND ($4 = '' OR state = $4) ORDER BY pid`,
		db, dirAppName, like, state)
	if err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return pids
}

// slowDirQuery is a directory query that, for a tenant listed in
// dir_slow, sleeps that many seconds after taking its snapshot: a lookup
// that is in flight while the directory changes.
const slowDirQuery = `SELECT d.cluster FROM tenant_directory d
WHERE d.tenant = $1 AND (SELECT count(*) FROM dir_slow s, pg_sleep(s.secs) WHERE s.tenant = $1) >= 0`

// newSlowDirEnv is newDirEnv with slowDirQuery and an empty dir_slow.
func newSlowDirEnv(t *testing.T, rows map[string]string, mutate func(*config.Config)) *env {
	t.Helper()
	e := newDirEnv(t, rows, func(c *config.Config) {
		if mutate != nil {
			mutate(c)
		}
		c.TenantDirectoryQuery = slowDirQuery
	})
	e.setDir(t, "CREATE TABLE dir_slow (tenant text PRIMARY KEY, secs float8); GRANT SELECT ON dir_slow TO "+proxytest.AuthUser)
	return e
}

// startSlowLookup starts a login of tenant whose directory lookup sleeps
// secs seconds, and returns once that lookup is running (its snapshot
// taken); the login's result arrives on the channel.
func (e *env) startSlowLookup(t *testing.T, su *pgx.Conn, tenant string, secs int) <-chan error {
	t.Helper()
	e.setDir(t, fmt.Sprintf("INSERT INTO dir_slow VALUES ('%s', %d)", tenant, secs))
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, proxytest.URL(e.proxy.Addr, "app_user."+tenant, proxytest.AppUserPassword, e.db))
		if err == nil {
			conn.Close(context.Background())
		}
		done <- err
	}()
	waitUntil(t, 20*time.Second, "the slow directory lookup to run", func() bool {
		return len(dirBackends(t, su, e.db, "%dir_slow%", "active")) > 0
	})
	// Later lookups are fast; the running one keeps sleeping.
	e.setDir(t, "DELETE FROM dir_slow")
	return done
}

// TestDirectoryRefusesTenantWithSeveralRows: a directory query that
// returns more than one row for a tenant does not name one cluster;
// taking the first row (whichever the plan yields) would be a guess, so
// the login is refused with 08006.
func TestDirectoryRefusesTenantWithSeveralRows(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, nil, func(c *config.Config) {
		c.TenantDirectoryQuery = "SELECT cluster FROM tenant_placements WHERE tenant = $1"
	})
	e.setDir(t, `CREATE TABLE tenant_placements (tenant text, cluster text);
		INSERT INTO tenant_placements VALUES ('acme', 'c2'), ('acme', 'c3');
		GRANT SELECT ON tenant_placements TO `+proxytest.AuthUser)
	conn, err := e.tryConnect(t, "app_user.acme", proxytest.AppUserPassword)
	if err == nil {
		t.Fatalf("a tenant with rows naming c2 and c3 was let in and reached %s; want 08006 (the directory is ambiguous)", whereNow(conn))
	}
	if pgCode(err) != "08006" {
		t.Errorf("a tenant with two directory rows: %v, want 08006", err)
	}
}

// TestDirectoryChangeEndsSessionModeConnectionsElsewhere: in session mode
// a connection cannot follow its tenant, so once the directory places the
// tenant on another cluster (REFRESH TENANT, or a notification) its open
// sessions on the old cluster are ended, as MOVE TENANT ends them; they
// never go on reading and writing the cluster the tenant left.
func TestDirectoryChangeEndsSessionModeConnectionsElsewhere(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"refresh", "notify"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
				c.PoolMode = "session"
				c.TenantDirectoryTTL = time.Hour
				c.TenantDirectoryChannel = "tenant_moves"
			})
			acme := e.connect(t, "app_user.acme")
			if got := whereNow(acme); got != "c2" {
				t.Fatalf("acme reached %s, want c2", got)
			}
			if how == "refresh" {
				e.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
				if rows := show(t, e.console(t), "REFRESH TENANT acme"); len(rows) != 1 || rows[0]["cluster"] != "c3" {
					t.Fatalf("REFRESH TENANT acme = %v, want c3", rows)
				}
			} else {
				e.setDir(t, "BEGIN; UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'; SELECT pg_notify('tenant_moves', 'acme'); COMMIT")
				waitUntil(t, 20*time.Second, "a new acme login to reach c3", func() bool {
					return whereNow(e.connect(t, "app_user.acme")) == "c3"
				})
			}
			// The old session must not serve the tenant from c2 any more.
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := whereNow(acme)
				if got != "c2" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a session-mode connection of acme still reads and writes c2 after the directory moved acme to c3 (%s)", how)
				}
				time.Sleep(10 * time.Millisecond) // polling, not synchronisation: bounded by deadline
			}
		})
	}
}

// TestDirectoryForgetAllDropsAgreeingOverrides: forgetting every answer
// (REFRESH TENANTS, or a notification with an empty payload) drops a MOVE
// TENANT override the directory now agrees with, as forgetting that
// tenant does; otherwise the override hides every later change of the
// directory for that tenant.
func TestDirectoryForgetAllDropsAgreeingOverrides(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"refresh", "notify"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
				c.PoolMode = "transaction"
				c.TenantDirectoryTTL = time.Hour
				c.TenantDirectoryChannel = "tenant_moves"
			})
			con := e.console(t)
			if rows := show(t, con, "MOVE TENANT acme TO c3"); len(rows) != 1 || rows[0]["to"] != "c3" {
				t.Fatalf("MOVE TENANT acme TO c3 = %v", rows)
			}
			forgetAll := func(sql string) {
				if how == "refresh" {
					e.setDir(t, sql)
					show(t, con, "REFRESH TENANTS")
				} else {
					e.setDir(t, "BEGIN; "+sql+"; SELECT pg_notify('tenant_moves', ''); COMMIT")
				}
			}
			forgetAll("UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
			overrides := func() []string {
				var out []string
				for _, r := range show(t, con, "SHOW ROUTES") {
					if r["source"] == "override" {
						out = append(out, r["match"]+"="+r["cluster"])
					}
				}
				return out
			}
			waitUntil(t, 10*time.Second, "the override the directory agrees with to be dropped", func() bool {
				return len(overrides()) == 0
			})
			// The directory is in charge again.
			forgetAll("UPDATE tenant_directory SET cluster = 'default' WHERE tenant = 'acme'")
			waitUntil(t, 10*time.Second, "acme to follow the directory to default", func() bool {
				return whereNow(e.connect(t, "app_user.acme")) == "default"
			})
		})
	}
}

// TestDirectoryListenerReconnectsAndForgetsAll: when the LISTEN
// connection dies, notifications sent meanwhile are lost, so the listener
// reconnects and forgets every answer: a change made before it came back
// is followed without a notification, and notifications work again after.
// The channel name is quoted, whatever it holds.
func TestDirectoryListenerReconnectsAndForgetsAll(t *testing.T) {
	t.Parallel()
	const channel = `Tenant "Moves"; DROP TABLE tenant_directory; --`
	e := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryTTL = time.Hour
		c.TenantDirectoryChannel = channel
	})
	su := e.superConn(t)
	var listeners []int
	waitUntil(t, 20*time.Second, "the directory's LISTEN connection", func() bool {
		listeners = dirBackends(t, su, e.db, "LISTEN %", "")
		return len(listeners) == 1
	})
	acme := e.connect(t, "app_user.acme")
	if got := whereNow(acme); got != "c2" {
		t.Fatalf("acme reached %s, want c2", got)
	}
	// A change whose notification is lost (none is sent), then the
	// listener dies.
	e.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
	if _, err := su.Exec(testCtx(t), "SELECT pg_terminate_backend($1)", listeners[0]); err != nil {
		t.Fatalf("terminate the listener: %v", err)
	}
	waitUntil(t, 20*time.Second, "acme to follow its row once the listener came back", func() bool { return whereNow(acme) == "c3" })
	waitUntil(t, 20*time.Second, "a new LISTEN connection", func() bool {
		now := dirBackends(t, su, e.db, "LISTEN %", "")
		return len(now) == 1 && now[0] != listeners[0]
	})
	e.setDir(t, fmt.Sprintf("BEGIN; UPDATE tenant_directory SET cluster = 'default' WHERE tenant = 'acme'; SELECT pg_notify('%s', 'acme'); COMMIT",
		strings.ReplaceAll(channel, "'", "''")))
	waitUntil(t, 20*time.Second, "acme to follow a notification on the new connection", func() bool { return whereNow(acme) == "default" })
	var n int
	if err := su.QueryRow(testCtx(t), "SELECT count(*) FROM tenant_directory").Scan(&n); err != nil || n != 1 {
		t.Errorf("tenant_directory after LISTEN on a hostile channel name: %d rows, %v", n, err)
	}
}

// TestDirectoryLabelsAreParameters: a tenant label reaches the directory
// query as a parameter, never as SQL text, even when tenant_value_pattern
// lets quotes through: a label built to match another tenant's row finds
// no row and goes by the static routes.
func TestDirectoryLabelsAreParameters(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.TenantValuePattern = `^[A-Za-z0-9' =_-]{1,63}$`
		c.DefaultCluster = "default"
	})
	_, err := e.tryConnect(t, "app_user.zz' OR tenant = 'acme", "wrong password")
	if pgCode(err) != "28P01" {
		t.Fatalf("login with a quoted label: %v, want 28P01 (placed, then the password fails)", err)
	}
	for _, r := range show(t, e.console(t), "SHOW ROUTES") {
		if r["source"] == "tenant_directory" && r["cluster"] == "c2" {
			t.Errorf("a quoted label was placed on acme's cluster by the directory: %v", r)
		}
	}
}

// TestDirectoryLabelWithSeveralContextValues: with two context variables
// the label is both values joined by the value separator; the directory
// places it by that whole label, and a notification naming it forgets it.
func TestDirectoryLabelWithSeveralContextValues(t *testing.T) {
	t.Parallel()
	e := newDirEnv(t, map[string]string{"acme:u1": "c3", "acme": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.ContextVariables = []string{"app.current_tenant_id", "app.current_user_id"}
		c.TenantDirectoryTTL = time.Hour
		c.TenantDirectoryChannel = "tenant_moves"
	})
	conn := e.connect(t, "app_user.acme:u1")
	if got := whereNow(conn); got != "c3" {
		t.Fatalf("acme:u1 reached %s, want c3 (its own row, not acme's)", got)
	}
	e.setDir(t, "BEGIN; UPDATE tenant_directory SET cluster = 'default' WHERE tenant = 'acme:u1'; SELECT pg_notify('tenant_moves', 'acme:u1'); COMMIT")
	waitUntil(t, 20*time.Second, "acme:u1 to follow its notification", func() bool { return whereNow(conn) == "default" })
}

// TestDirectoryTransactionAfterForgetUsesFreshAnswer: a lookup that was
// already running when the directory changed carries the old answer. Once
// the change is announced (here REFRESH TENANTS, which returns after
// forgetting), a transaction-mode client's next transaction must not run
// on the old cluster by sharing that lookup's answer.
func TestDirectoryTransactionAfterForgetUsesFreshAnswer(t *testing.T) {
	t.Parallel()
	e := newSlowDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.PoolMode = "transaction"
		c.TenantDirectoryTTL = time.Hour
	})
	su := e.superConn(t)
	acme := e.connect(t, "app_user.acme")
	if got := whereNow(acme); got != "c2" {
		t.Fatalf("acme reached %s, want c2", got)
	}
	con := e.console(t)
	show(t, con, "REFRESH TENANTS") // nothing cached: the next login asks
	login := e.startSlowLookup(t, su, "acme", 3)
	e.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
	show(t, con, "REFRESH TENANTS")
	if got := whereNow(acme); got != "c3" {
		t.Errorf("acme's first transaction after REFRESH TENANTS reached %s, want c3 (the answer of a lookup that started before the change was used)", got)
	}
	select {
	case err := <-login:
		if err != nil {
			t.Logf("the slow login: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the slow login did not end")
	}
}

// TestDirectoryRefreshDuringLookupReportsFreshAnswer: REFRESH TENANT
// reports (and acts on) the directory as it is after the refresh, not the
// answer of a lookup that was running before.
func TestDirectoryRefreshDuringLookupReportsFreshAnswer(t *testing.T) {
	t.Parallel()
	e := newSlowDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.TenantDirectoryTTL = time.Hour
	})
	su := e.superConn(t)
	login := e.startSlowLookup(t, su, "acme", 3)
	e.setDir(t, "UPDATE tenant_directory SET cluster = 'c3' WHERE tenant = 'acme'")
	rows := show(t, e.console(t), "REFRESH TENANT acme")
	if len(rows) != 1 || rows[0]["cluster"] != "c3" {
		t.Errorf("REFRESH TENANT acme while an older lookup ran = %v, want cluster c3", rows)
	}
	select {
	case <-login:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow login did not end")
	}
	if got := whereNow(e.connect(t, "app_user.acme")); got != "c3" {
		t.Errorf("a new acme login after the refresh reached %s, want c3", got)
	}
}

// TestDirectoryShutdownWithLookupAndListener: Shutdown does not wait for
// a directory lookup that would run for a minute, nor hang on the
// listener; afterwards the directory's connections (the lookup's and the
// LISTEN one) are gone from the directory database.
func TestDirectoryShutdownWithLookupAndListener(t *testing.T) {
	t.Parallel()
	e := newSlowDirEnv(t, map[string]string{"acme": "c2"}, func(c *config.Config) {
		c.TenantDirectoryChannel = "tenant_moves"
	})
	su := e.superConn(t)
	waitUntil(t, 20*time.Second, "the directory's LISTEN connection", func() bool {
		return len(dirBackends(t, su, e.db, "LISTEN %", "")) == 1
	})
	login := e.startSlowLookup(t, su, "acme", 60)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- e.proxy.Server.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v, want nil (nothing but a directory lookup was running)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown hung with a directory lookup and the listener running")
	}
	select {
	case err := <-login:
		if err == nil {
			t.Error("the login whose lookup Shutdown cut short succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the login whose lookup Shutdown cut short did not end")
	}
	waitUntil(t, 20*time.Second, "the directory's connections to close", func() bool {
		return len(dirBackends(t, su, e.db, "%", "")) == 0
	})
}
