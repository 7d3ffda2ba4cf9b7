package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// hookLog records what a proxy's cancel hooks saw.
type hookLog struct {
	mu     sync.Mutex
	events []string
}

func (h *hookLog) hooks() frontend.Hooks {
	add := func(s string) { h.mu.Lock(); h.events = append(h.events, s); h.mu.Unlock() }
	return frontend.Hooks{
		Cancel:     func(forwarded bool) { add(map[bool]string{true: "served", false: "unmatched"}[forwarded]) },
		PeerCancel: func(result string) { add("peer:" + result) },
	}
}

func (h *hookLog) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.events
	h.events = nil
	return out
}

// peerPair starts two peered proxies (ids 1 and 2) in front of e's
// database; peers is set by a reload once both addresses are known.
func peerPair(t *testing.T, e *env, extra1, extra2 []string) (a, b *proxytest.Proxy, la, lb *hookLog) {
	t.Helper()
	la, lb = &hookLog{}, &hookLog{}
	a = proxytest.StartProxyHooks(t, e.pg, func(c *config.Config) { c.PeerID = 1 }, la.hooks())
	b = proxytest.StartProxyHooks(t, e.pg, func(c *config.Config) { c.PeerID = 2 }, lb.hooks())
	for _, p := range []struct {
		proxy *proxytest.Proxy
		peers []string
	}{{a, append([]string{"2=" + b.Addr}, extra1...)}, {b, append([]string{"1=" + a.Addr}, extra2...)}} {
		next := p.proxy.Server.Config().Clone()
		next.Peers = p.peers
		if _, err := p.proxy.Server.Reload(next); err != nil {
			t.Fatalf("reload peers: %v", err)
		}
	}
	return a, b, la, lb
}

func sendCancel(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	r := rawDial(t, addr)
	r.write(wire.EncodeCancel(pid, secret))
	r.wantClosed() // after the proxy handled it, forwarding included
}

func eqEvents(t *testing.T, who string, got []string, want ...string) {
	t.Helper()
	if !eq(got, want) {
		t.Errorf("%s: events %v, want %v", who, got, want)
	}
}

// TestCancelForwardedToPeer: a client of proxy 1 gets a key naming peer
// 1; its CancelRequest sent to proxy 2 is forwarded to proxy 1 and stops
// the query with 57014. The same key with a wrong secret is forwarded too
// and cancels nothing.
func TestCancelForwardedToPeer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	a, b, la, lb := peerPair(t, e, nil, nil)
	ctx := testCtx(t)
	super := e.super(t)
	acme, err := pgx.Connect(ctx, proxytest.URL(a.Addr, "app_user.acme", proxytest.AppUserPassword, e.db))
	if err != nil {
		t.Fatal(err)
	}
	defer acme.Close(context.Background())
	pid, secret := acme.PgConn().PID(), acme.PgConn().SecretKey()
	if got := pid >> 17 & (1<<14 - 1); got != 1 || pid&0x80000000 != 0 {
		t.Fatalf("proxy 1 handed out pid %#x, naming peer %d", pid, got)
	}

	const sleep = "SELECT pg_sleep(10)"
	done := make(chan error, 1)
	go func() {
		_, err := acme.Exec(ctx, sleep)
		done <- err
	}()
	e.waitActive(t, ctx, super, sleep)
	wrong := append([]byte(nil), secret...)
	wrong[3] ^= 1
	sendCancel(t, b.Addr, pid, wrong)
	eqEvents(t, "proxy 2, wrong secret", lb.take(), "peer:ok")
	eqEvents(t, "proxy 1, wrong secret", la.take(), "unmatched")
	select {
	case err := <-done:
		t.Fatalf("a wrong secret, forwarded, ended the query: %v", err)
	default:
	}

	start := time.Now()
	sendCancel(t, b.Addr, pid, secret)
	select {
	case err := <-done:
		wantPgError(t, err, "57014", "canceling statement due to user request")
	case <-time.After(5 * time.Second):
		t.Fatal("query still running 5 s after the cancel sent to the other proxy")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("forwarded cancel took %v", d)
	}
	eqEvents(t, "proxy 2", lb.take(), "peer:ok")
	eqEvents(t, "proxy 1", la.take(), "served")
	if got := names(t, acme, "SELECT current_tenant_id()"); !eq(got, []string{"acme"}) {
		t.Fatalf("after the cancel: %v", got)
	}
}

// TestCancelForwardedOnceOnly: lists that point at each other for a third
// id cannot loop a request: proxy 1 sends a key of peer 3 to proxy 2 with
// the forwarded bit, and proxy 2 serves it locally (no match) instead of
// sending it back. A key naming an id in no list is dropped and counted.
func TestCancelForwardedOnceOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	// Both lists wrong on purpose: each says peer 3 is the other.
	a, b, la, lb := peerPair(t, e, nil, nil)
	for _, p := range []struct{ self, other *proxytest.Proxy }{{a, b}, {b, a}} {
		next := p.self.Server.Config().Clone()
		next.Peers = append(next.Peers, "3="+p.other.Addr)
		if _, err := p.self.Server.Reload(next); err != nil {
			t.Fatal(err)
		}
	}
	pid3 := uint32(3)<<17 | 12345
	sendCancel(t, a.Addr, pid3, []byte{1, 2, 3, 4})
	eqEvents(t, "proxy 1", la.take(), "peer:ok")
	eqEvents(t, "proxy 2", lb.take(), "unmatched")

	// The forwarded bit set by a client: served locally only, nothing forwarded.
	sendCancel(t, a.Addr, uint32(2)<<17|12345, []byte{0x81, 2, 3, 4})
	eqEvents(t, "proxy 1, forwarded bit", la.take(), "unmatched")
	eqEvents(t, "proxy 2, forwarded bit", lb.take())

	sendCancel(t, a.Addr, uint32(9)<<17|12345, []byte{1, 2, 3, 4})
	eqEvents(t, "proxy 1, unknown peer", la.take(), "peer:unknown_peer")
}
