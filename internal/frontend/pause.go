package frontend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// PAUSE and RESUME on the admin console: a pause holds new logins to a
// database (or every database) and new transactions of its idle clients
// until RESUME. MOVE TENANT pauses one tenant the same way (move.go).

// pauseState holds the pauses in effect: global, per database and per
// tenant. Each is a channel closed by RESUME (or the tenant's switch). The
// zero value is ready to use.
type pauseState struct {
	n       atomic.Int32 // pauses in effect: the relay's lock-free fast path
	mu      sync.Mutex
	all     chan struct{}
	dbs     map[string]chan struct{}
	tenants map[string]chan struct{}
}

// gate returns the channel to wait on before a client of tenant ("" for
// bypass users) on db may start a login or a transaction, or nil when
// neither is paused.
func (p *pauseState) gate(db, tenant string) <-chan struct{} {
	if p.n.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.all != nil {
		return p.all
	}
	if ch, ok := p.dbs[db]; ok {
		return ch
	}
	if ch, ok := p.tenants[tenant]; ok && tenant != "" {
		return ch
	}
	return nil
}

// addTenant pauses tenant's logins and transactions (MOVE TENANT).
func (p *pauseState) addTenant(tenant string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.tenants[tenant]; ok {
		return errNotInState("tenant %q is already paused", tenant)
	}
	if p.tenants == nil {
		p.tenants = map[string]chan struct{}{}
	}
	p.tenants[tenant] = make(chan struct{})
	p.n.Add(1) // before busy() reads client states, as in add
	return nil
}

// liftTenant ends the pause of tenant, releasing its waiters.
func (p *pauseState) liftTenant(tenant string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.tenants[tenant]; ok {
		close(ch)
		delete(p.tenants, tenant)
		p.n.Add(-1)
	}
}

// add puts a pause of db ("" for all) in effect, refusing a second one.
func (p *pauseState) add(db string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db == "" {
		if p.all != nil {
			return errNotInState("already paused")
		}
		p.all = make(chan struct{})
	} else {
		if _, ok := p.dbs[db]; ok {
			return errNotInState("database %q is already paused", db)
		}
		if p.dbs == nil {
			p.dbs = map[string]chan struct{}{}
		}
		p.dbs[db] = make(chan struct{})
	}
	// Stored before busy() reads client states, while clients store their
	// state before reading the gate: one side always sees the other.
	p.n.Add(1)
	return nil
}

// lift ends the pause of db ("" for the global one), releasing its waiters.
func (p *pauseState) lift(db string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db == "" {
		if p.all == nil {
			return errNotInState("not paused")
		}
		close(p.all)
		p.all = nil
	} else {
		ch, ok := p.dbs[db]
		if !ok {
			return errNotInState("database %q is not paused", db)
		}
		close(ch)
		delete(p.dbs, db)
	}
	p.n.Add(-1)
	return nil
}

// errNotInState is PgBouncer's answer to PAUSE twice or RESUME unpaused.
func errNotInState(format string, args ...any) error {
	return &wire.Error{Severity: wire.SeverityError, Code: "55000", Message: fmt.Sprintf(format, args...)}
}

// Pause stops new logins to db ("" for every database) and new
// transactions of its idle clients, then waits until no client of db is in
// a transaction or logging in. If ctx ends first, the pause stays in
// effect (RESUME lifts it) and ctx's error is returned.
func (s *Server) Pause(ctx context.Context, db string) error {
	if err := s.adm.pause.add(db); err != nil {
		return err
	}
	s.Logger.Info("PAUSE", "database", db)
	// Polling: transactions end in the relay's hot path, which must not
	// signal anyone; a pause is rare and a 5 ms step is fine.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for s.busy(db) {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("pause still in effect, transactions still running: %w", ctx.Err())
		case <-s.shutdown:
			return errors.New("the server is shutting down")
		}
	}
	return nil
}

// busy reports whether a client of db ("" for any) is logging in upstream
// or in a transaction, and not held by the pause.
func (s *Server) busy(db string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		info := c.ad.info.Load()
		if info == nil || info.admin || (db != "" && info.database != db) || c.ad.waiting.Load() {
			continue
		}
		switch c.State() {
		case StateConnecting, StateInjecting, StateActive, StateInTransaction:
			return true
		}
	}
	return false
}

// Resume lifts the pause of db ("" for the global one).
func (s *Server) Resume(db string) error {
	if err := s.adm.pause.lift(db); err != nil {
		return err
	}
	s.Logger.Info("RESUME", "database", db)
	return nil
}

// waitPaused holds the connection while its database is paused. The
// caller has already stored the state that makes it count as busy, so a
// concurrent Pause either sees it busy or it sees the pause. It returns
// false when done or the connection closes first.
func (c *clientConn) waitPaused(db string, done <-chan struct{}) bool {
	for {
		ch := c.srv.adm.pause.gate(db, c.tl.name)
		if ch == nil {
			return true
		}
		c.ad.waitSince.Store(time.Now().UnixNano())
		c.ad.waiting.Store(true)
		select {
		case <-ch:
		case <-done:
			c.ad.waiting.Store(false)
			return false
		case <-c.ad.deadChan():
			c.ad.waiting.Store(false)
			return false
		}
		// Cleared before the gate is read again, so a new PAUSE waits.
		c.ad.waiting.Store(false)
	}
}

// pauseLogin runs after the state became connecting: a login to a paused
// database waits for RESUME, up to handshake_timeout (ctx).
func (c *clientConn) pauseLogin(ctx context.Context) error {
	if c.waitPaused(c.database, ctx.Done()) {
		return nil
	}
	// The socket's deadline is the same instant: leave a moment to write
	// the error, so the client learns why.
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if to, moving := c.srv.routing.moves.target(c.tl.name); moving {
		return wire.Fatal(wire.CodeCannotConnectNow, "tenant %q is being moved to cluster %q", c.tl.name, to).
			WithHint("An administrator ran MOVE TENANT on the admin console; try again in a moment.")
	}
	return wire.Fatal(wire.CodeCannotConnectNow, "database %q is paused", c.database).
		WithHint("An administrator ran PAUSE on the admin console; try again after RESUME.")
}

// pauseQuery runs in the client pump when an idle client sends its next
// message: while its database is paused, the message waits for RESUME
// (a Terminate does not).
func (c *clientConn) pauseQuery(prev ConnState, typ byte) error {
	if prev != StateIdle || wire.ClientType(typ) == wire.Terminate || c.srv.adm.pause.n.Load() == 0 {
		return nil
	}
	if !c.waitPaused(c.database, nil) {
		return errSilent
	}
	return nil
}
