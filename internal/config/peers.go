package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MaxPeerID is the largest peer_id: the id travels in 14 bits of the cancel
// keys multigres hands out (see internal/frontend/cancel.go).
const MaxPeerID = 1<<14 - 1

// Peer is one entry of `peers`: another multigres process of the same
// fleet, reached at Addr (host:port of its client listener) for cancel
// requests whose key it issued.
type Peer struct {
	ID   int
	Addr string
}

// PeerList parses `peers` into its entries, in the order written. Entries
// Validate would refuse are left out; call it on a validated Config.
func (c *Config) PeerList() []Peer {
	out := make([]Peer, 0, len(c.Peers))
	for _, item := range c.Peers {
		if p, err := parsePeer(item); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// parsePeer reads one `id=host:port` entry.
func parsePeer(item string) (Peer, error) {
	idText, addr, ok := strings.Cut(item, "=")
	if !ok {
		return Peer{}, fmt.Errorf("%q must be id=host:port, like 2=10.0.0.2:6432", item)
	}
	id, err := strconv.Atoi(strings.TrimSpace(idText))
	if err != nil || id < 1 || id > MaxPeerID {
		return Peer{}, fmt.Errorf("%q: the id must be 1..%d", item, MaxPeerID)
	}
	addr = strings.TrimSpace(addr)
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return Peer{}, fmt.Errorf("%q: the address must be host:port, like 10.0.0.2:6432", item)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Peer{}, fmt.Errorf("%q: the port must be a number from 1 to 65535", item)
	}
	return Peer{ID: id, Addr: addr}, nil
}

// checkPeerEntry is the per-item rule of `peers`.
func checkPeerEntry(item string) error {
	_, err := parsePeer(item)
	return err
}

// validatePeers checks the rules between peer_id, peers and the listener:
// every id once, peering switched on, and no other id pointing back at
// this process. It runs after each value passed its own check.
func (c *Config) validatePeers() []error {
	if len(c.Peers) == 0 {
		return nil
	}
	var errs []error
	if c.PeerID == 0 {
		errs = append(errs, fmt.Errorf("peers: set, but peer_id is 0 (peering off); set peer_id to this process's id"))
	}
	seen := map[int]string{}
	for _, p := range c.PeerList() {
		if prev, dup := seen[p.ID]; dup {
			errs = append(errs, fmt.Errorf("peers: id %d is listed twice (%s and %s)", p.ID, prev, p.Addr))
			continue
		}
		seen[p.ID] = p.Addr
		if p.ID != c.PeerID && c.isOwnAddr(p.Addr) {
			errs = append(errs, fmt.Errorf("peers: entry %d=%s is this process's own listen address, but this process is peer_id %d", p.ID, p.Addr, c.PeerID))
		}
	}
	return errs
}

// isOwnAddr reports whether addr is, as written, this process's client
// listener: the same host and port, or a loopback host and the port when
// listening on every interface. Names are not resolved, so an alias can
// slip through; a cancel forwarded to oneself is then dropped, never
// looped (a forwarded request is not forwarded again).
func (c *Config) isOwnAddr(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port != strconv.Itoa(c.Port) {
		return false
	}
	if strings.EqualFold(host, c.ListenHost) {
		return true
	}
	isLoopback := func(h string) bool {
		ip := net.ParseIP(h)
		return strings.EqualFold(h, "localhost") || (ip != nil && ip.IsLoopback())
	}
	switch c.ListenHost {
	case "*", "0.0.0.0", "::":
		return isLoopback(host)
	}
	// localhost and a loopback address name the same listener only when
	// one of them is the name localhost (127.0.0.2 is another address).
	return isLoopback(host) && isLoopback(c.ListenHost) &&
		(strings.EqualFold(host, "localhost") || strings.EqualFold(c.ListenHost, "localhost"))
}
