package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/loadout"
	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
	"github.com/multigres-proxy/multigres/bench/internal/stack"
)

// memoryRow is one memory measurement: which proxy, logged in how.
type memoryRow struct {
	id, label string
	bin       string // multigres binary; "" for the PgBouncer tx instance
	user      string
	tenants   int // idleconns -tenants (0: one per connection)
}

// memory measures proxy VmRSS with many idle tenant connections
// (bench/idleconns). Each multigres row gets a fresh instance: Go keeps
// freed heap for a while, so a proxy that already held connections has a
// higher baseline. "all tenant t1" tells per-connection from per-tenant
// memory; PgBouncer tx is the reference.
func (h *Harness) memory(ctx context.Context) error {
	o := h.cfg.planOptions()
	s := results.Suite{Name: results.SuiteMemory, Title: plan.MemoryTitle, Description: plan.MemoryDescription(o)}
	rows := []memoryRow{
		{"multigres", fmt.Sprintf("multigres tx (tenants t1..t%d)", h.cfg.IdleConns), h.cfg.Multigres, "app_user.t%d", 0},
		{"multigres1", "multigres tx (all tenant t1)", h.cfg.Multigres, "app_user.t%d", 1},
	}
	if h.baselineBin != "" {
		rows = append(rows, memoryRow{"multigres_base", fmt.Sprintf("multigres tx baseline (tenants t1..t%d)", h.cfg.IdleConns),
			h.baselineBin, "app_user.t%d", 0})
	}
	rows = append(rows, memoryRow{"pgbouncer", "PgBouncer tx (app_user)", "", "app_user", 0})
	for _, row := range rows {
		m, err := h.memoryOne(ctx, row)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.errors = append(h.errors, fmt.Sprintf("memory, %s:\n%v", row.label, err))
			logf("memory: %s FAILED: %v", row.id, err)
			continue
		}
		s.Memory = append(s.Memory, m)
	}
	h.suites = append(h.suites, s)
	return nil
}

func (h *Harness) memoryOne(ctx context.Context, row memoryRow) (results.MemoryRow, error) {
	srv := h.servers[plan.PgBouncerTx]
	if row.bin != "" {
		var err error
		if srv, err = h.startMultigres("mem-"+row.id, row.bin, h.txFlags()); err != nil {
			return results.MemoryRow{}, err
		}
		h.extra = append(h.extra, srv)
		defer srv.Stop()
	}
	logf("memory: %d idle connections to %s (pid %d)", h.cfg.IdleConns, row.id, srv.Pid())
	args := []string{"-addr", fmt.Sprintf("127.0.0.1:%d", srv.Port), "-user", row.user, "-db", plan.TxDB,
		"-conns", strconv.Itoa(h.cfg.IdleConns), "-pid", strconv.Itoa(srv.Pid())}
	if row.tenants > 0 {
		args = append(args, "-tenants", strconv.Itoa(row.tenants))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out := filepath.Join(h.tmp, "memory-"+row.id)
	exits, _, err := h.startWaitAll(ctx, 1, out, func(int) *exec.Cmd {
		return stack.Command(ctx, h.idleconns, args, "PGPASSWORD="+appPassword)
	})
	if err != nil {
		return results.MemoryRow{}, err
	}
	text, _ := os.ReadFile(out + ".1.log")
	line, ok := loadout.LineWithPrefix(string(text), "conns=")
	if exits[0] != 0 || !ok {
		return results.MemoryRow{}, fmt.Errorf("exit %d: %s", exits[0], loadout.Head(string(text), 6))
	}
	logf("memory: %s %s", row.id, line)
	return memoryFromKV(row.id, row.label, loadout.KV(line)), nil
}

// memoryFromKV reads idleconns' line (conns= baseline_kib= loaded_kib=
// per_conn_kib= hwm_kib= connect_s= closed_kib=).
func memoryFromKV(id, label string, kv map[string]string) results.MemoryRow {
	i := func(k string) int64 { v, _ := strconv.ParseInt(kv[k], 10, 64); return v }
	f := func(k string) float64 { v, _ := strconv.ParseFloat(kv[k], 64); return v }
	return results.MemoryRow{Target: id, Label: label, Conns: int(i("conns")), BaselineKiB: i("baseline_kib"),
		LoadedKiB: i("loaded_kib"), PerConnKiB: f("per_conn_kib"), HWMKiB: i("hwm_kib"), ClosedKiB: i("closed_kib"),
		ConnectS: f("connect_s")}
}
