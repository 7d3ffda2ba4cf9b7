// Package tenant turns a client's username into a tenant identity: the
// login role plus one value per context variable, or a bypass user that
// passes through untouched. It is pure: no I/O, so it can be fuzzed and
// reasoned about in isolation.
//
// The username has the form role<tenant_separator>v1<value_separator>v2...
// and the error texts are the ones the Drizzle guide's Troubleshooting
// section promises, word for word.
package tenant

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// Rules are the parts of the configuration that decide identities.
type Rules struct {
	TenantSeparator  string
	ValueSeparator   string
	ContextVariables []string
	SuperuserBypass  []string
	TenantRoles      []string
	ValuePattern     *regexp.Regexp
	// ExtraProtected are more settings a tenant may not set at startup:
	// variables set by context resolvers, statement_timeout when multigres
	// sets it.
	ExtraProtected []string
}

// Identity is who a client is once its username is parsed.
type Identity struct {
	User   string   // the username exactly as the client sent it
	Role   string   // the role multigres logs in upstream as
	Bypass bool     // a superuser_bypass user: no context is injected
	Values []string // one per Rules.ContextVariables (nil for bypass)
	// Tenant is the tenant label: the context values joined by
	// value_separator, exactly as the username has them after the role
	// ("list123:user456" for app_user.list123:user456); "" for bypass
	// users. It is the one name of a tenant everywhere: the per-tenant
	// controls, the admin console (SHOW CLIENTS, SERVERS, TENANTS, KILL),
	// the Prometheus tenant label and the connection's log attributes.
	Tenant string
}

// Key is a stable string naming the tenant context, used to tell whether
// two identities would see the same rows.
func (id *Identity) Key() string {
	if id.Bypass {
		return id.Role
	}
	return id.Role + "\x00" + strings.Join(id.Values, "\x00")
}

// Parse splits user into an identity or returns a FATAL 28000 *wire.Error
// that says what is wrong and how to fix it.
func (r *Rules) Parse(user string) (*Identity, error) {
	if user == "" {
		return nil, wire.Fatal(wire.CodeInvalidAuthorization, "no PostgreSQL user name specified in startup packet")
	}
	if slices.Contains(r.SuperuserBypass, user) {
		return &Identity{User: user, Role: user, Bypass: true}, nil
	}
	role, rest, found := strings.Cut(user, r.TenantSeparator)
	if !found {
		return nil, wire.Fatal(wire.CodeInvalidAuthorization,
			"Username must contain context values separated by '%s'", r.TenantSeparator).
			WithDetail("Expected format: " + r.example("role", "value") + " (e.g. " + r.example("app_user", "acme") + ")")
	}
	if role == "" {
		return nil, wire.Fatal(wire.CodeInvalidAuthorization, "Username has an empty role before '%s'", r.TenantSeparator).
			WithDetail("Expected format: " + r.example("role", "value") + " (e.g. " + r.example("app_user", "acme") + ")")
	}
	values := strings.Split(rest, r.ValueSeparator)
	if len(values) != len(r.ContextVariables) {
		return nil, wire.Fatal(wire.CodeInvalidAuthorization,
			"Expected %d context value(s), got %d", len(r.ContextVariables), len(values)).
			WithDetail(fmt.Sprintf("context_variables = %s; separate the values with '%s', e.g. %s",
				strings.Join(r.ContextVariables, ", "), r.ValueSeparator, r.example(role, "value")))
	}
	for i, v := range values {
		if err := r.checkValue(i, v); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(r.TenantRoles, role) {
		return nil, wire.Fatal(wire.CodeInvalidAuthorization, "role %q is not a tenant role", truncate(role, 63)).
			WithHint("Add the role to tenant_roles, or connect as a superuser_bypass user without context values.")
	}
	// rest is the values joined by the value separator, as Split found them.
	return &Identity{User: user, Role: role, Values: values, Tenant: rest}, nil
}

func (r *Rules) checkValue(i int, v string) error {
	name := r.ContextVariables[i]
	if v == "" {
		return wire.Fatal(wire.CodeInvalidAuthorization, "context value %d (%s) is empty", i+1, name).
			WithDetail("Expected format: " + r.example("role", "value"))
	}
	if r.ValuePattern != nil && !r.ValuePattern.MatchString(v) {
		// The value itself is not echoed: it is attacker-chosen and may be huge.
		return wire.Fatal(wire.CodeInvalidAuthorization,
			"context value %d (%s) does not match tenant_value_pattern", i+1, name).
			WithDetail("tenant_value_pattern = " + r.ValuePattern.String())
	}
	return nil
}

// example renders a username in the configured format.
func (r *Rules) example(role, value string) string {
	vals := make([]string, len(r.ContextVariables))
	for i := range vals {
		vals[i] = fmt.Sprintf("%s%d", value, i+1)
	}
	if len(vals) == 1 && value != "value" {
		vals[0] = value
	}
	return role + r.TenantSeparator + strings.Join(vals, r.ValueSeparator)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
