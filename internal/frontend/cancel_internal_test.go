package frontend

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/config"
)

// TestCancelKeyLayout: keys are positive, name this process's peer id in
// the 14 bits under the sign bit (all 31 bits random with peering off),
// leave the forwarded bit clear, are unique, and every bit meant to be
// random takes both values.
func TestCancelKeyLayout(t *testing.T) {
	t.Parallel()
	for _, peerID := range []int{0, 1, 7, config.MaxPeerID} {
		var cm cancelMap
		cm.init(peerID)
		var ones, zeros uint64 // bit i: seen set / seen clear, over pid<<32|secret
		seen := map[cancelKey]bool{}
		for range 2000 {
			k := cm.register(&clientConn{})
			if seen[k] {
				t.Fatalf("peer %d: key %v handed out twice", peerID, k)
			}
			seen[k] = true
			if k.pid == 0 || k.pid&0x80000000 != 0 {
				t.Fatalf("peer %d: pid %#x is not a positive int32", peerID, k.pid)
			}
			if peerID != 0 && keyPeer(k.pid) != peerID {
				t.Fatalf("peer %d: pid %#x names peer %d", peerID, k.pid, keyPeer(k.pid))
			}
			if keyForwarded(k.secret[:]) {
				t.Fatalf("peer %d: key handed out with the forwarded bit", peerID)
			}
			v := uint64(k.pid)<<32 | uint64(binary.BigEndian.Uint32(k.secret[:]))
			ones |= v
			zeros |= ^v
		}
		random := uint64(0x7fffffff_7fffffff) // all but the pid's sign bit and the forwarded bit
		if peerID != 0 {
			random = uint64(pidRandomMask)<<32 | 0x7fffffff
		}
		if got := ones & zeros; got != random {
			t.Errorf("peer %d: bits that vary %#016x, want %#016x", peerID, got, random)
		}
		if peerID != 0 {
			if n := popcount(random); n != 48 {
				t.Errorf("peer %d: %d random bits, want 48", peerID, n)
			}
		}
	}
}

func popcount(v uint64) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}

// TestCancelLookupSharedPid: two clients whose pids collide are told
// apart by their secrets; the forwarded bit does not take part; wrong or
// odd-sized secrets match nothing; unregistering one keeps the other.
func TestCancelLookupSharedPid(t *testing.T) {
	t.Parallel()
	var cm cancelMap
	cm.init(3)
	a, b := &clientConn{}, &clientConn{}
	a.key = cancelKey{pid: 3<<pidRandomBits | 5, secret: [4]byte{0x11, 2, 3, 4}}
	b.key = cancelKey{pid: a.key.pid, secret: [4]byte{0x22, 2, 3, 4}}
	cm.m[a.key.pid] = []*clientConn{a, b}
	if cm.lookup(a.key.pid, a.key.secret[:]) != a || cm.lookup(b.key.pid, b.key.secret[:]) != b {
		t.Fatal("lookup does not tell clients with one pid apart")
	}
	if cm.lookup(a.key.pid, []byte{0x11 | forwardedBit, 2, 3, 4}) != a {
		t.Error("the forwarded bit takes part in the comparison")
	}
	for _, secret := range [][]byte{{0x11, 2, 3, 5}, {0x33, 2, 3, 4}, {0x11, 2, 3}, {0x11, 2, 3, 4, 0}} {
		if c := cm.lookup(a.key.pid, secret); c != nil {
			t.Errorf("secret %x matched", secret)
		}
	}
	if !cm.taken(a.key) || cm.taken(cancelKey{pid: a.key.pid}) {
		t.Error("taken is wrong")
	}
	cm.unregister(a.key)
	if cm.lookup(a.key.pid, a.key.secret[:]) != nil || cm.lookup(b.key.pid, b.key.secret[:]) != b {
		t.Error("unregister removed the wrong client")
	}
	cm.unregister(b.key)
	if len(cm.m) != 0 {
		t.Errorf("map not empty: %v", cm.m)
	}
}

// peerServer is a Server with peering set up, and the results its
// PeerCancel and Cancel hooks saw.
type peerServer struct {
	*Server
	mu      sync.Mutex
	results []string
}

func newPeerServer(t *testing.T, peerID int, peers ...string) *peerServer {
	t.Helper()
	cfg := config.Default()
	cfg.AuthType = "trust"
	cfg.PeerID, cfg.Peers = peerID, peers
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ps := &peerServer{Server: s}
	s.Hooks.PeerCancel = func(r string) { ps.mu.Lock(); ps.results = append(ps.results, r); ps.mu.Unlock() }
	s.Hooks.Cancel = func(forwarded bool) {
		ps.mu.Lock()
		ps.results = append(ps.results, map[bool]string{true: "local_sent", false: "local_none"}[forwarded])
		ps.mu.Unlock()
	}
	return ps
}

func (ps *peerServer) take() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	r := ps.results
	ps.results = nil
	return r
}

