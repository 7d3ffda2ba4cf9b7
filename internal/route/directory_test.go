package route

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestDirCache(t *testing.T) {
	t.Parallel()
	c := NewDirCache(time.Minute, 2)
	if _, ok := c.Get("acme", t0); ok {
		t.Fatal("empty cache answered")
	}
	a := c.Put("acme", "eu", t0, false)
	if a.Cluster != "eu" || !a.Found() || !a.Expires.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Put = %+v", a)
	}
	if got, ok := c.Get("acme", t0.Add(59*time.Second)); !ok || got != a {
		t.Fatalf("Get before expiry = %+v, %v", got, ok)
	}
	if _, ok := c.Get("acme", t0.Add(time.Minute)); ok {
		t.Fatal("answered at its expiry")
	}
	if c.Len() != 0 {
		t.Fatalf("expired entry kept: Len %d", c.Len())
	}
	// A missing row is an answer too (the table decides), cached alike.
	if miss := c.Put("new", "", t0, false); miss.Found() {
		t.Fatalf("no row reported found: %+v", miss)
	}
	if got, ok := c.Get("new", t0); !ok || got.Found() {
		t.Fatalf("cached miss = %+v, %v", got, ok)
	}
	// Full: the least recently stored goes first, and storing again
	// refreshes an entry's place.
	c.Put("a", "eu", t0, false)
	c.Put("new", "us", t0, false)
	c.Put("b", "eu", t0, false)
	if _, ok := c.Get("a", t0); ok {
		t.Error("the oldest entry stayed in a full cache")
	}
	if got, _ := c.Get("new", t0); got.Cluster != "us" {
		t.Errorf("re-stored entry = %+v", got)
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d, want the bound 2", c.Len())
	}
	if !c.Forget("b") || c.Forget("b") {
		t.Error("Forget reports wrongly")
	}
	c.Put("x", "eu", t0, false)
	if got := c.Found(t0); !reflect.DeepEqual(got, []Decision{{"us", SourceDirectory, "new"}, {"eu", SourceDirectory, "x"}}) {
		t.Errorf("Found = %+v", got)
	}
	if n := c.ForgetAll(); n != 2 || c.Len() != 0 {
		t.Errorf("ForgetAll = %d, Len %d", n, c.Len())
	}
}

// TestDirCacheProtectsConfirmedTenants: labels invented before
// authentication churn among themselves; a tenant whose login
// authenticated (Confirm), or whose answer was asked for an authenticated
// client (Put with protect), stays while any entry on probation is left
// to drop.
func TestDirCacheProtectsConfirmedTenants(t *testing.T) {
	t.Parallel()
	c := NewDirCache(time.Minute, 3)
	c.Put("real", "eu", t0, false)
	if !c.Confirm("real") || c.Confirm("absent") {
		t.Fatal("Confirm reports wrongly")
	}
	c.Put("connected", "us", t0, true)
	for i := range 50 {
		c.Put(fmt.Sprintf("invented-%d", i), "", t0, false)
	}
	for _, l := range []string{"real", "connected", "invented-49"} {
		if _, ok := c.Get(l, t0); !ok {
			t.Errorf("%s was pushed out by invented labels", l)
		}
	}
	if c.Len() != 3 {
		t.Errorf("Len = %d, want the bound 3", c.Len())
	}
	// Asked again before authenticating, a protected label stays protected.
	c.Put("real", "us", t0, false)
	c.Put("invented-x", "", t0, false)
	if got, ok := c.Get("real", t0); !ok || got.Cluster != "us" {
		t.Errorf("re-stored protected entry = %+v, %v", got, ok)
	}
	// With nothing on probation, the oldest protected entry makes room
	// for another protected one, and an answer on probation is not kept.
	c2 := NewDirCache(time.Minute, 2)
	c2.Put("a", "eu", t0, true)
	c2.Put("b", "eu", t0, true)
	if a := c2.Put("invented", "us", t0, false); a.Cluster != "us" || !a.Expires.Equal(t0.Add(time.Minute)) {
		t.Errorf("an answer not kept is still returned: %+v", a)
	}
	if _, ok := c2.Get("invented", t0); ok {
		t.Error("an answer on probation pushed out a protected one")
	}
	c2.Put("c", "eu", t0, true)
	if _, ok := c2.Get("a", t0); ok {
		t.Error("a full protected segment kept its oldest entry")
	}
}

