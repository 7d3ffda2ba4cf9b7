package txstate

import "container/list"

// LRU is the set of statement names prepared on one server connection, in
// recency order, bounded by max_prepared_statements. Its holder locks.
type LRU struct {
	max   int
	order *list.List
	items map[string]*list.Element
}

// NewLRU makes an empty LRU holding at most max names.
func NewLRU(max int) *LRU {
	return &LRU{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// Has reports whether name is prepared, marking it recently used.
func (l *LRU) Has(name string) bool {
	e, ok := l.items[name]
	if ok {
		l.order.MoveToFront(e)
	}
	return ok
}

// Add records name and returns the name it evicts ("" for none), which
// the caller must close on the server.
func (l *LRU) Add(name string) (evicted string) {
	if e, ok := l.items[name]; ok {
		l.order.MoveToFront(e)
		return ""
	}
	l.items[name] = l.order.PushFront(name)
	if l.order.Len() <= l.max {
		return ""
	}
	old := l.order.Back()
	l.order.Remove(old)
	evicted = old.Value.(string)
	delete(l.items, evicted)
	return evicted
}

// Remove forgets name (its Parse failed, or it was closed).
func (l *LRU) Remove(name string) {
	if e, ok := l.items[name]; ok {
		l.order.Remove(e)
		delete(l.items, name)
	}
}

// Clear forgets every name (DEALLOCATE ALL).
func (l *LRU) Clear() {
	l.order.Init()
	clear(l.items)
}

// Len is the number of names held.
func (l *LRU) Len() int { return l.order.Len() }

// Names lists the prepared names, most recently used first (for the state
// audit).
func (l *LRU) Names() []string {
	out := make([]string, 0, l.order.Len())
	for e := l.order.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(string))
	}
	return out
}
