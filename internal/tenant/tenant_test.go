package tenant

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/wire"
)

func defaultRules() *Rules {
	return &Rules{
		TenantSeparator: ".", ValueSeparator: ":", ContextVariables: []string{"app.current_tenant_id"},
		SuperuserBypass: []string{"postgres"}, TenantRoles: []string{"app_user"},
		ValuePattern: regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`),
	}
}

func twoVarRules() *Rules {
	r := defaultRules()
	r.ContextVariables = []string{"app.current_list_id", "app.current_user_id"}
	return r
}

func TestParseTenant(t *testing.T) {
	t.Parallel()
	id, err := defaultRules().Parse("app_user.acme")
	if err != nil || id.Role != "app_user" || id.Bypass || len(id.Values) != 1 || id.Values[0] != "acme" || id.Tenant != "acme" {
		t.Fatalf("%+v %v", id, err)
	}
	// The tenant may itself contain the tenant separator: only the first splits.
	id, err = defaultRules().Parse("app_user.acme.eu")
	if err != nil || id.Values[0] != "acme.eu" {
		t.Fatalf("%+v %v", id, err)
	}
	id, err = twoVarRules().Parse("app_user.list123:user456")
	if err != nil || strings.Join(id.Values, ",") != "list123,user456" || id.Tenant != "list123:user456" {
		t.Fatalf("%+v %v", id, err)
	}
}

func TestParseBypass(t *testing.T) {
	t.Parallel()
	id, err := defaultRules().Parse("postgres")
	if err != nil || !id.Bypass || id.Role != "postgres" || id.Values != nil || id.Tenant != "" {
		t.Fatalf("%+v %v", id, err)
	}
}

// The guide's Troubleshooting texts, word for word.
func TestParseSeedErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		rules        *Rules
		user, msg    string
		detailSubstr string
	}{
		{defaultRules(), "app_user", "Username must contain context values separated by '.'", "Expected format: role.value1 (e.g. app_user.acme)"},
		{defaultRules(), "app_user.a:b", "Expected 1 context value(s), got 2", "context_variables = app.current_tenant_id"},
		{twoVarRules(), "app_user.list123", "Expected 2 context value(s), got 1", "separate the values with ':'"},
	}
	for _, c := range cases {
		_, err := c.rules.Parse(c.user)
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Fatalf("%s: %v", c.user, err)
		}
		if we.Code != "28000" || we.Severity != "FATAL" || we.Message != c.msg || !strings.Contains(we.Detail, c.detailSubstr) {
			t.Errorf("%s: got %s %s %q detail %q", c.user, we.Severity, we.Code, we.Message, we.Detail)
		}
	}
	r := defaultRules()
	r.TenantSeparator = "#"
	_, err := r.Parse("app_user")
	if !strings.Contains(err.Error(), "separated by '#'") {
		t.Fatalf("configured separator not in message: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, user := range []string{
		"", ".acme", "app_user.", "app_user.a'b", `app_user.a\b`, "app_user.a;b", "app_user.ünï", "app_user." + strings.Repeat("x", 9000),
		"postgres.acme", "other.acme", "app_user.a b", "app_user.a\x00b",
	} {
		_, err := defaultRules().Parse(user)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != "28000" || we.Severity != "FATAL" {
			t.Errorf("%q: want FATAL 28000, got %v", user, err)
			continue
		}
		if len(we.Message) > 200 {
			t.Errorf("%q: message echoes input (%d bytes)", user[:10], len(we.Message))
		}
	}
	_, err := twoVarRules().Parse("app_user.list:")
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty second value: %v", err)
	}
}

func TestProtectedSetting(t *testing.T) {
	t.Parallel()
	r := defaultRules()
	for _, n := range []string{"role", "ROLE", "session_authorization", "Session-Authorization", "app.current_tenant_id", "APP.Current-Tenant-Id"} {
		if !r.ProtectedSetting(n) {
			t.Errorf("%q not protected", n)
		}
	}
	for _, n := range []string{"search_path", "application_name", "app.other"} {
		if r.ProtectedSetting(n) {
			t.Errorf("%q protected", n)
		}
	}
}

func TestOptionSettings(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"-c app.current_tenant_id=globex":                "app.current_tenant_id",
		"-capp.current_tenant_id=globex":                 "app.current_tenant_id",
		"--app.current_tenant_id=globex":                 "app.current_tenant_id",
		"-c search_path=x  -c role=postgres":             "search_path,role",
		`-c search_path=a\ b -c app.current_tenant_id=x`: "search_path,app.current_tenant_id",
		"-c\tstatement_timeout=5":                        "statement_timeout",
		"-ec app.current_tenant_id=globex":               "app.current_tenant_id",
		"-Fc role=postgres":                              "role",
		"-B 10 -c work_mem=1MB":                          "work_mem",
		"-D/x -capp.current_tenant_id=y":                 "app.current_tenant_id",
		"":                                               "",
	}
	for in, want := range cases {
		var names []string
		for _, s := range OptionSettings(in) {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("%q: got %q want %q", in, got, want)
		}
	}
	if s := OptionSettings("-c client_encoding=SJIS"); len(s) != 1 || s[0].Value != "SJIS" {
		t.Errorf("value not kept: %+v", s)
	}
}

// FuzzParseUsername: any username either parses into an identity whose
// values re-join into the username (and whose tenant label is the part
// after the role), or is refused with FATAL 28000; a
// tenant identity always has exactly one value per context variable, each
// matching the pattern.
func FuzzParseUsername(f *testing.F) {
	for _, s := range []string{"app_user.acme", "app_user.list123:user456", "postgres", "app_user", ".x", "app_user.a'b;--", "app_user.\x00", "app_user.ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		for _, r := range []*Rules{defaultRules(), twoVarRules()} {
			id, err := r.Parse(user)
			if err != nil {
				var we *wire.Error
				if !errors.As(err, &we) || we.Code != "28000" || we.Severity != "FATAL" {
					t.Fatalf("%q: %v", user, err)
				}
				continue
			}
			if id.Bypass {
				if user != "postgres" {
					t.Fatalf("%q became a bypass user", user)
				}
				continue
			}
			if len(id.Values) != len(r.ContextVariables) {
				t.Fatalf("%q: %d values", user, len(id.Values))
			}
			for _, v := range id.Values {
				if !r.ValuePattern.MatchString(v) {
					t.Fatalf("%q: value %q escapes the pattern", user, v)
				}
			}
			if id.Role+r.TenantSeparator+strings.Join(id.Values, r.ValueSeparator) != user || id.Role != "app_user" {
				t.Fatalf("%q does not round-trip: %+v", user, id)
			}
			if id.Tenant != strings.Join(id.Values, r.ValueSeparator) || id.Role+r.TenantSeparator+id.Tenant != user {
				t.Fatalf("%q: tenant label %q is not the values as written", user, id.Tenant)
			}
		}
	})
}

// FuzzOptionSettings: splitting never panics, and a plain "-c name=v"
// prefix is always found.
func FuzzOptionSettings(f *testing.F) {
	f.Add("-c app.current_tenant_id=x")
	f.Add(`--role=postgres \ -c`)
	f.Fuzz(func(t *testing.T, opts string) {
		_ = OptionSettings(opts)
		got := OptionSettings("-c role=x " + opts)
		if len(got) == 0 || got[0].Name != "role" {
			t.Fatalf("lost leading -c role: %q", got)
		}
	})
}
