// Package pool keeps the server connections of transaction pooling. A Pool
// holds the connections of one (cluster, database, login role), shared by
// every tenant of that role on that cluster; a Set holds the pools and the
// per-database limit (per cluster: the same database name on two clusters
// is two databases).
//
// A Pool knows nothing of the protocol: it hands out idle connections
// (last in, first out, so the warm ones stay warm), dials new ones up to
// its size, queues waiters in arrival order and hands a released connection
// straight to the longest waiter. What a connection carries between clients
// (context, settings, prepared statements) is the relay's business: it
// keeps its model in Conn.Session, which the pool never reads.
package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
)

// ErrWaitTimeout means no server connection became free within
// query_wait_timeout.
var ErrWaitTimeout = errors.New("pool: timed out waiting for a server connection")

// ErrClosed means the pool set was closed (the proxy is shutting down).
var ErrClosed = errors.New("pool: closed")

// Limits are a pool's settings (see the pool keys in internal/config).
type Limits struct {
	Size, MinSize, ReserveSize int
	ReserveTimeout             time.Duration
	WaitTimeout                time.Duration // 0: wait forever
	IdleTimeout, Lifetime      time.Duration // 0: off
	CheckDelay                 time.Duration
	ConnectTimeout             time.Duration
}

// Dialer opens one authenticated server connection.
type Dialer func(ctx context.Context) (*backend.Conn, error)

// Conn is a pooled server connection. The pool owns its place in the
// pool; Session belongs to whoever holds the connection.
type Conn struct {
	*backend.Conn
	// Session is what the relay keeps about the server session between
	// clients (its model of the context, settings and statements there);
	// the pool never reads it. nil for a fresh connection.
	Session any
	// Holder is the id of the client holding the connection, 0 in the
	// pool: set by the client after Acquire, cleared by Release, read by
	// SHOW SERVERS from other goroutines.
	Holder atomic.Uint64

	pool     *Pool
	created  time.Time
	lastUsed time.Time
	quotaKey string // the holder's tenant slot (AcquireQuota), "" for none
}

// Key names a pool: the upstream cluster, the database and the login role.
type Key struct {
	Cluster, Database, Role string
}

// dbKey names a database on a cluster, for max_db_connections.
type dbKey struct{ cluster, database string }

// Pool is the server connections of one (cluster, database, role).
type Pool struct {
	Cluster, Database, Role string

	set    *Set
	dial   Dialer
	limits Limits

	mu      sync.Mutex
	conns   map[*Conn]struct{} // every open connection, held or idle
	idle    []*Conn
	open    int // idle + lent + dialling
	waiters []chan *Conn
	closed  bool

	quota quota // max_tenant_server_connections
}

// Set is every pool, with the per-database connection limit.
type Set struct {
	mu      sync.Mutex
	pools   map[Key]*Pool
	perDB   map[dbKey]int
	maxDB   int
	closed  bool
	stop    chan struct{}
	stopped chan struct{}
}

// NewSet makes an empty set; maxDB bounds the server connections of one
// database over all its pools (0: no bound). A goroutine closes idle and
// expired connections until Close.
func NewSet(maxDB int) *Set {
	s := &Set{pools: map[Key]*Pool{}, perDB: map[dbKey]int{}, maxDB: maxDB,
		stop: make(chan struct{}), stopped: make(chan struct{})}
	go s.reap()
	return s
}

// Get returns the pool for key, creating it with dial and limits. An
// existing pool keeps its limits but takes the newer dialer, so it logs in
// with the freshest credentials.
func (s *Set) Get(key Key, dial Dialer, limits Limits) *Pool {
	return s.get(key, dial, limits, true)
}

// Join is Get for a client that logged in elsewhere (a tenant moved to
// another cluster): an existing pool keeps its own dialer, whose
// credentials came from a login on that pool's cluster; dial is used only
// to create the pool.
func (s *Set) Join(key Key, dial Dialer, limits Limits) *Pool {
	return s.get(key, dial, limits, false)
}