func TestRouterTenantWithDirectory(t *testing.T) {
	t.Parallel()
	tab, err := NewTable([]string{"acme:eu"}, nil, "default", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(tab)
	found := DirAnswer{Cluster: "us"}
	cases := []struct {
		label string
		dir   DirAnswer
		want  Decision
	}{
		{"acme", found, Decision{"us", SourceDirectory, "acme"}}, // the directory beats tenant_routes
		{"acme", DirAnswer{}, Decision{"eu", SourceTenant, "acme"}},
		{"zed", DirAnswer{}, Decision{"default", SourceDefault, "*"}},
	}
	for _, tc := range cases {
		if got, ok := r.Tenant(tc.label, "app", tc.dir); !ok || got != tc.want {
			t.Errorf("Tenant(%s, %+v) = %+v, %v; want %+v", tc.label, tc.dir, got, ok, tc.want)
		}
	}
	e := r.Epoch()
	r.SetOverride("acme", "default")
	if got, _ := r.Tenant("acme", "app", found); got.Source != SourceOverride {
		t.Errorf("an override must beat the directory: %+v", got)
	}
	r.Bump()
	if r.Epoch() != e+2 {
		t.Errorf("epoch %d after an override and a bump from %d", r.Epoch(), e)
	}
}

// dirOp is one step of the model test.
type dirOp struct {
	kind    byte // g(et), p(ut), c(onfirm), f(orget), a(ll), t(ick)
	label   string
	arg     string
	protect bool // for p
	tick    time.Duration
}

func (o dirOp) String() string {
	switch o.kind {
	case 't':
		return fmt.Sprintf("tick %v", o.tick)
	case 'a':
		return "forget all"
	}
	if o.kind == 'p' && o.protect {
		return fmt.Sprintf("p %s %s protected", o.label, o.arg)
	}
	return fmt.Sprintf("%c %s %s", o.kind, o.label, o.arg)
}

// dirModel is the obvious implementation: every entry with the order it
// was stored in.
type dirModel struct {
	entries map[string]modelEntry
	seq     int
}

type modelEntry struct {
	cluster   string
	expires   time.Time
	seq       int
	protected bool
}

// count is the number of entries protected or on probation.
func (m *dirModel) count(protected bool) int {
	n := 0
	for _, e := range m.entries {
		if e.protected == protected {
			n++
		}
	}
	return n
}

// evict drops the entry with the lowest seq on probation, else the lowest
// protected one.
func (m *dirModel) evict() {
	for _, protected := range []bool{false, true} {
		oldest, found := "", false
		for l, e := range m.entries {
			if e.protected == protected && (!found || e.seq < m.entries[oldest].seq) {
				oldest, found = l, true
			}
		}
		if found {
			delete(m.entries, oldest)
			return
		}
	}
}

// runDirOps runs ops against a DirCache and the model and returns the
// first disagreement.
func runDirOps(ops []dirOp, ttl time.Duration, max int) error {
	c := NewDirCache(ttl, max)
	m := dirModel{entries: map[string]modelEntry{}}
	now := t0
	for i, op := range ops {
		switch op.kind {
		case 't':
			now = now.Add(op.tick)
		case 'p':
			c.Put(op.label, op.arg, now, op.protect)
			protected := op.protect || m.entries[op.label].protected
			delete(m.entries, op.label)
			if !protected && m.count(false) == 0 && len(m.entries) >= max {
				break // full of protected answers: not kept
			}
			for len(m.entries) >= max {
				m.evict()
			}
			m.seq++
			m.entries[op.label] = modelEntry{op.arg, now.Add(ttl), m.seq, protected}
		case 'c':
			e, want := m.entries[op.label]
			if want && !e.protected {
				m.seq++
				e.protected, e.seq = true, m.seq
				m.entries[op.label] = e
			}
			if got := c.Confirm(op.label); got != want {
				return fmt.Errorf("step %d %v: Confirm = %v, model %v", i, op, got, want)
			}
		case 'g':
			got, ok := c.Get(op.label, now)
			e, want := m.entries[op.label]
			if want && !now.Before(e.expires) {
				delete(m.entries, op.label)
				want = false
			}
			if ok != want || ok && (got.Cluster != e.cluster || !got.Expires.Equal(e.expires)) {
				return fmt.Errorf("step %d %v: got %+v %v, model %+v %v", i, op, got, ok, e, want)
			}
		case 'f':
			_, want := m.entries[op.label]
			delete(m.entries, op.label)
			if got := c.Forget(op.label); got != want {
				return fmt.Errorf("step %d %v: Forget = %v, model %v", i, op, got, want)
			}
		case 'a':
			want := len(m.entries)
			m.entries = map[string]modelEntry{}
			if got := c.ForgetAll(); got != want {
				return fmt.Errorf("step %d %v: ForgetAll = %d, model %d", i, op, got, want)
			}
		}
		if c.Len() != len(m.entries) || c.Len() > max {
			return fmt.Errorf("step %d %v: Len %d, model %d, bound %d", i, op, c.Len(), len(m.entries), max)
		}
	}
	return nil
}

func randomDirOps(rng *rand.Rand, n int) []dirOp {
	labels := []string{"acme", "globex", "initech", "list1:u1", "x"}
	clusters := []string{"", "eu", "us"}
	ops := make([]dirOp, n)
	for i := range ops {
		op := dirOp{label: labels[rng.IntN(len(labels))], arg: clusters[rng.IntN(len(clusters))]}
		switch k := rng.IntN(22); {
		case k < 7:
			op.kind = 'g'
		case k < 13:
			op.kind, op.protect = 'p', rng.IntN(4) == 0
		case k < 15:
			op.kind = 'c'
		case k < 17:
			op.kind = 'f'
		case k < 18:
			op.kind = 'a'
		default:
			op.kind, op.tick = 't', time.Duration(rng.IntN(40))*time.Second
		}
		ops[i] = op
	}
	return ops
}

// shrinkDirOps removes steps while the failure remains, so the report is
// a short sequence.
func shrinkDirOps(ops []dirOp, fails func([]dirOp) bool) []dirOp {
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(ops); i++ {
			shorter := append(append([]dirOp{}, ops[:i]...), ops[i+1:]...)
			if fails(shorter) {
				ops, changed = shorter, true
				i--
			}
		}
	}
	return ops
}

// TestDirCacheModel checks DirCache against dirModel on random seeded
// sequences of stores, reads, forgets and clock ticks, with a small bound
// so that eviction happens often; a failure is shrunk to a short sequence.
func TestDirCacheModel(t *testing.T) {
	t.Parallel()
	const ttl, max = time.Minute, 3
	for seed := uint64(1); seed <= 300; seed++ {
		ops := randomDirOps(rand.New(rand.NewPCG(seed, 7)), 200)
		if err := runDirOps(ops, ttl, max); err != nil {
			small := shrinkDirOps(ops, func(o []dirOp) bool { return runDirOps(o, ttl, max) != nil })
			var b strings.Builder
			for _, op := range small {
				b.WriteString("\n  " + op.String())
			}
			t.Fatalf("seed %d: %v\nshrunk to:%s\n%v", seed, err, b.String(), runDirOps(small, ttl, max))
		}
	}
}