// fakePeer is a TCP listener standing in for another process: it reads
// one CancelRequest per connection, hands it to the test and closes (or,
// with hold, keeps the connection open until the test ends).
func fakePeer(t *testing.T, hold bool) (addr string, got <-chan []byte) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []byte, 16)
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				b := make([]byte, 16)
				_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(nc, b); err == nil {
					ch <- b
				}
				if hold {
					<-done
				}
			}()
		}
	}()
	return l.Addr().String(), ch
}

func wantResults(t *testing.T, ps *peerServer, want ...string) {
	t.Helper()
	if got := ps.take(); !slicesEqual(got, want) {
		t.Errorf("results %v, want %v", got, want)
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestForwardCancel: a key naming a listed peer goes there, as a 16-byte
// CancelRequest with the same pid and the secret's forwarded bit set; a
// key naming this process, an unlisted id, or carrying the forwarded bit
// is not forwarded; an unreachable or silent peer is a failure within the
// timeout.
func TestForwardCancel(t *testing.T) {
	t.Parallel()
	addr, got := fakePeer(t, false)
	silent, _ := fakePeer(t, true)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	ps := newPeerServer(t, 1, "1=127.0.0.1:6432", "2="+addr, "3="+closedAddr, "4="+silent)

	pid := uint32(2)<<pidRandomBits | 0x1abcd
	secret := []byte{0x5a, 0xb0, 0xc0, 0xd0}
	ps.handleCancel(pid, secret)
	select {
	case b := <-got:
		want := binary.BigEndian.AppendUint32(nil, 16)
		want = binary.BigEndian.AppendUint32(want, 80877102)
		want = binary.BigEndian.AppendUint32(want, pid)
		want = append(want, 0x5a|forwardedBit, 0xb0, 0xc0, 0xd0)
		if !bytes.Equal(b, want) {
			t.Errorf("peer got %x, want %x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the peer got no CancelRequest")
	}
	wantResults(t, ps, PeerCancelOK)
	if secret[0] != 0x5a {
		t.Error("forwarding changed the caller's secret")
	}

	// Not forwarded: already forwarded once, this process's own id, an
	// id not in peers, an odd-sized secret.
	ps.handleCancel(pid, []byte{0x5a | forwardedBit, 0xb0, 0xc0, 0xd0})
	wantResults(t, ps, "local_none")
	ps.handleCancel(uint32(1)<<pidRandomBits|7, secret)
	wantResults(t, ps, "local_none")
	ps.handleCancel(uint32(9)<<pidRandomBits|7, secret)
	ps.handleCancel(7, secret) // peer id 0: a key from outside the fleet
	ps.handleCancel(pid, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	wantResults(t, ps, PeerCancelUnknown, PeerCancelUnknown, PeerCancelUnknown)
	select {
	case b := <-got:
		t.Fatalf("the peer got %x", b)
	default:
	}

	// Unreachable, and a peer that never closes: failures, within bounds.
	start := time.Now()
	ps.handleCancel(uint32(3)<<pidRandomBits|7, secret)
	ps.handleCancel(uint32(4)<<pidRandomBits|7, secret)
	wantResults(t, ps, PeerCancelFailed, PeerCancelFailed)
	if d := time.Since(start); d > 2*peerForwardTimeout+time.Second {
		t.Errorf("failed forwards took %v", d)
	}

	// Every slot busy: dropped after the timeout, never queued forever.
	for range maxPeerForwards {
		ps.peers.slots <- struct{}{}
	}
	ps.handleCancel(pid, secret)
	wantResults(t, ps, PeerCancelDropped)
	for range maxPeerForwards {
		<-ps.peers.slots
	}
}

// TestPeeringOff: with peer_id 0 every key is this process's business,
// whatever its high bits say.
func TestPeeringOff(t *testing.T) {
	t.Parallel()
	ps := newPeerServer(t, 0)
	ps.handleCancel(uint32(2)<<pidRandomBits|7, []byte{1, 2, 3, 4})
	wantResults(t, ps, "local_none")
}

// TestReloadPeers: peers change with a reload; peer_id does not.
func TestReloadPeers(t *testing.T) {
	t.Parallel()
	addr, got := fakePeer(t, false)
	ps := newPeerServer(t, 1)
	pid := uint32(5)<<pidRandomBits | 9
	ps.handleCancel(pid, []byte{1, 2, 3, 4})
	wantResults(t, ps, PeerCancelUnknown)
	next := ps.Config().Clone()
	next.Peers = []string{"5=" + addr}
	next.PeerID = 2
	restart, err := ps.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(restart, []string{"peer_id"}) || ps.cancels.peerID != 1 {
		t.Errorf("reload: need restart %v, peer id now %d", restart, ps.cancels.peerID)
	}
	ps.handleCancel(pid, []byte{1, 2, 3, 4})
	wantResults(t, ps, PeerCancelOK)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the peer added by the reload got nothing")
	}
}
