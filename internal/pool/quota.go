package pool

import (
	"context"
	"errors"
	"sync"
)

// ErrQuotaWait means a tenant stayed at its share of a pool
// (max_tenant_server_connections) for as long as the caller would wait.
var ErrQuotaWait = errors.New("pool: timed out waiting under the tenant's server connection limit")

// quota bounds how many of a pool's connections one key (a tenant) holds
// at once, so that one tenant cannot take a whole pool and other tenants
// are served. Waiting at the limit costs nothing while nobody is at it:
// the wake channel exists only then.
type quota struct {
	mu   sync.Mutex
	held map[string]int
	wake chan struct{} // closed (and dropped) when any slot frees
}

// AcquireQuota is Acquire for a client of tenant key, which may hold at
// most max of p's connections at once (max <= 0: no limit). It waits for
// one of key's slots first, until ctx's deadline (ErrQuotaWait) or its
// cancellation (ErrClosed). Release frees the slot.
func (p *Pool) AcquireQuota(ctx context.Context, key string, max int) (*Conn, error) {
	if max <= 0 {
		return p.Acquire(ctx)
	}
	if err := p.takeQuota(ctx, key, max); err != nil {
		return nil, err
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		p.giveQuota(key)
		return nil, err
	}
	c.quotaKey = key
	return c, nil
}

// takeQuota reserves one of key's max slots, waiting until one frees or
// ctx ends. Every successful takeQuota needs one giveQuota.
func (p *Pool) takeQuota(ctx context.Context, key string, max int) error {
	q := &p.quota
	for {
		q.mu.Lock()
		if q.held[key] < max {
			if q.held == nil {
				q.held = map[string]int{}
			}
			q.held[key]++
			q.mu.Unlock()
			return nil
		}
		if q.wake == nil {
			q.wake = make(chan struct{})
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ErrQuotaWait
			}
			return ErrClosed
		}
	}
}

// giveQuota frees a slot takeQuota reserved for key.
func (p *Pool) giveQuota(key string) {
	q := &p.quota
	q.mu.Lock()
	if q.held[key] <= 1 {
		delete(q.held, key)
	} else {
		q.held[key]--
	}
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
	q.mu.Unlock()
}

// QuotaHeld reports how many slots key holds in p.
func (p *Pool) QuotaHeld(key string) int {
	p.quota.mu.Lock()
	defer p.quota.mu.Unlock()
	return p.quota.held[key]
}
