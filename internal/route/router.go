package route

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Router is the routing in effect: runtime overrides (MOVE TENANT) in
// front of the configuration's Table. Every change bumps Epoch, so a
// client that cached its Decision compares one number per transaction and
// resolves again only after a change. The zero value is not usable; make
// one with NewRouter.
type Router struct {
	epoch atomic.Uint64
	table atomic.Pointer[Table]

	mu        sync.RWMutex
	overrides map[string]string // tenant label → cluster
}

// NewRouter routes by t, with no overrides.
func NewRouter(t *Table) *Router {
	r := &Router{overrides: map[string]string{}}
	r.table.Store(t)
	r.epoch.Store(1)
	return r
}

// Epoch changes whenever a decision may have changed.
func (r *Router) Epoch() uint64 { return r.epoch.Load() }

// Table is the static table in effect.
func (r *Router) Table() *Table { return r.table.Load() }

// Tenant places a tenant's connection to database: its override, else
// the tenant directory's answer dir (a row found places the tenant; the
// zero DirAnswer, no row or no directory, leaves it to the table), else
// the table's decision. ok is false when nothing places it.
func (r *Router) Tenant(label, database string, dir DirAnswer) (Decision, bool) {
	if d, ok := r.Override(label); ok {
		return d, true
	}
	if dir.Found() {
		return Decision{Cluster: dir.Cluster, Source: SourceDirectory, Match: label}, true
	}
	return r.table.Load().Tenant(label, database)
}

// Bypass places a bypass user's connection (see Table.Bypass).
func (r *Router) Bypass(database string) Decision { return r.table.Load().Bypass(database) }

// SetTable installs a new static table (a reload). Overrides stay in front
// of it, except those the table now agrees with: a tenant whose
// tenant_routes item routes it to its override's cluster no longer needs
// the override, which is dropped and returned.
func (r *Router) SetTable(t *Table) (absorbed []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for label, cluster := range r.overrides {
		if rule, ok := t.tenantRule(label); ok && rule.Cluster == cluster {
			delete(r.overrides, label)
			absorbed = append(absorbed, label)
		}
	}
	r.table.Store(t)
	r.epoch.Add(1)
	slices.Sort(absorbed)
	return absorbed
}

// SetOverride routes label to cluster ahead of the table.
func (r *Router) SetOverride(label, cluster string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overrides[label] = cluster
	r.epoch.Add(1)
}

// Overrides returns a copy of the overrides.
func (r *Router) Overrides() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return maps.Clone(r.overrides)
}

// ReplaceOverrides installs overrides wholesale (the state file read at
// startup).
func (r *Router) ReplaceOverrides(o map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.overrides = maps.Clone(o)
	if r.overrides == nil {
		r.overrides = map[string]string{}
	}
	r.epoch.Add(1)
}

// stateHeader starts every state file, so a wrong file is recognised.
const stateHeader = "# multigres route overrides (MOVE TENANT); one tenant:cluster per line\n"

// EncodeOverrides is the state file's text for overrides: a header, then
// "tenant:cluster" lines sorted by tenant.
func EncodeOverrides(o map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString(stateHeader)
	for _, label := range slices.Sorted(maps.Keys(o)) {
		fmt.Fprintf(&b, "%s:%s\n", label, o[label])
	}
	return b.Bytes()
}

// DecodeOverrides parses EncodeOverrides' text. Blank lines and lines
// starting with '#' are skipped; a bad line is an error naming it.
func DecodeOverrides(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		r, err := ParseRule(line)
		if err == nil && isPattern(r.Match) {
			err = fmt.Errorf("%q: an override names one tenant, not a pattern", line)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if _, dup := out[r.Match]; dup {
			return nil, fmt.Errorf("line %d: tenant %q is listed twice", n, r.Match)
		}
		out[r.Match] = r.Cluster
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read overrides: %w", err)
	}
	return out, nil
}

// Override is label's MOVE TENANT override, if it has one.
func (r *Router) Override(label string) (Decision, bool) {
	r.mu.RLock()
	cluster, ok := r.overrides[label]
	r.mu.RUnlock()
	if !ok {
		return Decision{}, false
	}
	return Decision{Cluster: cluster, Source: SourceOverride, Match: label}, true
}

// Bump changes the epoch without changing the router: something it does
// not hold (the tenant directory) may now place tenants elsewhere, so
// clients placed before must ask again.
func (r *Router) Bump() { r.epoch.Add(1) }

// DropOverride removes label's override if it still routes to cluster,
// and reports whether it did.
func (r *Router) DropOverride(label, cluster string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.overrides[label] != cluster {
		return false
	}
	delete(r.overrides, label)
	r.epoch.Add(1)
	return true
}

// SetOverrideIfAbsent routes label to cluster ahead of the table unless
// label has an override already; it reports whether it set one.
func (r *Router) SetOverrideIfAbsent(label, cluster string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.overrides[label]; ok {
		return false
	}
	r.overrides[label] = cluster
	r.epoch.Add(1)
	return true
}
