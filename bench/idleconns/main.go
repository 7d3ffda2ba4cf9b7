// Command idleconns measures the proxy's memory per idle client connection
// (bench/cmd/mgbench).
//
// It warms the proxy up with -warmup connections (login, one query, close),
// reads the proxy's VmRSS from /proc/PID/status (the baseline), opens -conns
// connections, connection k logging in as fmt.Sprintf(-user, k%-tenants+1),
// runs one query on each (so each has been through a transaction, as a
// pooled application connection has), leaves them idle for -settle and
// reads VmRSS again. It prints one line of key=value pairs:
//
//	conns=… baseline_kib=… loaded_kib=… per_conn_kib=… hwm_kib=… connect_s=… closed_kib=…
//
// per_conn_kib = (loaded - baseline) / conns; closed_kib is VmRSS a while
// after every connection was closed again.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/pgclient"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6432", "host:port")
	user := flag.String("user", "app_user.t%d", "username; %d is replaced by the tenant number 1..tenants")
	db := flag.String("db", "bench", "database")
	conns := flag.Int("conns", 10000, "idle client connections to hold")
	tenants := flag.Int("tenants", 0, "distinct tenants (0: one per connection)")
	pid := flag.Int("pid", 0, "proxy process id (required)")
	warmup := flag.Int("warmup", 16, "connections opened, used and closed before the baseline")
	settle := flag.Duration("settle", 3*time.Second, "idle time before reading VmRSS")
	dialers := flag.Int("dialers", 16, "concurrent logins")
	query := flag.String("query", "SELECT 1", "statement run once on each connection (empty: none)")
	flag.Parse()
	if *pid <= 0 {
		fail(errors.New("-pid is required"))
	}
	if *tenants <= 0 {
		*tenants = *conns
	}
	password := os.Getenv("PGPASSWORD")
	open := func(n int) ([]*pgclient.Conn, error) {
		cs := make([]*pgclient.Conn, n)
		var firstErr error
		var mu sync.Mutex
		next := int64(-1)
		var wg sync.WaitGroup
		for d := 0; d < *dialers; d++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := int(atomic.AddInt64(&next, 1))
					if k >= n {
						return
					}
					u := strings.Replace(*user, "%d", strconv.Itoa(k%*tenants+1), 1)
					c, err := pgclient.Connect(pgclient.Config{Addr: *addr, User: u, Password: password, Database: *db})
					if err == nil && *query != "" {
						if _, err = c.Simple(*query); err != nil {
							c.Close()
						}
					}
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("connection %d: %w", k, err)
						}
						mu.Unlock()
						return
					}
					cs[k] = c
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			closeAll(cs)
			return nil, firstErr
		}
		return cs, nil
	}

	w, err := open(*warmup)
	if err != nil {
		fail(fmt.Errorf("warm-up: %w", err))
	}
	closeAll(w)
	time.Sleep(*settle)
	base := status(*pid, "VmRSS")

	t0 := time.Now()
	cs, err := open(*conns)
	if err != nil {
		fail(err)
	}
	connectS := time.Since(t0).Seconds()
	time.Sleep(*settle)
	loaded := status(*pid, "VmRSS")
	hwm := status(*pid, "VmHWM")
	closeAll(cs)
	time.Sleep(*settle)
	closed := status(*pid, "VmRSS")
	fmt.Printf("conns=%d baseline_kib=%d loaded_kib=%d per_conn_kib=%.2f hwm_kib=%d connect_s=%.2f closed_kib=%d\n",
		*conns, base, loaded, float64(loaded-base)/float64(*conns), hwm, connectS, closed)
}

func closeAll(cs []*pgclient.Conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// status returns a "Vm…:   N kB" field of /proc/PID/status in KiB.
func status(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		fail(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				fail(err)
			}
			return v
		}
	}
	fail(fmt.Errorf("no %s in /proc/%d/status", field, pid))
	return 0
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
	os.Exit(2)
}