func (s *Set) get(key Key, dial Dialer, limits Limits, replace bool) *Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[key]
	if p == nil {
		p = &Pool{Cluster: key.Cluster, Database: key.Database, Role: key.Role, set: s, limits: limits, conns: map[*Conn]struct{}{}}
		s.pools[key] = p
		replace = true
	}
	if replace {
		p.mu.Lock()
		p.dial = dial
		p.mu.Unlock()
	}
	return p
}

// Key is the pool's key.
func (p *Pool) Key() Key { return Key{Cluster: p.Cluster, Database: p.Database, Role: p.Role} }

// takeDBSlot reserves a connection of database db against max_db_connections.
func (s *Set) takeDBSlot(db dbKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maxDB > 0 && s.perDB[db] >= s.maxDB {
		return false
	}
	s.perDB[db]++
	return true
}

// freeDBSlot returns a slot and lets the other pools of db retry.
func (s *Set) freeDBSlot(db dbKey) {
	s.mu.Lock()
	s.perDB[db]--
	var siblings []*Pool
	for _, p := range s.pools {
		if p.dbKey() == db {
			siblings = append(siblings, p)
		}
	}
	s.mu.Unlock()
	for _, p := range siblings {
		p.kick()
	}
}

// Acquire returns an idle connection, or a new one, or waits for one in
// arrival order. A connection idle longer than CheckDelay is checked
// first. It gives up with ErrWaitTimeout after WaitTimeout.
func (p *Pool) Acquire(ctx context.Context) (*Conn, error) {
	// The common case, an idle connection or room to dial, needs no timers.
	if c, done, _, err := p.tryTake(ctx, p.limits.Size, false); done {
		return c, err
	}
	return p.acquireSlow(ctx)
}

// tryTake is one attempt: an idle (checked) connection, or a new one if
// there is room. Otherwise, with queue, wait is the waiter's channel.
func (p *Pool) tryTake(ctx context.Context, size int, queue bool) (c *Conn, done bool, wait chan *Conn, err error) {
	for {
		c, dial, wait, err := p.take(size, queue)
		switch {
		case err != nil:
			return nil, true, nil, err
		case c != nil:
			if c = p.check(c); c != nil {
				return c, true, nil, nil
			}
			continue
		case dial:
			c, err := p.connect(ctx)
			return c, true, nil, err
		}
		return nil, false, wait, nil
	}
}

// acquireSlow waits in line for a connection, with the wait and reserve
// timers.
func (p *Pool) acquireSlow(ctx context.Context) (*Conn, error) {
	var deadline <-chan time.Time
	if p.limits.WaitTimeout > 0 {
		t := time.NewTimer(p.limits.WaitTimeout)
		defer t.Stop()
		deadline = t.C
	}
	var reserve <-chan time.Time
	if p.limits.ReserveSize > 0 {
		t := time.NewTimer(p.limits.ReserveTimeout)
		defer t.Stop()
		reserve = t.C
	}
	size := p.limits.Size
	for {
		c, done, wait, err := p.tryTake(ctx, size, true)
		if done {
			return c, err
		}
		select {
		case c := <-wait:
			if c == nil { // kicked: capacity may be free
				continue
			}
			if c = p.check(c); c != nil {
				return c, nil
			}
		case <-reserve:
			p.cancelWait(wait)
			size, reserve = p.limits.Size+p.limits.ReserveSize, nil
		case <-deadline:
			p.cancelWait(wait)
			return nil, ErrWaitTimeout
		case <-ctx.Done():
			p.cancelWait(wait)
			return nil, ctx.Err()
		}
	}
}

// take pops an idle connection, or reserves a slot to dial, or (with
// queue) queues a waiter.
func (p *Pool) take(size int, queue bool) (c *Conn, dial bool, wait chan *Conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
		return c, false, nil, nil
	}
	if p.open < size && p.set.takeDBSlot(p.dbKey()) {
		p.open++
		return nil, true, nil, nil
	}
	if !queue {
		return nil, false, nil, nil
	}
	wait = make(chan *Conn, 1)
	p.waiters = append(p.waiters, wait)
	return nil, false, wait, nil
}

