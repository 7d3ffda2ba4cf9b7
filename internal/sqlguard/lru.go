package sqlguard

import "container/list"

// lru is a fixed-size verdict cache; callers lock.
type lru struct {
	max   int
	order *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	v   verdict
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[string]*list.Element, max)}
}

func (c *lru) get(key string) (verdict, bool) {
	e, ok := c.items[key]
	if !ok {
		return verdict{}, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry).v, true
}

func (c *lru) put(key string, v verdict) {
	if e, ok := c.items[key]; ok {
		e.Value.(*lruEntry).v = v
		c.order.MoveToFront(e)
		return
	}
	c.items[key] = c.order.PushFront(&lruEntry{key, v})
	if c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*lruEntry).key)
	}
}
