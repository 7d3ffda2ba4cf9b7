// Package cli runs PostgreSQL's own command-line clients, psql and pgbench
// (the binaries next to the server pgtest starts), through a real
// multigres proxy in front of a throwaway PostgreSQL, once per pool mode in
// poolModes: psql's \d of a protected table, \copy in and out, \watch, the
// guide's URLs and errors; pgbench -i through the superuser_bypass user,
// then -S and the TPC-B-like script as tenants, with pgbench's tables
// protected as described in protect-pgbench.sql.
package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	"github.com/multigres-proxy/multigres/test/compat/internal/compatenv"
)

func TestMain(m *testing.M) { pgtest.Main(m, nil) }

// poolModes are the pool modes the suite runs in.
var poolModes = []string{"session", "transaction"}

// watchSQL is what \watch needs: a sequence a tenant may advance, so that
// the watched query can fail (and stop \watch) on its fourth run.
const watchSQL = `
CREATE SEQUENCE watch_ticks;
GRANT USAGE ON SEQUENCE watch_ticks TO app_user;`

// bin is the path of a PostgreSQL client binary.
func bin(t *testing.T, name string) string {
	t.Helper()
	dir, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatalf("PostgreSQL binaries: %v", err)
	}
	p := filepath.Join(dir, name)
	compatenv.RequireFile(t, p, "install PostgreSQL's client binaries (make test does)")
	return p
}

// cli runs psql and pgbench against one Env.
type cli struct {
	e   *compatenv.Env
	dir string // working directory: \copy files live here
}

func newCLI(t *testing.T, e *compatenv.Env) *cli {
	t.Helper()
	return &cli{e: e, dir: t.TempDir()}
}

// url is user's URL through the proxy on port (the proxy's when "").
func (c *cli) url(user, password, port string) string {
	if port == "" {
		_, port, _ = strings.Cut(c.e.Proxy.Addr, ":")
	}
	return fmt.Sprintf("postgresql://%s:%s@127.0.0.1:%s/%s?sslmode=disable", user, password, port, c.e.DB)
}

func (c *cli) tenantURL(tenant string) string {
	return c.url(proxytest.AppUser+"."+tenant, proxytest.AppUserPassword, "")
}

func (c *cli) bypassURL() string { return c.url(pgtest.SuperUser, pgtest.SuperPassword, "") }

func (c *cli) cmd(t *testing.T, stdin string) compatenv.Cmd {
	t.Helper()
	return compatenv.Cmd{Dir: c.dir, Stdin: stdin, Timeout: 60 * time.Second,
		Env: append(c.e.Vars(t), "PGCONNECT_TIMEOUT=10", "PAGER=", "PSQL_PAGER=")}
}

