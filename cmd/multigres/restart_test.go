package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// listeners counts the IPv4 sockets in LISTEN state on 127.0.0.1:port.
// Dialing cannot tell one listener from two behind SO_REUSEPORT; the
// kernel's table can.
func listeners(t *testing.T, port int) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local_address rem_address st ...; st 0A is LISTEN.
		if len(fields) > 3 && fields[1] == want && fields[3] == "0A" {
			n++
		}
	}
	return n
}

func findPgbench(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	if dir, err := pgtest.FindBinDir(); err == nil {
		if p := filepath.Join(dir, "pgbench"); isExecutable(p) {
			return p
		}
	}
	t.Skip("pgbench not found in PATH or the PostgreSQL bin directory")
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// pgbenchCount reads "label: N" from pgbench's report; ok is false when
// the line is missing (pgbench before 15 prints no failed count).
func pgbenchCount(out, label string) (n int, ok bool) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	n, _ = strconv.Atoi(m[1])
	return n, true
}

// TestOnlineRestart runs a pgbench load (a new connection per transaction)
// through process A, starts process B on the same port with
// listen_reuseport, sends A SIGTERM and checks that the load carried on
// through B and that every transaction pgbench reported as committed is in
// the table.
// clientAborted matches pgbench's line for each aborted client, and
// clientAbortedConnecting the ones that aborted while connecting.
var (
	clientAborted           = regexp.MustCompile(`client \d+ aborted`)
	clientAbortedConnecting = regexp.MustCompile(`client \d+ aborted while establishing connection`)
)

func TestOnlineRestart(t *testing.T) {
	t.Parallel()
	pgbench := findPgbench(t)
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := pg.Exec(ctx, db, `CREATE TABLE bench_rows (id bigserial PRIMARY KEY, tenant_id text NOT NULL DEFAULT current_tenant_id(), v int);
		SELECT multigres_protect('bench_rows', 'tenant_id');`); err != nil {
		t.Fatal(err)
	}
	super := pg.Connect(t, db)
	count := func() int {
		t.Helper()
		var n int
		if err := super.QueryRow(ctx, "SELECT count(*) FROM bench_rows").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("bench_rows has %d rows before the load", n)
	}

	bin := buildBinary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "multigres.conf")
	writeConf(t, conf, fmt.Sprintf("port = %d", port), fmt.Sprintf("upstream_port = %d", pg.Port),
		"server_tls_mode = disable", "client_tls_mode = disable", "auth_password = "+proxytest.AuthPassword,
		"shutdown_timeout = 10s", "listen_reuseport = on")
	script := filepath.Join(dir, "script.sql")
	writeConf(t, script, "INSERT INTO bench_rows (v) VALUES (1);")

	a := startProc(t, bin, conf)
	waitFor(t, 15*time.Second, "process A to listen", func() bool { return listeners(t, port) == 1 })

	bench := exec.CommandContext(ctx, pgbench, "-n", "-C", "-c", "4", "-j", "2", "-T", "6", "-f", script,
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "app_user.acme", db)
	bench.Env = append(os.Environ(), "PGPASSWORD="+proxytest.AppUserPassword, "PGSSLMODE=disable")
	var benchOut syncBuffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()

	// Let the load run on A alone for a while: the first rows must appear
	// before B starts.
	waitFor(t, 10*time.Second, "pgbench to commit through A", func() bool { return count() >= 20 })
	b := startProc(t, bin, conf)
	waitFor(t, 15*time.Second, "process B to bind the same port", func() bool { return listeners(t, port) == 2 })
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("A exit: %v\n%s", err, a.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("A did not exit within 20 s of SIGTERM\n%s", a.stderr.String())
	}
	atAExit := count()
	if n := listeners(t, port); n != 1 {
		t.Fatalf("%d listeners after A exited, want 1 (B's)", n)
	}

	var benchErr error
	select {
	case benchErr = <-benchDone:
	case <-time.After(30 * time.Second):
		t.Fatalf("pgbench did not finish\n%s", benchOut.String())
	}
	out := benchOut.String()
	processed, ok := pgbenchCount(out, "number of transactions actually processed")
	if !ok {
		t.Fatalf("pgbench printed no transaction count (exit %v):\n%s", benchErr, out)
	}
	failed, _ := pgbenchCount(out, "number of failed transactions")
	rows := count()
	aborted := len(clientAborted.FindAllString(out, -1))
	t.Logf("pgbench: processed %d, failed %d, client aborts %d, exit %v; rows %d (%d when A exited)",
		processed, failed, aborted, benchErr, rows, atAExit)

	// Every transaction pgbench counted as processed committed, and nothing
	// else did: the INSERT is the whole transaction.
	if rows != processed {
		t.Fatalf("bench_rows has %d rows, pgbench reported %d committed transactions\n%s", rows, processed, out)
	}
	if failed != 0 {
		t.Fatalf("pgbench reported %d failed transactions\n%s", failed, out)
	}
	// A client that lost its connection during the switch would abort
	// (pgbench exits 2). With net.ipv4.tcp_migrate_req = 1 the kernel hands
	// connections queued on A's closing listener to B, and there must be
	// none. Without it, such a connection is reset (the documented
	// limitation, docs/operations.md "Online restart"): the only aborts
	// allowed are connection attempts, never a transaction in flight.
	var ee *exec.ExitError
	migrate, _ := os.ReadFile("/proc/sys/net/ipv4/tcp_migrate_req")
	attempts := len(clientAbortedConnecting.FindAllString(out, -1))
	switch {
	case strings.TrimSpace(string(migrate)) != "1" && aborted == attempts && aborted <= 2:
		if aborted > 0 {
			t.Logf("%d connection attempts reset at A's listener close (tcp_migrate_req is off)", aborted)
		}
	case errors.As(benchErr, &ee) || aborted > 0:
		t.Fatalf("pgbench: %v, %d client aborts during the restart (%d while connecting, tcp_migrate_req %q)\n%s",
			benchErr, aborted, attempts, strings.TrimSpace(string(migrate)), out)
	case benchErr != nil:
		t.Fatal(benchErr)
	}
	if rows <= atAExit {
		t.Fatalf("no transaction committed after A exited (%d rows then, %d at the end): B did not take over", atAExit, rows)
	}

	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.exited:
		if err != nil {
			t.Fatalf("B exit: %v\n%s", err, b.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("B did not exit within 20 s of SIGTERM\n%s", b.stderr.String())
	}
}
