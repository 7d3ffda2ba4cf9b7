package route

import (
	"container/list"
	"time"
)

// Directory answers cached from tenant_directory_query: for each tenant
// label, the cluster its row names, or that it has no row (then the static
// table places it). Entries live for a TTL; the cache holds at most a
// fixed number of them, so labels that clients invent before
// authenticating cannot grow it without bound.
//
// Nor can they push out the answers of real tenants: an answer is stored
// on probation, and moves to the protected segment once a login of that
// tenant authenticated (Confirm). When the cache is full, the least
// recently stored answer on probation makes room; a protected one makes
// room only for another protected one, and an answer on probation that
// finds no room is not kept. Time is passed in: the package has no
// clock.
//
// A DirCache is not safe for concurrent use; its owner locks around it.
type DirCache struct {
	ttl   time.Duration
	max   int
	items map[string]*list.Element
	// probation and protected hold *dirEntry, least recently stored at
	// the front; every entry is in one of them.
	probation, protected *list.List
}

// DirAnswer is the directory's answer for one tenant.
type DirAnswer struct {
	// Cluster is the cluster the tenant's row names, lower case; empty
	// when the directory has no row for it.
	Cluster string
	// Expires is when the answer must be asked again.
	Expires time.Time
}

// Found says the directory has a row for the tenant.
func (a DirAnswer) Found() bool { return a.Cluster != "" }

type dirEntry struct {
	label     string
	answer    DirAnswer
	protected bool // in the protected segment
}

// NewDirCache keeps answers for ttl, at most max of them (max < 1 is
// treated as 1).
func NewDirCache(ttl time.Duration, max int) *DirCache {
	if max < 1 {
		max = 1
	}
	return &DirCache{ttl: ttl, max: max, items: map[string]*list.Element{}, probation: list.New(), protected: list.New()}
}

// Get returns label's answer if one is cached and has not expired at now.
// An expired entry is dropped.
func (c *DirCache) Get(label string, now time.Time) (DirAnswer, bool) {
	e, ok := c.items[label]
	if !ok {
		return DirAnswer{}, false
	}
	a := e.Value.(*dirEntry).answer
	if !now.Before(a.Expires) {
		c.remove(e)
		return DirAnswer{}, false
	}
	return a, true
}

// Put stores the answer for label, looked up at now (cluster "" for no
// row), and returns it with its expiry. It is protected when protect says
// the label is a real tenant's (asked for an authenticated client) or the
// label was protected already; otherwise it is on probation. The oldest
// entry on probation, else the oldest protected one, makes room when the
// cache is full; an answer on probation that finds only protected ones is
// returned but not kept.
func (c *DirCache) Put(label, cluster string, now time.Time, protect bool) DirAnswer {
	a := DirAnswer{Cluster: cluster, Expires: now.Add(c.ttl)}
	protected := protect
	if e, ok := c.items[label]; ok {
		protected = protected || e.Value.(*dirEntry).protected
		c.remove(e)
	}
	if !protected && c.probation.Len() == 0 && c.Len() >= c.max {
		// Full of real tenants' answers: one on probation is not worth
		// any of them; it is used once, not kept.
		return a
	}
	for c.Len() >= c.max {
		c.evict()
	}
	seg := c.probation
	if protected {
		seg = c.protected
	}
	c.items[label] = seg.PushBack(&dirEntry{label: label, answer: a, protected: protected})
	return a
}

// Confirm protects label's answer, if cached: a login of that tenant
// authenticated, so the label is not one a client invented. It reports
// whether there was an answer to protect.
func (c *DirCache) Confirm(label string) bool {
	e, ok := c.items[label]
	if !ok {
		return false
	}
	d := e.Value.(*dirEntry)
	if !d.protected {
		c.probation.Remove(e)
		d.protected = true
		c.items[label] = c.protected.PushBack(d)
	}
	return true
}

// evict drops the oldest entry on probation, else the oldest protected.
func (c *DirCache) evict() {
	if c.probation.Len() > 0 {
		c.remove(c.probation.Front())
		return
	}
	c.remove(c.protected.Front())
}

// Forget drops label's answer; it reports whether there was one.
func (c *DirCache) Forget(label string) bool {
	e, ok := c.items[label]
	if ok {
		c.remove(e)
	}
	return ok
}

// ForgetAll drops every answer and returns how many there were.
func (c *DirCache) ForgetAll() int {
	n := c.Len()
	c.items = map[string]*list.Element{}
	c.probation.Init()
	c.protected.Init()
	return n
}

// Len is the number of answers held, expired ones not yet dropped included.
func (c *DirCache) Len() int { return c.probation.Len() + c.protected.Len() }

// Found lists, for SHOW ROUTES, the unexpired answers that place a tenant
// (rows found): the protected ones, then those on probation, each least
// recently stored first.
func (c *DirCache) Found(now time.Time) []Decision {
	var out []Decision
	for _, seg := range []*list.List{c.protected, c.probation} {
		for e := seg.Front(); e != nil; e = e.Next() {
			d := e.Value.(*dirEntry)
			if d.answer.Found() && now.Before(d.answer.Expires) {
				out = append(out, Decision{Cluster: d.answer.Cluster, Source: SourceDirectory, Match: d.label})
			}
		}
	}
	return out
}

func (c *DirCache) remove(e *list.Element) {
	d := e.Value.(*dirEntry)
	delete(c.items, d.label)
	if d.protected {
		c.protected.Remove(e)
	} else {
		c.probation.Remove(e)
	}
}