// psql runs psql -X (no psqlrc) on url with args and fails on a non-zero exit.
func (c *cli) psql(t *testing.T, url, stdin string, args ...string) string {
	t.Helper()
	return compatenv.Run(t, c.cmd(t, stdin), bin(t, "psql"), append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", url}, args...)...)
}

// psqlErr is psql whose exit status is returned rather than checked.
func (c *cli) psqlErr(t *testing.T, url, stdin string, args ...string) (string, error) {
	t.Helper()
	return compatenv.RunErr(t, c.cmd(t, stdin), bin(t, "psql"), append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", url}, args...)...)
}

// lines runs one query with -At (unaligned, tuples only) and splits the output.
func (c *cli) lines(t *testing.T, url, query string) []string {
	t.Helper()
	out := strings.TrimSpace(c.psql(t, url, "", "-At", "-c", query))
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

func (c *cli) writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c *cli) readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantLines(t *testing.T, got []string, want []string, what string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func TestPsql(t *testing.T) {
	t.Parallel()
	compatenv.EachMode(t, poolModes, watchSQL, func(t *testing.T, e *compatenv.Env) {
		c := newCLI(t, e)
		acme := c.tenantURL("acme")

		t.Run("queries", func(t *testing.T) {
			wantLines(t, c.lines(t, acme, "SELECT name FROM contacts ORDER BY name"), []string{"Alice", "Bob"}, "acme")
			wantLines(t, c.lines(t, c.tenantURL("globex"), "SELECT name FROM contacts ORDER BY name"), []string{"Gina"}, "globex")
			// The README's demo: a DELETE aimed at another tenant deletes nothing.
			if out := c.psql(t, acme, "", "-c", "DELETE FROM contacts WHERE tenant_id = 'globex'"); strings.TrimSpace(out) != "DELETE 0" {
				t.Fatalf("acme's DELETE of globex's rows: %q, want DELETE 0", out)
			}
			wantLines(t, e.Query(t, "SELECT name FROM contacts WHERE tenant_id = 'globex'"), []string{"Gina"}, "globex's rows")
			// The guide's two-variable URL, with %3A for ':'.
			_, listPort, _ := strings.Cut(e.ListProxy.Addr, ":")
			lists := c.url("app_user.list123%3Auser456", proxytest.AppUserPassword, listPort)
			wantLines(t, c.lines(t, lists, "SELECT current_setting('app.current_list_id') || ' ' || current_setting('app.current_user_id')"),
				[]string{"list123 user456"}, "context variables")
			wantLines(t, c.lines(t, lists, "SELECT name FROM list_contacts ORDER BY name"), []string{"Lena", "Liam"}, "list123's contacts")
			// The guide's error for a username without a tenant.
			out, err := c.psqlErr(t, c.url("app_user", proxytest.AppUserPassword, ""), "", "-c", "SELECT 1")
			if err == nil || !strings.Contains(out, "FATAL:  Username must contain context values separated by '.'") {
				t.Fatalf("psql as app_user: %v\n%s", err, out)
			}
		})

		t.Run("describe", func(t *testing.T) {
			out := c.psql(t, acme, "", "-c", `\d contacts`)
			for _, want := range []string{
				`Table "public.contacts"`,
				"tenant_id | character varying(255)",
				`"contacts_pkey" PRIMARY KEY, btree (id)`,
				"Policies (forced row security enabled):",
				`POLICY "multigres_tenant_isolation"`,
				"multigres_context('app.current_tenant_id'",
			} {
				if !strings.Contains(out, want) {
					t.Errorf(`\d contacts lacks %q:%s`, want, "\n"+out)
				}
			}
			if out := c.psql(t, acme, "", "-c", `\dt`); !strings.Contains(out, "contacts") || !strings.Contains(out, "audit_log") {
				t.Errorf(`\dt:%s`, "\n"+out)
			}
		})

		t.Run("watch", func(t *testing.T) {
			// psql 15's \watch has no iteration count: it runs until the
			// query fails. The query divides by zero on its fourth run.
			out, _ := c.psqlErr(t, acme, `SELECT string_agg(name, ',' ORDER BY name) AS names,
				1 / (4 - nextval('watch_ticks')) AS countdown FROM contacts \watch 0.1
`)
			if n := strings.Count(out, "(every 0.1s)"); n != 3 {
				t.Fatalf(`\watch 0.1 ran %d times, want 3:%s`, n, "\n"+out)
			}
			if !strings.Contains(out, "division by zero") || strings.Count(out, "Alice,Bob") != 3 || strings.Contains(out, "Gina") {
				t.Fatalf(`\watch output:%s`, "\n"+out)
			}
		})
		t.Run("copy", func(t *testing.T) {
			// Out: only the tenant's rows, from the table and from a query.
			c.psql(t, acme, "", "-c", `\copy contacts (tenant_id, name, email) TO 'acme.csv' CSV`)
			if got, want := c.readFile(t, "acme.csv"), "acme,Alice,alice@acme.test\nacme,Bob,bob@acme.test\n"; got != want {
				t.Fatalf(`\copy contacts TO: %q, want %q`, got, want)
			}
			c.psql(t, acme, "", "-c", `\copy (SELECT name FROM contacts ORDER BY name) TO 'names.txt'`)
			if got := c.readFile(t, "names.txt"); got != "Alice\nBob\n" {
				t.Fatalf(`\copy (SELECT ...) TO: %q`, got)
			}
			// In: PostgreSQL refuses COPY FROM into a table with RLS for
			// the tenant; the bypass user copies rows of both tenants.
			c.writeFile(t, "in.csv", "acme,Carol,carol@acme.test\nglobex,Gus,gus@globex.test\n")
			out, err := c.psqlErr(t, acme, "", "-c", `\copy contacts (tenant_id, name, email) FROM 'in.csv' CSV`)
			if err == nil || !strings.Contains(out, "COPY FROM not supported with row-level security") {
				t.Fatalf(`tenant \copy FROM: %v, want the RLS refusal:%s`, err, "\n"+out)
			}
			if out := c.psql(t, c.bypassURL(), "", "-c", `\copy contacts (tenant_id, name, email) FROM 'in.csv' CSV`); strings.TrimSpace(out) != "COPY 2" {
				t.Fatalf(`bypass \copy FROM: %q, want COPY 2`, out)
			}
			wantLines(t, c.lines(t, acme, "SELECT name FROM contacts ORDER BY name"), []string{"Alice", "Bob", "Carol"}, "acme after the copy")
			wantLines(t, c.lines(t, c.tenantURL("globex"), "SELECT name FROM contacts ORDER BY name"), []string{"Gina", "Gus"}, "globex after the copy")
		})

	})
}

// processed matches pgbench's count of transactions.
var processed = regexp.MustCompile(`number of transactions actually processed: (\d+)/(\d+)`)

func TestPgbench(t *testing.T) {
	t.Parallel()
	compatenv.EachMode(t, poolModes, "", func(t *testing.T, e *compatenv.Env) {
		c := newCLI(t, e)
		pgbench := func(url string, args ...string) {
			t.Helper()
			out := compatenv.Run(t, c.cmd(t, ""), bin(t, "pgbench"), append(args, url)...)
			m := processed.FindStringSubmatch(out)
			if m == nil || m[1] != m[2] || m[1] == "0" || !strings.Contains(out, "number of failed transactions: 0") {
				t.Fatalf("pgbench %s: not every transaction ran:\n%s", strings.Join(args, " "), out)
			}
		}
		// Initialise through the proxy as the superuser_bypass user, then
		// make the tables tenant tables (all rows to acme).
		compatenv.Run(t, c.cmd(t, ""), bin(t, "pgbench"), "-i", "-s", "1", "-q", c.bypassURL())
		c.psql(t, c.bypassURL(), mustRead(t, "protect-pgbench.sql"), "-q")

		acme, globex := c.tenantURL("acme"), c.tenantURL("globex")
		wantLines(t, c.lines(t, acme, "SELECT count(*) FROM pgbench_accounts"), []string{"100000"}, "acme's accounts")
		wantLines(t, c.lines(t, globex, "SELECT count(*) FROM pgbench_accounts"), []string{"0"}, "globex's accounts")

		// -n: no VACUUM and TRUNCATE of pgbench_history before the run; a
		// tenant may do neither (and TRUNCATE would empty every tenant's).
		pgbench(acme, "-n", "-S", "-c", "4", "-j", "2", "-t", "200")
		pgbench(acme, "-n", "-S", "-M", "prepared", "-c", "4", "-j", "2", "-t", "200")
		pgbench(acme, "-n", "-c", "4", "-j", "2", "-t", "100")
		pgbench(acme, "-n", "-M", "extended", "-c", "2", "-t", "50")
		// globex runs the same TPC-B script over acme's rows: its UPDATEs
		// find nothing, its history rows are its own.
		c.writeFile(t, "tpcb-like.sql", mustRead(t, "tpcb-like.sql"))
		pgbench(globex, "-n", "-f", "tpcb-like.sql", "-s", "1", "-M", "prepared", "-c", "2", "-t", "100")

		wantLines(t, e.Query(t, "SELECT tenant_id || ' ' || count(*) FROM pgbench_history GROUP BY tenant_id ORDER BY tenant_id"),
			[]string{"acme 500", "globex 200"}, "history rows per tenant")
		// TPC-B's invariant holds over acme's history alone: globex's
		// deltas reached no balance.
		wantLines(t, e.Query(t, `SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history WHERE tenant_id = 'acme')
			AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(delta) FROM pgbench_history WHERE tenant_id = 'acme')
			AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT sum(delta) FROM pgbench_history WHERE tenant_id = 'acme')`),
			[]string{"true"}, "balances = acme's deltas")
		wantLines(t, e.Query(t, "SELECT count(*) FROM pgbench_accounts WHERE tenant_id <> 'acme'"), []string{"0"}, "accounts of other tenants")
	})
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
