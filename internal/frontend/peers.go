package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Peering: several multigres processes behind one TCP load balancer act as
// one for cancel requests. Each process writes its peer_id into the cancel
// keys it hands out (cancel.go); a CancelRequest that reaches a process
// other than the one that issued its key is sent on to that one, over a
// fresh connection to the address `peers` gives for it.
//
// The forwarding must not turn a flood of CancelRequests into a flood of
// connections: at most maxPeerForwards run at once, each bounded by
// peerForwardTimeout (waiting for a slot included), and whatever does not
// fit is dropped and counted. It must not loop either: the forwarded
// request carries the forwarded bit, and a request with that bit is never
// forwarded again.

// Results passed to Hooks.PeerCancel, one per CancelRequest whose key named
// another process.
const (
	PeerCancelOK      = "ok"           // delivered to the peer, which closed the connection
	PeerCancelFailed  = "failed"       // dial, write or the peer's close failed or timed out
	PeerCancelDropped = "dropped"      // no forwarding slot free within the timeout
	PeerCancelUnknown = "unknown_peer" // the key names an id not in `peers` (or a 5-byte+ secret)
)

const (
	// maxPeerForwards bounds forwards in flight per process.
	maxPeerForwards = 16
	// peerForwardTimeout bounds one forward, from waiting for a slot to
	// the peer's close. A cancel is worth little seconds later, and the
	// client's own cancel call waits for us (libpq's is blocking).
	peerForwardTimeout = 2 * time.Second
	// peerLogEvery spaces the warnings about failed or dropped forwards.
	peerLogEvery = 10 * time.Second
)

// peerState is the forwarding side of peering.
type peerState struct {
	slots    chan struct{}
	lastWarn atomic.Int64 // unix nanoseconds of the last warning
	quiet    atomic.Int64 // failures and drops not logged since
}

func (p *peerState) init() { p.slots = make(chan struct{}, maxPeerForwards) }

// peerAddrs maps the peer ids of `peers` to their addresses, without this
// process's own id.
func peerAddrs(cfg *config.Config) map[int]string {
	if cfg.PeerID == 0 {
		return nil
	}
	m := map[int]string{}
	for _, p := range cfg.PeerList() {
		if p.ID != cfg.PeerID {
			m[p.ID] = p.Addr
		}
	}
	return m
}

// forwardCancel sends the CancelRequest (pid, secret) to peer id with the
// forwarded bit set, and waits for the peer to close the connection, as a
// client waits for PostgreSQL: by then the peer has handled it.
func (s *Server) forwardCancel(id int, pid uint32, secret []byte) {
	addr, ok := s.live.Load().peers[id]
	if !ok || len(secret) != 4 {
		s.peerResult(PeerCancelUnknown, id, "", nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), peerForwardTimeout)
	defer cancel()
	select {
	case s.peers.slots <- struct{}{}:
		defer func() { <-s.peers.slots }()
	case <-ctx.Done():
		s.peerResult(PeerCancelDropped, id, addr, fmt.Errorf("%d forwards in flight", maxPeerForwards))
		return
	}
	fwd := append([]byte(nil), secret...)
	fwd[0] |= forwardedBit
	if err := sendPeerCancel(ctx, addr, pid, fwd); err != nil {
		s.peerResult(PeerCancelFailed, id, addr, err)
		return
	}
	s.peerResult(PeerCancelOK, id, addr, nil)
}

// sendPeerCancel writes the 16-byte CancelRequest to addr over a new
// connection and waits for the peer to close it.
func sendPeerCancel(ctx context.Context, addr string, pid uint32, secret []byte) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dial peer: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(wire.EncodeCancel(pid, secret)); err != nil {
		return fmt.Errorf("send cancel to peer: %w", err)
	}
	// A peer answers nothing and closes; anything else is not a peer.
	var b [1]byte
	n, err := nc.Read(b[:])
	if n > 0 {
		return fmt.Errorf("peer answered a CancelRequest with data (%q): is %s a multigres process?", b[:n], addr)
	}
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("wait for the peer to close: %w", err)
	}
	return nil
}

// peerResult counts one forward and logs failures and drops, at most one
// warning per peerLogEvery (with the number not logged since), so that a
// flood of cancels cannot flood the log.
func (s *Server) peerResult(result string, id int, addr string, err error) {
	if s.Hooks.PeerCancel != nil {
		s.Hooks.PeerCancel(result)
	}
	switch result {
	case PeerCancelOK:
		s.Logger.Debug("cancel request forwarded to peer", "peer_id", id, "peer", addr)
		return
	case PeerCancelUnknown:
		// A key from outside the fleet (or a guess): as PostgreSQL drops
		// an unknown key, only debug.
		s.Logger.Debug("cancel request names an unknown peer; dropped", "peer_id", id)
		return
	}
	now := time.Now().UnixNano()
	last := s.peers.lastWarn.Load()
	if now-last < int64(peerLogEvery) || !s.peers.lastWarn.CompareAndSwap(last, now) {
		s.peers.quiet.Add(1)
		return
	}
	s.Logger.Warn("cancel request for a peer not delivered", "result", result, "peer_id", id, "peer", addr,
		"err", err, "not_logged_since_last", s.peers.quiet.Swap(0))
}
