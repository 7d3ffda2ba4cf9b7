package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const resolverHeader = "context_variables = app.current_user_id\n"

// loadResolvers loads a file made of the header plus body.
func loadResolvers(t *testing.T, body string) (*Config, error) {
	t.Helper()
	path := writeFile(t, "multigres.conf", resolverHeader+body)
	return Load([]string{"--config", path}, nil)
}

func TestResolverSections(t *testing.T) {
	t.Parallel()
	c, err := loadResolvers(t, `resolver_user = multigres_resolver
resolver_password = 's3cret#x'

[resolver org]
query = SELECT org_id, role FROM org_members WHERE user_id = $1
params = app.current_user_id
sets = app.org_id, APP.org_role

[Resolver plan]
query = "SELECT plan FROM orgs WHERE id = $1"
params = app.org_id
sets = app.org_plan
required = off
cache_ttl = 300ms

[multigres]
port = 7000
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []ResolverConfig{
		{Name: "org", Query: "SELECT org_id, role FROM org_members WHERE user_id = $1",
			Params: []string{"app.current_user_id"}, Sets: []string{"app.org_id", "app.org_role"},
			Required: true, CacheTTL: 60 * time.Second},
		{Name: "plan", Query: "SELECT plan FROM orgs WHERE id = $1",
			Params: []string{"app.org_id"}, Sets: []string{"app.org_plan"}, Required: false, CacheTTL: 300 * time.Millisecond},
	}
	got := c.Clone().Resolvers
	for i := range got {
		if !strings.HasSuffix(got[i].Origin, []string{":5", ":10"}[i]) {
			t.Errorf("resolver %d origin = %q", i, got[i].Origin)
		}
		got[i].Origin = ""
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolvers = %+v\nwant %+v", got, want)
	}
	if c.Port != 7000 {
		t.Errorf("[multigres] after a resolver section: port = %d", c.Port)
	}
	if u, p := c.ResolverRole(); u != "multigres_resolver" || p != "s3cret#x" {
		t.Errorf("ResolverRole = %q, %q", u, p)
	}
	if got := strings.Join(c.ResolvedVariables(), ","); got != "app.org_id,app.org_role,app.org_plan" {
		t.Errorf("ResolvedVariables = %q", got)
	}
	// The printout loads back to the same resolvers, and hides the password.
	out := c.String()
	if strings.Contains(out, "s3cret") {
		t.Errorf("printout shows resolver_password:\n%s", out)
	}
	back, err := loadResolvers(t, strings.Replace(out, "context_variables = app.current_user_id\n", "", 1))
	if err != nil {
		t.Fatalf("printout does not load: %v\n%s", err, out)
	}
	for i := range back.Resolvers {
		back.Resolvers[i].Origin = c.Resolvers[i].Origin
	}
	if !reflect.DeepEqual(back.Resolvers, c.Resolvers) {
		t.Errorf("round trip: %+v\nwant %+v", back.Resolvers, c.Resolvers)
	}
}

func TestResolverRoleDefaultsToAuthUser(t *testing.T) {
	t.Parallel()
	c := Default()
	c.AuthUser, c.AuthPassword = "au", "ap"
	if u, p := c.ResolverRole(); u != "au" || p != "ap" {
		t.Errorf("ResolverRole = %q, %q; want auth_user and auth_password", u, p)
	}
}

func TestResolverErrors(t *testing.T) {
	t.Parallel()
	const ok = "query = SELECT 1 WHERE $1 <> ''\nparams = app.current_user_id\nsets = app.x\n"
	cases := []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "[resolver a]\n" + ok + "ttl = 5s\n", []string{"multigres.conf:6:", `unknown key "ttl" in [resolver a]`}},
		{"duplicate key", "[resolver a]\n" + ok + "sets = app.y\n", []string{"multigres.conf:6:", `key "sets" already set in [resolver a] on line 5`}},
		{"top-level key in section", "[resolver a]\n" + ok + "port = 7000\n", []string{"multigres.conf:6:", `unknown key "port" in [resolver a]`}},
		{"no name", "[resolver]\n" + ok, []string{"multigres.conf:2:", "unknown section [resolver]"}},
		{"bad name", "[resolver a b]\n" + ok, []string{"multigres.conf:2:", `resolver name "a b"`}},
		{"other section", "[pgbouncer]\n", []string{"multigres.conf:2:", "unknown section [pgbouncer]"}},
		{"no query", "[resolver a]\nparams = app.current_user_id\nsets = app.x\n", []string{"multigres.conf:2:", "resolver a: query must be set"}},
		{"no sets", "[resolver a]\nquery = SELECT 1\n", []string{"multigres.conf:2:", "resolver a: sets must name at least one variable"}},
		{"bad set name", "[resolver a]\nquery = SELECT 1\nsets = nodot\n", []string{"multigres.conf:4:", `"nodot" must contain a dot`}},
		{"empty list item", "[resolver a]\nquery = SELECT 1\nsets = app.x,,app.y\n", []string{"multigres.conf:4:", "sets: empty name"}},
		{"bad required", "[resolver a]\n" + ok + "required = maybe\n", []string{"multigres.conf:6:", "resolver a: required:", `"maybe"`}},
		{"bad ttl", "[resolver a]\n" + ok + "cache_ttl = -1s\n", []string{"multigres.conf:6:", "resolver a: cache_ttl:", "must not be negative"}},
		{"unknown param", "[resolver a]\nquery = SELECT $1\nparams = app.nope\nsets = app.x\n", []string{"multigres.conf:2:", "$1 app.nope is neither in context_variables nor set by an earlier resolver"}},
		{"later param", "[resolver a]\nquery = SELECT $1\nparams = app.y\nsets = app.x\n[resolver b]\nquery = SELECT $1\nparams = app.x\nsets = app.y\n",
			[]string{"resolver a: params: $1 app.y is set by resolver b, which does not run before it"}},
		{"own output as param", "[resolver a]\nquery = SELECT $1\nparams = app.x\nsets = app.x\n", []string{"$1 app.x is set by resolver a, which does not run before it"}},
		{"query lacks $n", "[resolver a]\nquery = SELECT 1\nparams = app.current_user_id\nsets = app.x\n", []string{"resolver a: query does not use $1"}},
		{"sets a context variable", "[resolver a]\nquery = SELECT 1\nsets = app.current_user_id\n", []string{"resolver a: sets: app.current_user_id is in context_variables"}},
		{"sets twice", "[resolver a]\nquery = SELECT 1\nsets = app.x\n[resolver b]\nquery = SELECT 1\nsets = app.x\n", []string{"resolver b: sets: app.x is already set by resolver a"}},
		{"same name twice", "[resolver a]\nquery = SELECT 1\nsets = app.x\n[resolver a]\nquery = SELECT 1\nsets = app.y\n", []string{"multigres.conf:5:", "resolver a: defined twice"}},
		{"no role", "auth_user = \"\"\nauth_file = /dev/null\n[resolver a]\nquery = SELECT 1\nsets = app.x\n", []string{"resolver_user: must be set"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadResolvers(t, tc.body)
			if err == nil {
				t.Fatalf("loaded, want error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestResolversNeedRestart(t *testing.T) {
	t.Parallel()
	old := Default()
	next := Default()
	next.Resolvers = []ResolverConfig{{Name: "a", Query: "SELECT 1", Sets: []string{"app.x"}, Required: true}}
	next.LogLevel = "debug"
	eff, applied, restart, err := ApplyReload(old, next)
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.Resolvers) != 0 {
		t.Errorf("reload applied resolvers: %+v", eff.Resolvers)
	}
	if !strings.Contains(strings.Join(restart, ","), "[resolver]") || strings.Join(applied, ",") != "log_level" {
		t.Errorf("applied %v, needRestart %v", applied, restart)
	}
}

// TestResolverDocsExample loads the example multigres.conf of the "Context
// resolvers" section of docs/operations.md, so the documented format stays
// true.
func TestResolverDocsExample(t *testing.T) {
	t.Parallel()
	text, err := os.ReadFile(filepath.FromSlash("../../docs/operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(text), "## Context resolvers\n")
	if ok {
		_, example, ok = strings.Cut(example, "```ini\n")
	}
	if ok {
		example, _, ok = strings.Cut(example, "```")
	}
	if !ok {
		t.Fatal("operations.md lacks an ```ini block under ## Context resolvers")
	}
	c, err := Load([]string{"--config", writeFile(t, "multigres.conf", example)}, nil)
	if err != nil {
		t.Fatalf("example does not load: %v", err)
	}
	if len(c.Resolvers) != 2 || c.Resolvers[1].Params[0] != "app.org_id" || c.ResolverUser != "multigres_resolver" {
		t.Errorf("example resolvers = %+v", c.Resolvers)
	}
}
