package admin_test

import (
	"bufio"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestTenantLabelTwoVariables: with two context variables the tenant has
// one name everywhere, the values as written after the role
// ("list123:user456"): SHOW CLIENTS, SHOW SERVERS, SHOW TENANTS and the
// Prometheus tenant label show it, and KILL takes it. A second tenant with
// the same first value stays apart from it everywhere.
func TestTenantLabelTwoVariables(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	p := proxytest.StartProxyMetrics(t, pg, func(c *config.Config) {
		c.AdminUsers = []string{adminUser}
		c.AuthDatabase = db
		c.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
	})
	ctx := ctxT(t)
	const label, sibling = "list123:user456", "list123:user789"
	killed := tenant(t, ctx, p, db, "app_user."+label)
	kept := tenant(t, ctx, p, db, "app_user."+sibling)
	con := console(t, ctx, p)

	cl := find(show(t, ctx, con, "SHOW CLIENTS"), "user", "app_user."+label)
	if cl == nil || cl["tenant"] != label {
		t.Fatalf("SHOW CLIENTS row = %v, want tenant %q", cl, label)
	}
	if sv := find(show(t, ctx, con, "SHOW SERVERS"), "link", cl["id"]); sv == nil || sv["tenant"] != label {
		t.Errorf("SHOW SERVERS row = %v, want tenant %q", sv, label)
	}
	tenants := show(t, ctx, con, "SHOW TENANTS")
	for _, name := range []string{label, sibling} {
		if row := find(tenants, "tenant", name); row == nil || num(t, row, "connections") != 1 {
			t.Errorf("SHOW TENANTS row of %q = %v (all: %v)", name, row, tenants)
		}
	}
	if row := find(tenants, "tenant", "list123"); row != nil {
		t.Errorf("SHOW TENANTS names a tenant by its first value: %v", row)
	}

	series := tenantConnections(t, p)
	if series[label] != "1" || series[sibling] != "1" || len(series) != 2 {
		t.Errorf("multigres_tenant_connections_total by tenant = %v, want %q and %q at 1", series, label, sibling)
	}

	if tag, err := run(ctx, con, "KILL "+label); err != nil || tag != "KILL 1" {
		t.Fatalf("KILL %s: %q %v", label, tag, err)
	}
	if _, err := killed.Exec(ctx, "SELECT 1"); err == nil {
		t.Errorf("%s survived KILL", label)
	}
	if _, err := kept.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("%s was closed by KILL %s: %v", sibling, label, err)
	}
}

// tenantConnections scrapes /metrics and returns the value of
// multigres_tenant_connections_total per tenant label, as printed.
func tenantConnections(t *testing.T, p *proxytest.Proxy) map[string]string {
	t.Helper()
	_, body := get(t, p.AdminURL+"/metrics")
	const prefix = `multigres_tenant_connections_total{tenant="`
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		name, value, _ := strings.Cut(rest, `"} `)
		out[name] = value
	}
	return out
}
