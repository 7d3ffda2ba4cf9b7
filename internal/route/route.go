// Package route decides which PostgreSQL cluster serves a connection when
// tenants are spread over several independent clusters.
//
// A Table holds the static rules of the configuration: tenant_routes
// (tenant label → cluster, exact names and path.Match patterns, first
// match wins), database_routes (database → cluster, for connections no
// tenant rule places, bypass users included) and default_cluster. A
// DirCache holds the answers of the optional tenant directory (a query the
// frontend runs), consulted before the Table. A Router puts the runtime
// overrides of MOVE TENANT in front of both and counts changes in an
// epoch, so that a client that resolved its route at login re-resolves
// only after something changed: one atomic load per transaction, no
// lookup.
//
// The package is pure: no I/O, no clock. Encoding and parsing the override
// state file are here too; reading and writing it is the caller's.
package route

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// DefaultCluster is the name of the cluster at upstream_host and
// upstream_port, which every configuration has.
const DefaultCluster = "default"

// Source says which rule placed a tenant or a database on its cluster.
type Source int

// The sources, in the order they are consulted.
const (
	SourceOverride  Source = iota + 1 // MOVE TENANT, at runtime
	SourceDirectory                   // a row of tenant_directory_query
	SourceTenant                      // a tenant_routes item
	SourceDatabase                    // a database_routes item
	SourceDefault                     // default_cluster
)

func (s Source) String() string {
	switch s {
	case SourceOverride:
		return "override"
	case SourceDirectory:
		return "tenant_directory"
	case SourceTenant:
		return "tenant_routes"
	case SourceDatabase:
		return "database_routes"
	case SourceDefault:
		return "default_cluster"
	}
	return "none"
}

// Decision is where a connection goes and why.
type Decision struct {
	Cluster string
	Source  Source
	// Match is what matched: the tenant label of an override, the pattern
	// of a tenant_routes item, the database of a database_routes item, or
	// "*" for the default.
	Match string
}

// Rule is one "match:cluster" item of tenant_routes or database_routes.
type Rule struct {
	Match, Cluster string
}

// ParseRule splits "match:cluster" at its last ':' (tenant labels may
// contain ':', cluster names may not) and checks both halves: the match is
// a valid path.Match pattern, the cluster a valid cluster name. Cluster
// names are case-insensitive: the result has it in lower case.
func ParseRule(item string) (Rule, error) {
	i := strings.LastIndexByte(item, ':')
	if i <= 0 || i == len(item)-1 {
		return Rule{}, fmt.Errorf("%q must be name:cluster", item)
	}
	r := Rule{Match: item[:i], Cluster: strings.ToLower(item[i+1:])}
	if _, err := path.Match(r.Match, ""); err != nil {
		return Rule{}, fmt.Errorf("%q: %q is not a valid pattern: %v", item, r.Match, err)
	}
	if err := CheckClusterName(r.Cluster); err != nil {
		return Rule{}, fmt.Errorf("%q: %w", item, err)
	}
	return r, nil
}

// CheckClusterName accepts letters, digits, '_', '-' and '.', starting
// with a letter, digit or '_': names that read well in SHOW output and
// metric labels and never need quoting. Names are compared in lower case.
func CheckClusterName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("cluster name %q must be 1 to 63 characters", name)
	}
	for i, r := range name {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '-' || r == '.')
		if !ok {
			return fmt.Errorf("cluster name %q may contain only letters, digits, '_', and (after the first) '-' and '.'", name)
		}
	}
	return nil
}