// cancelWait removes a waiter; a connection handed to it meanwhile goes
// back to the pool.
func (p *Pool) cancelWait(wait chan *Conn) {
	p.mu.Lock()
	for i, w := range p.waiters {
		if w == wait {
			p.waiters = append(p.waiters[:i:i], p.waiters[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	select {
	case c := <-wait:
		if c != nil {
			p.Release(c, true)
		}
	default:
	}
}

// kick wakes the longest waiter to retry (capacity may have been freed).
func (p *Pool) kick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w <- nil
	}
}

func (p *Pool) connect(ctx context.Context) (*Conn, error) {
	p.mu.Lock()
	dial := p.dial
	p.mu.Unlock()
	if p.limits.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.limits.ConnectTimeout)
		defer cancel()
	}
	bc, err := dial(ctx)
	if err != nil {
		p.forget(nil)
		return nil, fmt.Errorf("pool %s/%s on cluster %s: %w", p.Database, p.Role, p.Cluster, err)
	}
	now := time.Now()
	c := &Conn{Conn: bc, pool: p, created: now, lastUsed: now}
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	return c, nil
}

// drop closes c and drops it from the counts.
func (p *Pool) drop(c *Conn) {
	c.Close()
	p.forget(c)
}

// forget drops a connection from the counts: c closed, or nil for one
// never opened.
func (p *Pool) forget(c *Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.open--
	p.mu.Unlock()
	p.set.freeDBSlot(p.dbKey())
}

// dbKey is the database the pool's connections count against.
func (p *Pool) dbKey() dbKey { return dbKey{p.Cluster, p.Database} }

// quietCheckAfter is the idle time past which a connection is checked
// for anything the server sent while nobody read it. Under load,
// connections come back within microseconds and skip the system call.
const quietCheckAfter = 100 * time.Millisecond

// check runs the health checks on an idle connection before it is handed
// out: one idle past quietCheckAfter must have nothing to read (a server
// that restarted or crashed has closed it, after a FATAL); one idle past
// CheckDelay must answer an empty query. A failed one is closed, the other
// idle connections are swept the same way (they likely died with it), and
// nil returned.
func (p *Pool) check(c *Conn) *Conn {
	idle := time.Since(c.lastUsed)
	if idle >= quietCheckAfter && !c.Quiet() {
		p.drop(c)
		p.sweepIdle()
		return nil
	}
	if idle < p.limits.CheckDelay {
		return c
	}
	if err := c.Ping(5 * time.Second); err != nil {
		p.drop(c)
		return nil
	}
	if s, ok := c.Session.(OwnQueryObserver); ok {
		s.OwnQueryRan() // the empty query dropped the unnamed statement
	}
	return c
}

// OwnQueryObserver is implemented by a Session that must know when the
// pool ran a simple query of its own on the connection (its health
// check), which drops the server's unnamed statement.
type OwnQueryObserver interface{ OwnQueryRan() }

