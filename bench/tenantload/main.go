// Command tenantload is the tenant-switching load generator of the
// benchmark harness (bench/cmd/mgbench).
//
// It opens -conns client connections, connection k logging in as
// fmt.Sprintf(-user, k%-tenants+1) (so with -user app_user.t%d and
// -tenants 1000 the connections are tenants t1..t1000, and with -tenants 1
// all of them are t1), and runs -workers goroutines for -duration. Worker w
// owns connections w, w+workers, w+2*workers, ... and uses them in turn, one
// transaction each, so consecutive transactions of a worker come from
// different tenants. Every transaction is one statement,
//
//	SELECT pg_backend_pid(), current_tenant_id(),
//	       (SELECT abalance FROM pgbench_accounts WHERE aid = $1)
//
// with a random aid in 1..100000*scale: pgbench -S's lookup plus the server
// backend that ran it and the tenant it ran as. From these the generator
// counts how many transactions ran on a server backend whose previous
// transaction (seen by this generator) belonged to another tenant ("switched")
// and whether any ran as a tenant other than the connection's own
// ("mismatched": an isolation failure; the run exits 3).
//
// It prints one line of key=value pairs:
//
//	tps=… txns=… errors=… switched=… mismatched=… backends=… cpu_s=… wall_s=… connect_s=…
//
// tps counts the measured window only (after every connection is open);
// cpu_s is this process's user+system CPU time in that window, so the
// caller can tell whether the generator itself was the bottleneck.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/pgclient"
)

const query = "SELECT pg_backend_pid(), current_tenant_id(), (SELECT abalance FROM pgbench_accounts WHERE aid = $1)"

func main() {
	addr := flag.String("addr", "127.0.0.1:6432", "host:port")
	user := flag.String("user", "app_user.t%d", "username; %d is replaced by the tenant number 1..tenants")
	db := flag.String("db", "bench", "database")
	tenants := flag.Int("tenants", 1000, "distinct tenants (connection k uses tenant k%tenants+1)")
	conns := flag.Int("conns", 1000, "client connections")
	workers := flag.Int("workers", 64, "concurrent transactions")
	dur := flag.Duration("duration", 10*time.Second, "measured time")
	mode := flag.String("mode", "simple", "simple, extended or prepared (as pgbench -M)")
	scale := flag.Int("scale", 10, "pgbench scale (aid range 1..100000*scale)")
	dialers := flag.Int("dialers", 16, "concurrent logins while connecting")
	flag.Parse()
	if *conns < *workers || *tenants < 1 || *workers < 1 {
		fail(errors.New("need conns >= workers >= 1 and tenants >= 1"))
	}
	if *mode != "simple" && *mode != "extended" && *mode != "prepared" {
		fail(fmt.Errorf("unknown -mode %q", *mode))
	}
	password := os.Getenv("PGPASSWORD")

	// Connect.
	t0 := time.Now()
	cs := make([]*pgclient.Conn, *conns)
	want := make([]string, *conns)
	var firstErr error
	var errMu sync.Mutex
	next := int64(-1)
	var wg sync.WaitGroup
	for d := 0; d < *dialers; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(atomic.AddInt64(&next, 1))
				if k >= *conns {
					return
				}
				u := strings.Replace(*user, "%d", strconv.Itoa(k%*tenants+1), 1)
				if i := strings.LastIndexByte(u, '.'); i >= 0 {
					want[k] = u[i+1:]
				}
				c, err := pgclient.Connect(pgclient.Config{Addr: *addr, User: u, Password: password, Database: *db})
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
					return
				}
				cs[k] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		fail(firstErr)
	}
	connectS := time.Since(t0).Seconds()

	// Run.
	var (
		txns, errs, switched, mismatched atomic.Int64
		lastMu                           sync.Mutex
		last                             = map[string]string{} // backend pid -> tenant of its last transaction
		stop                             atomic.Bool
		errSample                        atomic.Value
	)
	aidMax := 100000 * *scale
	ru0 := cpu()
	start := time.Now()
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []int
			for k := w; k < *conns; k += *workers {
				mine = append(mine, k)
			}
			for i := 0; !stop.Load(); i++ {
				k := mine[i%len(mine)]
				c := cs[k]
				aid := strconv.Itoa(rand.IntN(aidMax) + 1)
				var res pgclient.Result
				var err error
				switch *mode {
				case "simple":
					res, err = c.Simple(strings.Replace(query, "$1", aid, 1))
				case "extended":
					res, err = c.Extended("", query, aid)
				default:
					res, err = c.Extended("tl", query, aid)
				}
				if err != nil || len(res.Row) < 2 {
					if err == nil {
						err = errors.New("no row")
					}
					errSample.CompareAndSwap(nil, err.Error())
					errs.Add(1)
					var pe *pgclient.Error
					if !errors.As(err, &pe) {
						return // connection broken
					}
					continue
				}
				pid, got := string(res.Row[0]), string(res.Row[1])
				if got != want[k] {
					mismatched.Add(1)
				}
				lastMu.Lock()
				if prev, ok := last[pid]; ok && prev != got {
					switched.Add(1)
				}
				last[pid] = got
				lastMu.Unlock()
				txns.Add(1)
			}
		}(w)
	}
	time.Sleep(*dur)
	stop.Store(true)
	wall := time.Since(start).Seconds()
	ru1 := cpu()
	wg.Wait()
	for _, c := range cs {
		c.Close()
	}
	n := txns.Load()
	sw := 0.0
	if n > 0 {
		sw = float64(switched.Load()) / float64(n)
	}
	fmt.Printf("tps=%.1f txns=%d errors=%d switched=%.4f mismatched=%d backends=%d cpu_s=%.2f wall_s=%.2f connect_s=%.2f\n",
		float64(n)/wall, n, errs.Load(), sw, mismatched.Load(), len(last), ru1-ru0, wall, connectS)
	if s, ok := errSample.Load().(string); ok {
		fmt.Fprintf(os.Stderr, "tenantload: first error: %s\n", s)
	}
	if mismatched.Load() > 0 {
		fmt.Fprintf(os.Stderr, "tenantload: %d transactions ran as another tenant than the connection's\n", mismatched.Load())
		os.Exit(3)
	}
	if errs.Load() > 0 {
		os.Exit(1)
	}
}

// cpu returns this process's user+system CPU seconds.
func cpu() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "tenantload: %v\n", err)
	os.Exit(2)
}
