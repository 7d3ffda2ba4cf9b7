package route

import (
	"container/list"
	"time"
)

// Directory answers cached from tenant_directory_query: for each tenant
// label, the cluster its row names, or that it has no row (then the static
// table places it). Entries live for a TTL; the cache holds at most a
// fixed number of them and drops the least recently stored first, so
// labels that clients invent before authenticating cannot grow it without
// bound. Time is passed in: the package has no clock.
//
// A DirCache is not safe for concurrent use; its owner locks around it.
type DirCache struct {
	ttl   time.Duration
	max   int
	items map[string]*list.Element
	order *list.List // of *dirEntry, least recently stored at the front
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
	label  string
	answer DirAnswer
}

// NewDirCache keeps answers for ttl, at most max of them (max < 1 is
// treated as 1).
func NewDirCache(ttl time.Duration, max int) *DirCache {
	if max < 1 {
		max = 1
	}
	return &DirCache{ttl: ttl, max: max, items: map[string]*list.Element{}, order: list.New()}
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
// row), and returns it with its expiry. The oldest entry makes room when
// the cache is full.
func (c *DirCache) Put(label, cluster string, now time.Time) DirAnswer {
	a := DirAnswer{Cluster: cluster, Expires: now.Add(c.ttl)}
	if e, ok := c.items[label]; ok {
		c.remove(e)
	}
	for c.order.Len() >= c.max {
		c.remove(c.order.Front())
	}
	c.items[label] = c.order.PushBack(&dirEntry{label: label, answer: a})
	return a
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
	n := c.order.Len()
	c.items = map[string]*list.Element{}
	c.order.Init()
	return n
}

// Len is the number of answers held, expired ones not yet dropped included.
func (c *DirCache) Len() int { return c.order.Len() }

// Found lists, for SHOW ROUTES, the unexpired answers that place a tenant
// (rows found), least recently stored first.
func (c *DirCache) Found(now time.Time) []Decision {
	var out []Decision
	for e := c.order.Front(); e != nil; e = e.Next() {
		d := e.Value.(*dirEntry)
		if d.answer.Found() && now.Before(d.answer.Expires) {
			out = append(out, Decision{Cluster: d.answer.Cluster, Source: SourceDirectory, Match: d.label})
		}
	}
	return out
}

func (c *DirCache) remove(e *list.Element) {
	delete(c.items, e.Value.(*dirEntry).label)
	c.order.Remove(e)
}
