package config

import (
	"reflect"
	"strings"
	"testing"
)

// TestPeers: peer_id and peers load from every source, own id may be
// listed, and PeerList keeps the order written.
func TestPeers(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, []string{"--peer-id", "2", "--peers", "1=10.0.0.1:6432, 2=10.0.0.2:6432,3=mg-3.mg-peers.default.svc:6432"}, nil)
	if c.PeerID != 2 {
		t.Errorf("peer_id = %d", c.PeerID)
	}
	want := []Peer{{1, "10.0.0.1:6432"}, {2, "10.0.0.2:6432"}, {3, "mg-3.mg-peers.default.svc:6432"}}
	if got := c.PeerList(); !reflect.DeepEqual(got, want) {
		t.Errorf("PeerList() = %v, want %v", got, want)
	}
	c = mustLoad(t, nil, []string{"MULTIGRES_PEER_ID=16383", "MULTIGRES_PEERS=1=[::1]:7000"})
	if c.PeerID != MaxPeerID || !reflect.DeepEqual(c.PeerList(), []Peer{{1, "[::1]:7000"}}) {
		t.Errorf("from env: peer_id %d, peers %v", c.PeerID, c.PeerList())
	}
	file := writeFile(t, "multigres.conf", "peer_id = 1\npeers = 2=127.0.0.1:7001,3=127.0.0.1:7002\n")
	c = mustLoad(t, []string{"--config", file}, nil)
	if c.PeerID != 1 || len(c.PeerList()) != 2 {
		t.Errorf("from file: peer_id %d, peers %v", c.PeerID, c.PeerList())
	}
	// A fleet of one (or one whose peers come with a reload).
	mustLoad(t, []string{"--peer-id", "5"}, nil)
	// peers is reloadable, peer_id is not: the id is in every key handed out.
	old := mustLoad(t, []string{"--peer-id", "1", "--peers", "2=10.0.0.2:6432"}, nil)
	next := mustLoad(t, []string{"--peer-id", "3", "--peers", "2=10.0.0.2:6432,4=10.0.0.4:6432"}, nil)
	eff, applied, restart, err := ApplyReload(old, next)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(applied, []string{"peers"}) || !reflect.DeepEqual(restart, []string{"peer_id"}) || eff.PeerID != 1 || len(eff.Peers) != 2 {
		t.Errorf("reload: applied %v, restart %v, effective peer_id %d peers %v", applied, restart, eff.PeerID, eff.Peers)
	}
}

// TestPeersErrors: each bad value or combination fails at load time with
// an error naming the key.
func TestPeersErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--peer-id", "16384"}, `peer_id: must be 0..16383, got "16384"`},
		{[]string{"--peer-id", "-1"}, `peer_id: must be 0..16383`},
		{[]string{"--peer-id", "1", "--peers", "2:10.0.0.2:6432"}, `peers: "2:10.0.0.2:6432" must be id=host:port`},
		{[]string{"--peer-id", "1", "--peers", "0=10.0.0.2:6432"}, `peers: "0=10.0.0.2:6432": the id must be 1..16383`},
		{[]string{"--peer-id", "1", "--peers", "16384=10.0.0.2:6432"}, `the id must be 1..16383`},
		{[]string{"--peer-id", "1", "--peers", "x=10.0.0.2:6432"}, `the id must be 1..16383`},
		{[]string{"--peer-id", "1", "--peers", "2=10.0.0.2"}, `peers: "2=10.0.0.2": the address must be host:port`},
		{[]string{"--peer-id", "1", "--peers", "2=:6432"}, `the address must be host:port`},
		{[]string{"--peer-id", "1", "--peers", "2=10.0.0.2:0"}, `the port must be a number from 1 to 65535`},
		{[]string{"--peer-id", "1", "--peers", "2=10.0.0.2:http"}, `the port must be a number from 1 to 65535`},
		{[]string{"--peer-id", "1", "--peers", "2=10.0.0.2:6432,"}, `peers: item 2 is empty`},
		{[]string{"--peer-id", "1", "--peers", "2=10.0.0.2:6432,2=10.0.0.3:6432"}, `peers: id 2 is listed twice (10.0.0.2:6432 and 10.0.0.3:6432)`},
		{[]string{"--peers", "2=10.0.0.2:6432"}, `peers: set, but peer_id is 0 (peering off)`},
		// Another id at this process's own listener would send its keys here.
		{[]string{"--peer-id", "1", "--peers", "2=127.0.0.1:6432"}, `peers: entry 2=127.0.0.1:6432 is this process's own listen address, but this process is peer_id 1`},
		{[]string{"--peer-id", "1", "--peers", "2=localhost:6432"}, `peers: entry 2=localhost:6432 is this process's own listen address`},
		{[]string{"--peer-id", "1", "--listen-host", "*", "--peers", "3=[::1]:6432"}, `peers: entry 3=[::1]:6432 is this process's own listen address`},
		{[]string{"--peer-id", "1", "--listen-host", "10.1.2.3", "--peers", "3=10.1.2.3:6432"}, `peers: entry 3=10.1.2.3:6432 is this process's own listen address`},
	} {
		loadErr(t, tc.args, nil, tc.want)
	}
	// Other processes on the same host, or another loopback address, are
	// fine; so is this process's own id at its own address.
	for _, args := range [][]string{
		{"--peer-id", "1", "--peers", "1=127.0.0.1:6432,2=127.0.0.1:6433,3=127.0.0.2:6432"},
		{"--peer-id", "1", "--listen-host", "10.1.2.3", "--peers", "2=127.0.0.1:6432,3=10.1.2.4:6432"},
	} {
		mustLoad(t, args, nil)
	}
	// Validate catches values set by hand too.
	c := Default()
	c.PeerID, c.Peers = 1, []string{"2=10.0.0.2:6432", "2=10.0.0.2:6432"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `peers: "2=10.0.0.2:6432" is listed twice`) {
		t.Errorf("Validate() = %v", err)
	}
}
