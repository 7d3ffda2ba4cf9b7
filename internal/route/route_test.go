package route

import (
	"reflect"
	"strings"
	"testing"
)

func known(names ...string) func(string) bool {
	return func(n string) bool {
		for _, k := range names {
			if k == n {
				return true
			}
		}
		return false
	}
}

func TestTableTenant(t *testing.T) {
	t.Parallel()
	tab, err := NewTable(
		[]string{"acme:EU", "big-*:dedicated", "big-special:eu", "list123:*:us", "list1?:*:eu", "[xy]*:us"},
		[]string{"reports:analytics"},
		"default", known("default", "eu", "us", "dedicated", "analytics"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		label, db string
		want      Decision
	}{
		{"acme", "app", Decision{"eu", SourceTenant, "acme"}},
		{"acme", "reports", Decision{"eu", SourceTenant, "acme"}}, // a tenant rule beats the database's
		{"acme2", "app", Decision{"default", SourceDefault, "*"}},
		{"big-corp", "app", Decision{"dedicated", SourceTenant, "big-*"}},
		// An exact item after a matching pattern never applies: first match wins.
		{"big-special", "app", Decision{"dedicated", SourceTenant, "big-*"}},
		{"list123:user456", "app", Decision{"us", SourceTenant, "list123:*"}},
		{"list12:user456", "app", Decision{"eu", SourceTenant, "list1?:*"}},
		{"x-ray", "app", Decision{"us", SourceTenant, "[xy]*"}},
		{"zeta", "reports", Decision{"analytics", SourceDatabase, "reports"}},
		{"", "app", Decision{"default", SourceDefault, "*"}},
	}
	for _, c := range cases {
		got, ok := tab.Tenant(c.label, c.db)
		if !ok || got != c.want {
			t.Errorf("Tenant(%q, %q) = %+v, %v; want %+v", c.label, c.db, got, ok, c.want)
		}
	}
}

func TestTableExactBeforeLaterPattern(t *testing.T) {
	t.Parallel()
	tab, err := NewTable([]string{"acme:eu", "a*:us"}, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tab.Tenant("acme", "db"); got.Cluster != "eu" {
		t.Errorf("acme -> %+v, want eu (the exact item comes first)", got)
	}
	if got, _ := tab.Tenant("alpha", "db"); got.Cluster != "us" {
		t.Errorf("alpha -> %+v, want us", got)
	}
	if got, ok := tab.Tenant("zeta", "db"); ok {
		t.Errorf("zeta -> %+v, want no route without default_cluster", got)
	}
}

func TestTableBypass(t *testing.T) {
	t.Parallel()
	tab, _ := NewTable(nil, []string{"reports:analytics"}, "", nil)
	if got := tab.Bypass("reports"); got.Cluster != "analytics" || got.Source != SourceDatabase {
		t.Errorf("Bypass(reports) = %+v", got)
	}
	if got := tab.Bypass("app"); got.Cluster != DefaultCluster || got.Source != SourceDefault {
		t.Errorf("Bypass(app) without default_cluster = %+v, want the default cluster", got)
	}
	tab, _ = NewTable(nil, nil, "eu", nil)
	if got := tab.Bypass("app"); got.Cluster != "eu" {
		t.Errorf("Bypass(app) with default_cluster eu = %+v", got)
	}
}

func TestNewTableErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tenants, dbs []string
		def          string
		want         string
	}{
		{[]string{"acme"}, nil, "default", `"acme" must be name:cluster`},
		{[]string{"acme:"}, nil, "default", `must be name:cluster`},
		{[]string{":eu"}, nil, "default", `must be name:cluster`},
		{[]string{"[a:eu"}, nil, "default", `not a valid pattern`},
		{[]string{"acme:e/u"}, nil, "default", `cluster name "e/u" may contain only`},
		{[]string{"acme:eu", "acme:us"}, nil, "default", `"acme" is routed twice`},
		{[]string{"acme:nowhere"}, nil, "default", `routes to cluster "nowhere", which is not defined`},
		{nil, []string{"rep*:eu"}, "default", `not patterns`},
		{nil, []string{"r:eu", "r:us"}, "default", `database "r" is routed twice`},
		{nil, []string{"r:mars"}, "default", `database_routes: "r:mars" routes to cluster "mars"`},
		{nil, nil, "mars", `default_cluster: cluster "mars" is not defined`},
		{nil, nil, "-x", `default_cluster: cluster name "-x"`},
	}
	for _, c := range cases {
		_, err := NewTable(c.tenants, c.dbs, c.def, known("default", "eu", "us"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewTable(%q, %q, %q) error = %v, want %q", c.tenants, c.dbs, c.def, err, c.want)
		}
	}
}

func TestCheckClusterName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"default", "eu-west.1", "_x", "C2"} {
		if err := CheckClusterName(ok); err != nil {
			t.Errorf("CheckClusterName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", ".x", "a b", "a:b", "a/b", strings.Repeat("a", 64)} {
		if err := CheckClusterName(bad); err == nil {
			t.Errorf("CheckClusterName(%q) accepted", bad)
		}
	}
}

func TestRouterOverridesAndEpoch(t *testing.T) {
	t.Parallel()
	tab, _ := NewTable([]string{"acme:c1"}, nil, "c1", nil)
	r := NewRouter(tab)
	e0 := r.Epoch()
	if d, _ := r.Tenant("acme", "db", DirAnswer{}); d.Cluster != "c1" || d.Source != SourceTenant {
		t.Fatalf("before the override: %+v", d)
	}
	r.SetOverride("acme", "c2")
	if r.Epoch() == e0 {
		t.Error("an override did not change the epoch")
	}
	if d, _ := r.Tenant("acme", "db", DirAnswer{}); d != (Decision{"c2", SourceOverride, "acme"}) {
		t.Errorf("after the override: %+v", d)
	}
	if d, _ := r.Tenant("globex", "db", DirAnswer{}); d.Cluster != "c1" {
		t.Errorf("another tenant moved: %+v", d)
	}

	// A reload that does not mention acme keeps the override.
	e1 := r.Epoch()
	other, _ := NewTable([]string{"globex:c3"}, nil, "c1", nil)
	if absorbed := r.SetTable(other); len(absorbed) != 0 {
		t.Errorf("absorbed %v", absorbed)
	}
	if r.Epoch() == e1 {
		t.Error("a new table did not change the epoch")
	}
	if d, _ := r.Tenant("acme", "db", DirAnswer{}); d.Cluster != "c2" || d.Source != SourceOverride {
		t.Errorf("override lost on reload: %+v", d)
	}
	// A reload whose rules agree absorbs it.
	agree, _ := NewTable([]string{"a*:c2"}, nil, "c1", nil)
	if absorbed := r.SetTable(agree); !reflect.DeepEqual(absorbed, []string{"acme"}) {
		t.Errorf("absorbed %v, want [acme]", absorbed)
	}
	if d, _ := r.Tenant("acme", "db", DirAnswer{}); d.Cluster != "c2" || d.Source != SourceTenant {
		t.Errorf("after absorption: %+v", d)
	}
	if len(r.Overrides()) != 0 {
		t.Errorf("overrides left: %v", r.Overrides())
	}
}

func TestRouterNoRoute(t *testing.T) {
	t.Parallel()
	tab, _ := NewTable([]string{"acme:c1"}, nil, "", nil)
	r := NewRouter(tab)
	if d, ok := r.Tenant("globex", "db", DirAnswer{}); ok {
		t.Errorf("globex routed to %+v without default_cluster", d)
	}
	r.ReplaceOverrides(map[string]string{"globex": "c2"})
	if d, ok := r.Tenant("globex", "db", DirAnswer{}); !ok || d.Cluster != "c2" {
		t.Errorf("globex with an override: %+v, %v", d, ok)
	}
}

func TestOverridesRoundTrip(t *testing.T) {
	t.Parallel()
	in := map[string]string{"acme": "c2", "list123:user456": "eu", "b": "c1"}
	text := EncodeOverrides(in)
	if !strings.HasPrefix(string(text), "# multigres route overrides") ||
		!strings.Contains(string(text), "acme:c2\nb:c1\nlist123:user456:eu\n") {
		t.Errorf("encoded:\n%s", text)
	}
	out, err := DecodeOverrides(text)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("decoded %v, %v; want %v", out, err, in)
	}
	if out, err := DecodeOverrides(nil); err != nil || len(out) != 0 {
		t.Errorf("empty file: %v, %v", out, err)
	}
	for _, bad := range []string{"acme\n", "acme:c1\nacme:c2\n", "a*:c1\n", "acme:c 1\n"} {
		if _, err := DecodeOverrides([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line ") {
			t.Errorf("DecodeOverrides(%q) error = %v", bad, err)
		}
	}
}

func TestSourceString(t *testing.T) {
	t.Parallel()
	want := map[Source]string{SourceOverride: "override", SourceTenant: "tenant_routes", SourceDatabase: "database_routes",
		SourceDefault: "default_cluster", 0: "none"}
	for s, w := range want {
		if s.String() != w {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), w)
		}
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	tab, _ := NewTable([]string{"acme:eu", "big-*:dedicated"}, []string{"reports:analytics"}, "default", nil)
	want := []Decision{{"eu", SourceTenant, "acme"}, {"dedicated", SourceTenant, "big-*"},
		{"analytics", SourceDatabase, "reports"}, {"default", SourceDefault, "*"}}
	if got := tab.Rules(); !reflect.DeepEqual(got, want) {
		t.Errorf("Rules() = %+v, want %+v", got, want)
	}
}
