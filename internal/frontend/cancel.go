package frontend

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/config"
)

// cancelKey is the BackendKeyData multigres gives a client. It is the
// proxy's own, so a client never learns a server's pid or secret, and the
// proxy can route the cancel to whichever server connection the client is
// using at that moment.
//
// Layout (the pid and secret as 32-bit big-endian words):
//
//	pid     0 | peer id (14 bits) | random (17 bits)   with peer_id set
//	pid     0 | random (31 bits)                       with peering off
//	secret  forwarded (1 bit) | random (31 bits)
//
// The pid stays positive, as PostgreSQL's are (clients may keep it in a
// signed int). The peer id lets any process of a fleet tell which process
// issued a key (peers.go). The forwarded bit is 0 in every key handed out;
// a process that forwards a CancelRequest to a peer sets it, and a request
// with it set is only ever handled locally, so a request crosses at most
// one hop whatever the peers lists say. That leaves 48 random bits with
// peering on (17 + 31) and 62 with it off.
type cancelKey struct {
	pid    uint32
	secret [4]byte
}

const (
	peerIDBits    = 14
	pidRandomBits = 31 - peerIDBits // 17
	pidRandomMask = 1<<pidRandomBits - 1
	// forwardedBit is the top bit of the secret's first byte.
	forwardedBit = 0x80
)

// The peer id field must hold every id config accepts.
var _ [1<<peerIDBits - 1 - config.MaxPeerID]struct{}

// keyPeer is the peer id a key's pid names (0 for keys of a process with
// peering off, or forged ones).
func keyPeer(pid uint32) int { return int(pid >> pidRandomBits & (1<<peerIDBits - 1)) }

// keyForwarded reports whether a peer already forwarded this request.
func keyForwarded(secret []byte) bool { return len(secret) > 0 && secret[0]&forwardedBit != 0 }

// cancelMap maps handed-out keys to clients. With 17 random pid bits, pids
// repeat among a few hundred clients; the full (pid, secret) is unique.
type cancelMap struct {
	peerID int // restart-only (peer_id), so every key of this process names it
	mu     sync.Mutex
	m      map[uint32][]*clientConn
}

func (cm *cancelMap) init(peerID int) {
	cm.peerID = peerID
	cm.m = map[uint32][]*clientConn{}
}

// newKey draws a key in the layout above.
func (cm *cancelMap) newKey() cancelKey {
	var k cancelKey
	b := randomBytes(8)
	k.pid = binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
	if cm.peerID != 0 {
		k.pid = uint32(cm.peerID)<<pidRandomBits | k.pid&pidRandomMask
	}
	copy(k.secret[:], b[4:])
	k.secret[0] &^= forwardedBit
	return k
}

// register gives c a fresh unique key.
func (cm *cancelMap) register(c *clientConn) cancelKey {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	for {
		k := cm.newKey()
		if k.pid == 0 || cm.taken(k) {
			continue
		}
		// Set under the lock: lookup reads c.key of a mapped client
		// from another goroutine, right after taking this lock.
		c.key = k
		cm.m[k.pid] = append(cm.m[k.pid], c)
		return k
	}
}

func (cm *cancelMap) taken(k cancelKey) bool {
	for _, c := range cm.m[k.pid] {
		if c.key == k {
			return true
		}
	}
	return false
}

func (cm *cancelMap) unregister(k cancelKey) {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	list := cm.m[k.pid]
	for i, c := range list {
		if c.key == k {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(cm.m, k.pid)
	} else {
		cm.m[k.pid] = list
	}
}

// lookup finds the client for pid whose secret matches, comparing each
// candidate's secret in constant time. The forwarded bit is not part of
// the comparison.
func (cm *cancelMap) lookup(pid uint32, secret []byte) *clientConn {
	if len(secret) != 4 {
		return nil // every key multigres hands out has a 4-byte secret
	}
	var want [4]byte
	copy(want[:], secret)
	want[0] &^= forwardedBit
	cm.mu.Lock()
	defer cm.mu.Unlock()
	var found *clientConn
	for _, c := range cm.m[pid] {
		if subtle.ConstantTimeCompare(c.key.secret[:], want[:]) == 1 {
			found = c
		}
	}
	return found
}

// handleCancel serves a CancelRequest. A key issued by another process of
// the fleet goes to that process (forwardCancel); any other is matched
// against this process's clients and sent on to the server connection the
// matching client is using. Like PostgreSQL it answers nothing, whether or
// not the key matched.
func (s *Server) handleCancel(pid uint32, secret []byte) {
	if id := keyPeer(pid); s.cancels.peerID != 0 && id != s.cancels.peerID && !keyForwarded(secret) {
		s.forwardCancel(id, pid, secret)
		return
	}
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
