package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ResolverConfig is one `[resolver NAME]` section: a query, run after
// authentication with bound parameters, whose single result row sets extra
// context variables. Resolvers run in file order; a resolver may use as
// parameters the context_variables and the outputs of earlier resolvers
// only, so file order is the dependency order and cycles cannot be written.
// Resolvers are read from the config file only and need a restart to change.
type ResolverConfig struct {
	Name     string        // section name
	Query    string        // query: SQL with $1..$n
	Params   []string      // params: variables supplying $1..$n
	Sets     []string      // sets: variables set from the result columns, in order
	Required bool          // required: no row closes the connection (default on)
	CacheTTL time.Duration // cache_ttl: how long a result is reused (default 60s; 0 = no cache)
	Origin   string        // "multigres.conf:12", the section header, for errors
}

// resolverKeys are the keys allowed inside a resolver section.
var resolverKeys = []string{"query", "params", "sets", "required", "cache_ttl"}

// defaultResolverTTL is cache_ttl when not given.
const defaultResolverTTL = 60 * time.Second

// ResolverRole is the role and password the resolver queries run as:
// resolver_user, or auth_user/auth_password when resolver_user is empty.
func (c *Config) ResolverRole() (user, password string) {
	if c.ResolverUser != "" {
		return c.ResolverUser, c.ResolverPassword
	}
	return c.AuthUser, c.AuthPassword
}

// ResolvedVariables lists every variable some resolver sets, in order.
func (c *Config) ResolvedVariables() []string {
	var out []string
	for _, r := range c.Resolvers {
		out = append(out, r.Sets...)
	}
	return out
}

// resolverSection collects one section's raw keys while the file is read:
// a [resolver NAME] section, or a [cluster NAME] one when kind is
// "cluster".
type resolverSection struct {
	kind   string // "" for a resolver
	name   string
	origin string
	values map[string]string
	lines  map[string]string // key -> origin of its line
}

// parseResolverName checks the section header `resolver NAME`.
func parseResolverName(header string) (string, bool) { return parseSectionName(header, "resolver") }

// parseSectionName checks the section header `kind NAME`.
func parseSectionName(header, kind string) (string, bool) {
	name, ok := strings.CutPrefix(header, kind)
	if !ok || name == "" || (name[0] != ' ' && name[0] != '\t') {
		return "", false
	}
	return strings.TrimSpace(name), true
}

var resolverNameOK = gucPart

// build turns the raw keys into a ResolverConfig; errors name the line.
func (s *resolverSection) build() (ResolverConfig, error) {
	r := ResolverConfig{Name: s.name, Required: true, CacheTTL: defaultResolverTTL, Origin: s.origin}
	var errs []error
	if !resolverNameOK.MatchString(s.name) {
		errs = append(errs, fmt.Errorf("%s: resolver name %q must match [A-Za-z_][A-Za-z0-9_$]*", s.origin, s.name))
	}
	r.Query = s.values["query"]
	if strings.TrimSpace(r.Query) == "" {
		errs = append(errs, fmt.Errorf("%s: resolver %s: query must be set", s.origin, s.name))
	}
	list := func(key string) []string {
		v, ok := s.values[key]
		if !ok {
			return nil
		}
		var out []string
		for _, p := range strings.Split(v, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			if p == "" {
				errs = append(errs, fmt.Errorf("%s: resolver %s: %s: empty name in list %q", s.lines[key], s.name, key, v))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	r.Params = list("params")
	r.Sets = list("sets")
	if len(r.Sets) == 0 {
		errs = append(errs, fmt.Errorf("%s: resolver %s: sets must name at least one variable", s.origin, s.name))
	}
	for _, name := range r.Sets {
		if err := checkGUCName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: resolver %s: sets: %w", s.lines["sets"], s.name, err))
		}
	}
	if v, ok := s.values["required"]; ok {
		b, err := boolKind{}.parse(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: resolver %s: required: %w, got %q", s.lines["required"], s.name, err, v))
		} else {
			r.Required = b.(bool)
		}
	}
	if v, ok := s.values["cache_ttl"]; ok {
		d, err := durKind{}.parse(v)
		if err == nil {
			err = durKind{}.check(d)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: resolver %s: cache_ttl: %w, got %q", s.lines["cache_ttl"], s.name, err, v))
		} else {
			r.CacheTTL = d.(time.Duration)
		}
	}
	return r, errors.Join(errs...)
}

// validateResolvers checks the rules between resolvers and the context
// variables: unique names, known parameters available before the resolver
// runs, and each set variable set exactly once and not a context variable.
func (c *Config) validateResolvers() []error {
	var errs []error
	known := map[string]string{} // variable -> who provides it
	for _, v := range c.ContextVariables {
		known[v] = "context_variables"
	}
	later := map[string]string{} // variable -> resolver that sets it
	for _, r := range c.Resolvers {
		for _, s := range r.Sets {
			later[s] = r.Name
		}
	}
	names := map[string]bool{}
	for _, r := range c.Resolvers {
		where := r.Origin
		if where == "" {
			where = "resolver " + r.Name
		}
		if names[r.Name] {
			errs = append(errs, fmt.Errorf("%s: resolver %s: defined twice", where, r.Name))
		}
		names[r.Name] = true
		for i, p := range r.Params {
			if _, ok := known[p]; ok {
				continue
			}
			if by, ok := later[p]; ok {
				errs = append(errs, fmt.Errorf("%s: resolver %s: params: $%d %s is set by resolver %s, which does not run before it (resolvers run in file order; a resolver may use only variables set before it)", where, r.Name, i+1, p, by))
			} else {
				errs = append(errs, fmt.Errorf("%s: resolver %s: params: $%d %s is neither in context_variables nor set by an earlier resolver", where, r.Name, i+1, p))
			}
		}
		if n := len(r.Params); n > 0 && !strings.Contains(r.Query, "$"+strconv.Itoa(n)) {
			errs = append(errs, fmt.Errorf("%s: resolver %s: query does not use $%d, but params lists %d variables", where, r.Name, n, n))
		}
		for _, s := range r.Sets {
			if err := checkGUCName(s); err != nil {
				errs = append(errs, fmt.Errorf("%s: resolver %s: sets: %w", where, r.Name, err))
				continue
			}
			switch by := known[s]; {
			case by == "context_variables":
				errs = append(errs, fmt.Errorf("%s: resolver %s: sets: %s is in context_variables; a resolver may not replace a value from the username", where, r.Name, s))
			case by != "":
				errs = append(errs, fmt.Errorf("%s: resolver %s: sets: %s is already set by %s", where, r.Name, s, by))
			case slices.Contains(r.Params, s):
				errs = append(errs, fmt.Errorf("%s: resolver %s: sets: %s is also one of its own params", where, r.Name, s))
			}
			known[s] = "resolver " + r.Name
		}
	}
	return errs
}

// writeResolvers prints the resolver sections as multigres.conf text.
func (c *Config) writeResolvers(b *strings.Builder) {
	for _, r := range c.Resolvers {
		fmt.Fprintf(b, "\n[resolver %s]\n", r.Name)
		fmt.Fprintf(b, "query = %s\n", quoteValue(r.Query))
		fmt.Fprintf(b, "params = %s\n", quoteValue(strings.Join(r.Params, ",")))
		fmt.Fprintf(b, "sets = %s\n", quoteValue(strings.Join(r.Sets, ",")))
		fmt.Fprintf(b, "required = %s\n", boolKind{}.format(r.Required))
		fmt.Fprintf(b, "cache_ttl = %s\n", durKind{}.format(r.CacheTTL))
	}
}
