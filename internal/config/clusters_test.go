package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func loadFile(t *testing.T, body string) (*Config, error) {
	t.Helper()
	return Load([]string{"--config", writeFile(t, "multigres.conf", body)}, nil)
}

func TestClusterSections(t *testing.T) {
	t.Parallel()
	c, err := loadFile(t, `upstream_host = pg-main
server_tls_mode = require
tenant_routes = acme:EU, big-*:dedicated, list123:*:eu
database_routes = reports:dedicated
default_cluster = default

[cluster eu]
host = pg-eu.internal
port = 5433

[Cluster dedicated]
host = "10.0.0.7"
server_tls_mode = disable

[multigres]
port = 7000
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7000 {
		t.Errorf("port after [multigres] = %d", c.Port)
	}
	got := c.ClusterList()
	for i := range got {
		got[i].Origin = ""
	}
	want := []ClusterConfig{
		{Name: "default", Host: "pg-main", Port: 5432, ServerTLSMode: "require"},
		{Name: "eu", Host: "pg-eu.internal", Port: 5433, ServerTLSMode: "require"},
		{Name: "dedicated", Host: "10.0.0.7", Port: 5432, ServerTLSMode: "disable"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ClusterList() = %+v\nwant %+v", got, want)
	}
	if !strings.HasSuffix(c.Clusters[0].Origin, "multigres.conf:7") {
		t.Errorf("origin = %q", c.Clusters[0].Origin)
	}
	if got[1].Addr() != "pg-eu.internal:5433" {
		t.Errorf("Addr() = %q", got[1].Addr())
	}
	tab, err := c.RouteTable()
	if err != nil {
		t.Fatal(err)
	}
	for label, cluster := range map[string]string{"acme": "eu", "big-x": "dedicated", "list123:u1": "eu", "other": "default"} {
		if d, ok := tab.Tenant(label, "app"); !ok || d.Cluster != cluster {
			t.Errorf("tenant %s -> %+v, want %s", label, d, cluster)
		}
	}
	if d := tab.Bypass("reports"); d.Cluster != "dedicated" {
		t.Errorf("bypass to reports -> %+v", d)
	}

	// Printed and loaded again, the sections come back.
	var b strings.Builder
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	back, err := loadFile(t, b.String())
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, b.String())
	}
	// Origins differ (another file); compare without them.
	a := back.ClusterList()
	for i := range a {
		a[i].Origin = ""
	}
	if !reflect.DeepEqual(a, want) || !slices.Equal(back.TenantRoutes, c.TenantRoutes) {
		t.Errorf("round trip: %+v, %v", a, back.TenantRoutes)
	}
}

func TestClusterErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ body, want string }{
		{"[cluster eu]\nport = 5433\n", "multigres.conf:1: cluster eu: host must be set"},
		{"[cluster eu]\nhost = x\nport = 0\n", "multigres.conf:3: cluster eu: port: must be 1..65535"},
		{"[cluster eu]\nhost = x\nserver_tls_mode = maybe\n", "cluster eu: server_tls_mode: must be one of"},
		{"[cluster eu]\nhost = x\nuser = y\n", `unknown key "user" in [cluster eu] (allowed: host, port, server_tls_mode, server_tls_ca)`},
		{"[cluster eu]\nhost = x\nhost = y\n", `key "host" already set in [cluster eu] on line 2`},
		{"[cluster eu]\nhost = x\n[cluster eu]\nhost = y\n", "multigres.conf:3: cluster eu: defined twice"},
		{"[cluster default]\nhost = x\n", "that name is the cluster at upstream_host and upstream_port"},
		{"[cluster e/u]\nhost = x\n", `cluster name "e/u" may contain only`},
		{"[cluster eu]\nhost = x\nserver_tls_ca = /nonexistent/ca.pem\n", "cluster eu: server_tls_ca:"},
		{"[clusters eu]\n", "unknown section [clusters eu] (allowed: [multigres], [resolver NAME], [cluster NAME])"},
		{"tenant_routes = acme:eu\n", `tenant_routes: "acme:eu" routes to cluster "eu", which is not defined`},
		{"tenant_routes = acme\n", `tenant_routes: "acme" must be name:cluster`},
		{"tenant_routes = acme:default,acme:default2\n", `"acme" is routed twice`},
		{"database_routes = rep*:default\n", "database_routes takes database names, not patterns"},
		{"default_cluster = eu\n", `default_cluster: cluster "eu" is not defined`},
		{"route_state_file = /nonexistent/dir/routes\n", "route_state_file: directory of /nonexistent/dir/routes does not exist"},
		{"tenant_directory_query = SELECT 1\ntenant_directory_dbname = dir\n", "tenant_directory_query: must take the tenant label as $1"},
		{"tenant_directory_query = SELECT c FROM d WHERE t = $1\n", "tenant_directory_dbname: must be set when tenant_directory_query is"},
		{"tenant_directory_query = SELECT c FROM d WHERE t = $1\ntenant_directory_dbname = dir\ntenant_directory_cluster = eu\n",
			`tenant_directory_cluster: cluster "eu" is not defined`},
		{"tenant_directory_query = SELECT c FROM d WHERE t = $1\ntenant_directory_dbname = dir\nauth_user = ''\nauth_file = /etc/hostname\n",
			"auth_user: must be set when tenant_directory_query is"},
		{"tenant_directory_ttl = 0\n", "tenant_directory_ttl"},
		{"tenant_directory_cache_size = 0\n", "tenant_directory_cache_size"},
	}
	for _, c := range cases {
		_, err := loadFile(t, c.body)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error = %v, want %q", c.body, err, c.want)
		}
	}
}

func TestNoDefaultCluster(t *testing.T) {
	t.Parallel()
	c, err := loadFile(t, "default_cluster = ''\ntenant_routes = acme:default\n")
	if err != nil {
		t.Fatal(err)
	}
	tab, _ := c.RouteTable()
	if _, ok := tab.Tenant("globex", "app"); ok {
		t.Error("globex routed without default_cluster")
	}
	if d := tab.Bypass("app"); d.Cluster != "default" {
		t.Errorf("bypass -> %+v, want the default cluster", d)
	}
}

func TestRouteStateFileChecked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "routes")
	if _, err := loadFile(t, "route_state_file = "+good+"\n"); err != nil {
		t.Errorf("a state file yet to be written: %v", err)
	}
	if err := os.WriteFile(good, []byte("acme:default\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFile(t, "route_state_file = "+good+"\n"); err != nil {
		t.Errorf("a valid state file: %v", err)
	}
	if err := os.WriteFile(good, []byte("acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFile(t, "route_state_file = "+good+"\n"); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad state file: %v", err)
	}
}

func TestClusterReload(t *testing.T) {
	t.Parallel()
	old, err := loadFile(t, "[cluster eu]\nhost = a\n")
	if err != nil {
		t.Fatal(err)
	}
	next, err := loadFile(t, "tenant_routes = acme:eu\n[cluster eu]\nhost = b\n")
	if err != nil {
		t.Fatal(err)
	}
	eff, applied, restart, err := ApplyReload(old, next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, "tenant_routes") || !slices.Equal(restart, []string{"[cluster]"}) {
		t.Errorf("applied %v, need restart %v", applied, restart)
	}
	if eff.Clusters[0].Host != "a" || !slices.Equal(eff.TenantRoutes, []string{"acme:eu"}) {
		t.Errorf("effective: clusters %+v, routes %v", eff.Clusters, eff.TenantRoutes)
	}
	// A route to a cluster that only a restart would add is refused.
	added, err := loadFile(t, "tenant_routes = acme:us\n[cluster eu]\nhost = a\n[cluster us]\nhost = c\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ApplyReload(old, added); err == nil || !strings.Contains(err.Error(), "a new section takes effect at restart") {
		t.Errorf("reload routing to a new cluster: %v", err)
	}
}

// TestClusterDocsExample parses the example multigres.conf of the
// "Tenants routed across PostgreSQL clusters" section of docs/scaling.md,
// so the documented format stays true. Its CA and state files do not
// exist here, so it is parsed and routed, not validated.
func TestClusterDocsExample(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(filepath.FromSlash("../../docs/scaling.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(text), "## Tenants routed across PostgreSQL clusters\n")
	if ok {
		_, example, ok = strings.Cut(example, "```ini\n")
	}
	if ok {
		example, _, ok = strings.Cut(example, "```")
	}
	if !ok {
		t.Fatal("scaling.md lacks an ```ini block under ## Tenants routed across PostgreSQL clusters")
	}
	settings, _, clusters, err := parseSections("example.conf", []byte(example))
	if err != nil {
		t.Fatalf("example does not parse: %v", err)
	}
	c := Default()
	c.Clusters = clusters
	for _, s := range settings {
		if err := s.apply(c); err != nil {
			t.Fatal(err)
		}
	}
	tab, err := c.RouteTable()
	if err != nil {
		t.Fatalf("example routes: %v", err)
	}
	for label, want := range map[string]string{"acme": "eu", "big-x": "dedicated", "list123:u": "eu", "globex": "default"} {
		if d, ok := tab.Tenant(label, "app"); !ok || d.Cluster != want {
			t.Errorf("example: %s -> %+v, want %s", label, d, want)
		}
	}
	if len(c.ClusterList()) != 3 || c.ClusterList()[2].ServerTLSMode != "verify-full" {
		t.Errorf("example clusters: %+v", c.ClusterList())
	}
}