// Release returns c to the pool it came from. reusable must be false
// unless the connection is idle (ReadyForQuery 'I') with nothing in
// flight; such connections, and ones past Lifetime, are closed.
func (p *Pool) Release(c *Conn, reusable bool) {
	if c.pool != p {
		c.pool.Release(c, reusable) // always to the pool it came from
		return
	}
	now := time.Now()
	c.Holder.Store(0)
	if c.quotaKey != "" {
		p.giveQuota(c.quotaKey)
		c.quotaKey = ""
	}
	// A connection released with server bytes still unread is out of step
	// with whoever held it: never hand it on.
	if c.Frames.Buffered() > 0 {
		reusable = false
	}
	if !reusable || (p.limits.Lifetime > 0 && now.Sub(c.created) > p.limits.Lifetime) {
		p.drop(c) // wakes a waiter to dial a replacement
		return
	}
	c.lastUsed = now
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.drop(c)
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		w <- c
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// Stats is a snapshot of a pool for SHOW POOLS and metrics.
type Stats struct {
	Cluster, Database, Role string
	Open, Idle, Waits       int
}

// Stats returns a snapshot of every pool.
func (s *Set) Stats() []Stats {
	s.mu.Lock()
	pools := make([]*Pool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	out := make([]Stats, 0, len(pools))
	for _, p := range pools {
		p.mu.Lock()
		out = append(out, Stats{Cluster: p.Cluster, Database: p.Database, Role: p.Role, Open: p.open, Idle: len(p.idle), Waits: len(p.waiters)})
		p.mu.Unlock()
	}
	return out
}

// Close closes every idle connection and makes later Acquires fail; lent
// connections are closed as they come back.
func (s *Set) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	pools := s.poolList()
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	for _, p := range pools {
		p.mu.Lock()
		p.closed = true
		idle, waiters := p.idle, p.waiters
		p.idle, p.waiters = nil, nil
		p.mu.Unlock()
		for _, c := range idle {
			p.drop(c)
		}
		for _, w := range waiters {
			w <- nil
		}
	}
}

// reap closes connections idle past IdleTimeout (keeping MinSize) or past
// Lifetime, once a second.
func (s *Set) reap() {
	defer close(s.stopped)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			pools := s.poolList()
			s.mu.Unlock()
			for _, p := range pools {
				p.reapIdle(now)
			}
		}
	}
}

func (p *Pool) reapIdle(now time.Time) {
	p.mu.Lock()
	var expired []*Conn
	keep := p.idle[:0]
	for i, c := range p.idle {
		// The oldest idle connections are at the front (LIFO reuse).
		excess := p.open-len(expired) > p.limits.MinSize
		idleTooLong := p.limits.IdleTimeout > 0 && now.Sub(c.lastUsed) > p.limits.IdleTimeout && excess
		tooOld := p.limits.Lifetime > 0 && now.Sub(c.created) > p.limits.Lifetime
		if idleTooLong || tooOld {
			expired = append(expired, c)
			continue
		}
		keep = append(keep, p.idle[i])
	}
	p.idle = keep
	p.mu.Unlock()
	for _, c := range expired {
		p.drop(c)
	}
}

// Server is one pooled server connection, for SHOW SERVERS.
type Server struct {
	Cluster        string
	Database, Role string
	State          ServerState
	PID            uint32
	Addr           string // upstream address
	LocalAddr      net.Addr
	Holder         uint64    // client id, 0 when idle in the pool
	Created        time.Time // connected
	LastUsed       time.Time // last returned to the pool (Created if never)
}

// poolList copies the pools (s.mu held).
func (s *Set) poolList() []*Pool {
	pools := make([]*Pool, 0, len(s.pools))
	for _, p := range s.pools {
		pools = append(pools, p)
	}
	return pools
}

// Servers lists every open connection of every pool.
func (s *Set) Servers() []Server {
	s.mu.Lock()
	pools := s.poolList()
	s.mu.Unlock()
	var out []Server
	for _, p := range pools {
		p.mu.Lock()
		idle := make(map[*Conn]bool, len(p.idle))
		for _, c := range p.idle {
			idle[c] = true
		}
		for c := range p.conns {
			sv := Server{Cluster: p.Cluster, Database: p.Database, Role: p.Role, PID: c.PID, Addr: c.Addr(), LocalAddr: c.LocalAddr(),
				Holder: c.Holder.Load(), Created: c.created, LastUsed: c.created}
			sv.State = ServerActive
			if idle[c] {
				// lastUsed belongs to the holder; an idle connection's was
				// written before Release took p.mu.
				sv.LastUsed, sv.Holder, sv.State = c.lastUsed, 0, ServerIdle
			}
			out = append(out, sv)
		}
		p.mu.Unlock()
	}
	return out
}

// sweepIdle closes every idle connection the server has ended.
func (p *Pool) sweepIdle() {
	p.mu.Lock()
	var dead []*Conn
	kept := p.idle[:0]
	for _, c := range p.idle {
		if c.Quiet() {
			kept = append(kept, c)
		} else {
			dead = append(dead, c)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	p.mu.Unlock()
	for _, c := range dead {
		p.drop(c)
	}
}
