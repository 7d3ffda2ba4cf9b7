package frontend

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
)

// cancelKey is the BackendKeyData multigres gives a client. It is the
// proxy's own, so a client never learns a server's pid or secret, and the
// proxy can route the cancel to whichever server connection the client is
// using at that moment.
type cancelKey struct {
	pid    uint32
	secret [4]byte
}

// cancelMap maps handed-out keys to clients.
type cancelMap struct {
	mu sync.Mutex
	m  map[uint32]*clientConn
}

func (cm *cancelMap) init() { cm.m = map[uint32]*clientConn{} }

// register gives c a fresh unique key.
func (cm *cancelMap) register(c *clientConn) cancelKey {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	for {
		var k cancelKey
		b := randomBytes(8)
		k.pid = binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		copy(k.secret[:], b[4:])
		if _, taken := cm.m[k.pid]; !taken && k.pid != 0 {
			// Set under the lock: lookup reads c.key of a mapped client
			// from another goroutine, right after taking this lock.
			c.key = k
			cm.m[k.pid] = c
			return k
		}
	}
}

func (cm *cancelMap) unregister(k cancelKey) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	delete(cm.m, k.pid)
}

// lookup finds the client for pid whose secret matches, in constant time.
func (cm *cancelMap) lookup(pid uint32, secret []byte) *clientConn {
	cm.mu.Lock()
	c := cm.m[pid]
	cm.mu.Unlock()
	if c == nil || subtle.ConstantTimeCompare(c.key.secret[:], secret) != 1 {
		return nil
	}
	return c
}

// handleCancel forwards a CancelRequest to the server connection the
// matching client is using. Like PostgreSQL it answers nothing, whether or
// not the key matched.
func (s *Server) handleCancel(pid uint32, secret []byte) {
	c := s.cancels.lookup(pid, secret)
	if c != nil && c.ad.console != nil {
		c.ad.console.cancel() // the console's own command, never a server's
		return
	}
	if c != nil && c.tx.pool != nil {
		sent := c.tx.cancel()
		if s.Hooks.Cancel != nil {
			s.Hooks.Cancel(sent)
		}
		return
	}
	var target *backend.Conn
	if c != nil {
		target = c.currentServer()
	}
	if s.Hooks.Cancel != nil {
		s.Hooks.Cancel(target != nil)
	}
	if target == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := target.Cancel(ctx); err != nil {
		s.Logger.Warn("forwarding cancel request failed", "err", err)
	}
}