// isPattern reports whether m has path.Match metacharacters.
func isPattern(m string) bool { return strings.ContainsAny(m, `*?[\`) }

// Table is the static routing of one configuration. It is immutable once
// made, so any number of goroutines may read it.
type Table struct {
	rules    []Rule         // tenant_routes, in order
	exact    map[string]int // exact tenant label → index of its rule
	patterns []int          // indexes of the pattern rules, in order
	dbs      map[string]Rule
	dbOrder  []Rule
	def      string // default_cluster; "" refuses unplaced tenants
}

// NewTable builds a table from the configuration's lists. A tenant or a
// database given twice is an error, since the later item could never
// apply; so is a rule naming a cluster for which known returns false
// (known may be nil to skip that check).
func NewTable(tenantRoutes, databaseRoutes []string, defaultCluster string, known func(string) bool) (*Table, error) {
	defaultCluster = strings.ToLower(defaultCluster)
	t := &Table{exact: map[string]int{}, dbs: map[string]Rule{}, def: defaultCluster}
	var errs []error
	seen := map[string]bool{}
	checkCluster := func(key, item, cluster string) {
		if known != nil && !known(cluster) {
			errs = append(errs, fmt.Errorf("%s: %q routes to cluster %q, which is not defined", key, item, cluster))
		}
	}
	for _, item := range tenantRoutes {
		r, err := ParseRule(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant_routes: %w", err))
			continue
		}
		if seen[r.Match] {
			errs = append(errs, fmt.Errorf("tenant_routes: %q is routed twice; the first item wins, so remove the other", r.Match))
			continue
		}
		seen[r.Match] = true
		checkCluster("tenant_routes", item, r.Cluster)
		idx := len(t.rules)
		t.rules = append(t.rules, r)
		if isPattern(r.Match) {
			t.patterns = append(t.patterns, idx)
		} else {
			t.exact[r.Match] = idx
		}
	}
	for _, item := range databaseRoutes {
		r, err := ParseRule(item)
		if err == nil && isPattern(r.Match) {
			err = fmt.Errorf("%q: database_routes takes database names, not patterns", item)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("database_routes: %w", err))
			continue
		}
		if _, dup := t.dbs[r.Match]; dup {
			errs = append(errs, fmt.Errorf("database_routes: database %q is routed twice", r.Match))
			continue
		}
		checkCluster("database_routes", item, r.Cluster)
		t.dbs[r.Match] = r
		t.dbOrder = append(t.dbOrder, r)
	}
	if defaultCluster != "" {
		if err := CheckClusterName(defaultCluster); err != nil {
			errs = append(errs, fmt.Errorf("default_cluster: %w", err))
		} else if known != nil && !known(defaultCluster) {
			errs = append(errs, fmt.Errorf("default_cluster: cluster %q is not defined", defaultCluster))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// tenantRule is the first tenant_routes item matching label, if any.
func (t *Table) tenantRule(label string) (Rule, bool) {
	first, ok := t.exact[label]
	if !ok {
		first = len(t.rules)
	}
	for _, i := range t.patterns {
		if i > first {
			break
		}
		if m, _ := path.Match(t.rules[i].Match, label); m {
			return t.rules[i], true
		}
	}
	if ok {
		return t.rules[first], true
	}
	return Rule{}, false
}

// Tenant places a tenant's connection to database: the first tenant_routes
// item matching label, else database's database_routes item, else
// default_cluster. ok is false when none applies (no default_cluster).
func (t *Table) Tenant(label, database string) (Decision, bool) {
	if r, ok := t.tenantRule(label); ok {
		return Decision{Cluster: r.Cluster, Source: SourceTenant, Match: r.Match}, true
	}
	if r, ok := t.dbs[database]; ok {
		return Decision{Cluster: r.Cluster, Source: SourceDatabase, Match: r.Match}, true
	}
	if t.def != "" {
		return Decision{Cluster: t.def, Source: SourceDefault, Match: "*"}, true
	}
	return Decision{}, false
}

// Bypass places a bypass user's connection to database: its
// database_routes item, else default_cluster, else DefaultCluster (a
// bypass user is never refused for want of a route).
func (t *Table) Bypass(database string) Decision {
	if r, ok := t.dbs[database]; ok {
		return Decision{Cluster: r.Cluster, Source: SourceDatabase, Match: r.Match}
	}
	if t.def != "" {
		return Decision{Cluster: t.def, Source: SourceDefault, Match: "*"}
	}
	return Decision{Cluster: DefaultCluster, Source: SourceDefault, Match: "*"}
}

// Default is default_cluster ("" when unplaced tenants are refused).
func (t *Table) Default() string { return t.def }

// Rules lists the table for SHOW ROUTES: the tenant_routes items in order,
// then the database_routes items, then the default as a SourceDefault
// decision matching "*" (absent when there is none).
func (t *Table) Rules() []Decision {
	out := make([]Decision, 0, len(t.rules)+len(t.dbOrder)+1)
	for _, r := range t.rules {
		out = append(out, Decision{Cluster: r.Cluster, Source: SourceTenant, Match: r.Match})
	}
	for _, r := range t.dbOrder {
		out = append(out, Decision{Cluster: r.Cluster, Source: SourceDatabase, Match: r.Match})
	}
	if t.def != "" {
		out = append(out, Decision{Cluster: t.def, Source: SourceDefault, Match: "*"})
	}
	return out
}
