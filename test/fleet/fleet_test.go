package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// Set by TestMain.
var (
	haproxyBin string // "" when haproxy is not installed
	mgBin      string // the multigres binary, built once
	pg         *pgtest.Server
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	haproxyBin = findHAProxy()
	if haproxyBin == "" {
		return m.Run() // every test skips (or fails under CI) with how to install it
	}
	dir, err := os.MkdirTemp("", "multigres-fleet-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	mgBin = filepath.Join(dir, "multigres")
	if out, err := exec.Command("go", "build", "-o", mgBin, "github.com/multigres-proxy/multigres/cmd/multigres").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "fleet: build multigres: %v\n%s", err, out)
		return 1
	}
	if pg, err = pgtest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet: pgtest:", err)
		return 1
	}
	defer pg.Stop()
	return m.Run()
}

func findHAProxy() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func needHAProxy(t *testing.T) {
	t.Helper()
	if haproxyBin != "" {
		return
	}
	const how = "haproxy is not installed: run scripts/ensure-deps.sh haproxy (apt-get install haproxy); make test installs it"
	if os.Getenv("CI") != "" {
		t.Fatal(how)
	}
	t.Skip(how)
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer = proxytest.SyncBuffer

// child is a process a test started; it is killed at cleanup if still
// running.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error // set before exited is closed
}

func startChild(t *testing.T, name string, args ...string) *child {
	t.Helper()
	c := &child{name: name, out: &syncBuffer{}, exited: make(chan struct{})}
	c.cmd = exec.Command(args[0], args[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		c.kill(t)
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.out.String())
		}
	})
	return c
}

// kill sends SIGKILL and waits (bounded) for the process to be gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if c.running() {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit within 10 s of SIGKILL", c.name)
	}
}

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// waitUntil polls cond every 20 ms until it holds, failing the test after
// limit; cond may also end the wait with an error.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		<-tick.C
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is one multigres process of the fleet.
type proc struct {
	*child
	id    int
	addr  string // client listener
	admin string // admin HTTP (/metrics, /readyz)
}

// fleet is one database, three multigres processes peered with each
// other, and HAProxy in front of them.
type fleet struct {
	db     string
	procs  []*proc
	lb     string // HAProxy's address: what clients dial
	lbSock string // HAProxy's stats socket
}

const fleetSize = 3

// startFleet starts the processes and the balancer and waits (bounded)
// until HAProxy sees every process up.
func startFleet(t *testing.T, extraConf ...string) *fleet {
	t.Helper()
	needHAProxy(t)
	f := &fleet{db: pg.CreateDB(t)}
	proxytest.Setup(t, pg, f.db)
	dir := t.TempDir()
	var peers []string
	for i := range fleetSize {
		p := &proc{id: i + 1, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		f.procs = append(f.procs, p)
		peers = append(peers, fmt.Sprintf("%d=%s", p.id, p.addr))
	}
	for _, p := range f.procs {
		_, port, _ := net.SplitHostPort(p.addr)
		conf := filepath.Join(dir, fmt.Sprintf("multigres-%d.conf", p.id))
		lines := append([]string{
			"port = " + port, "upstream_port = " + strconv.Itoa(pg.Port), "server_tls_mode = disable",
			"auth_password = " + proxytest.AuthPassword, "admin_listen = " + p.admin,
			"peer_id = " + strconv.Itoa(p.id),
			// One list for the whole fleet: each process skips its own id.
			"peers = " + strings.Join(peers, ","),
		}, extraConf...)
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p.child = startChild(t, fmt.Sprintf("multigres peer %d", p.id), mgBin, "--config", conf)
	}
	for _, p := range f.procs {
		waitUntil(t, 20*time.Second, fmt.Sprintf("peer %d to be ready", p.id), func() (bool, error) {
			if !p.running() {
				return false, fmt.Errorf("exited: %v\n%s", p.err, p.out.String())
			}
			code, _, err := httpGet("http://" + p.admin + "/readyz")
			return err == nil && code == http.StatusOK, nil
		})
	}
	f.startHAProxy(t, dir)
	return f
}

func (f *fleet) startHAProxy(t *testing.T, dir string) {
	t.Helper()
	f.lb = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	f.lbSock = filepath.Join(dir, "haproxy.sock")
	var servers strings.Builder
	for _, p := range f.procs {
		_, adminPort, _ := net.SplitHostPort(p.admin)
		fmt.Fprintf(&servers, "    server mg%d %s check port %s\n", p.id, p.addr, adminPort)
	}
	// TCP mode, round robin; health checks ask each process's /readyz
	// every 200 ms and take a process out at the first failure. A
	// connection to a dead process is retried on another (redispatch).
	cfg := fmt.Sprintf(`global
    maxconn 2000
    stats socket %s mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 120s
    timeout server 120s
    timeout check 1s
    retries 3
    option redispatch

frontend fleet
    bind %s
    default_backend multigres

backend multigres
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server inter 200ms fall 1 rise 1
%s`, f.lbSock, f.lb, servers.String())
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxyBin, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	hap := startChild(t, "haproxy", haproxyBin, "-db", "-f", path)
	waitUntil(t, 20*time.Second, "HAProxy to see every process up", func() (bool, error) {
		if !hap.running() {
			return false, fmt.Errorf("haproxy exited: %v\n%s", hap.err, hap.out.String())
		}
		st, err := f.serverStatus()
		if err != nil {
			return false, nil // the socket is not there yet
		}
		for _, p := range f.procs {
			if !strings.HasPrefix(st[p.id], "UP") {
				return false, nil
			}
		}
		return true, nil
	})
}

// serverStatus asks HAProxy's stats socket for each process's status
// ("UP", "DOWN", ...), by peer id.
func (f *fleet) serverStatus() (map[int]string, error) {
	nc, err := net.DialTimeout("unix", f.lbSock, time.Second)
	if err != nil {
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(nc, "show stat\n"); err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	raw, err := io.ReadAll(nc)
	if err != nil {
		return nil, fmt.Errorf("show stat: %w", err)
	}
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(raw, []byte("# "))))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("show stat: %v: %q", err, raw)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	out := map[int]string{}
	for _, row := range rows[1:] {
		if len(row) <= col["status"] || row[col["pxname"]] != "multigres" {
			continue
		}
		if id, err := strconv.Atoi(strings.TrimPrefix(row[col["svname"]], "mg")); err == nil {
			out[id] = row[col["status"]]
		}
	}
	return out, nil
}

// connect opens a client connection through the balancer.
func (f *fleet) connect(ctx context.Context, user string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(ctx, proxytest.URL(f.lb, user, proxytest.AppUserPassword, f.db))
}

// metric sums the samples of a counter (name with its labels, as in the
// exposition) over every process still running.
func (f *fleet) metric(t *testing.T, sample string) (sum float64, byPeer map[int]float64) {
	t.Helper()
	byPeer = map[int]float64{}
	for _, p := range f.procs {
		if !p.running() {
			continue
		}
		code, body, err := httpGet("http://" + p.admin + "/metrics")
		if err != nil || code != http.StatusOK {
			t.Fatalf("peer %d /metrics: %d %v", p.id, code, err)
		}
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("peer %d: %q: %v", p.id, sc.Text(), err)
				}
				byPeer[p.id] += n
				sum += n
			}
		}
	}
	return sum, byPeer
}

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// peerOf is the peer id a connection's cancel key names: the process
// that serves it.
func peerOf(c *pgx.Conn) int { return int(c.PgConn().PID() >> 17 & (1<<14 - 1)) }
