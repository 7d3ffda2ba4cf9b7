package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/loadout"
	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
	"github.com/multigres-proxy/multigres/bench/internal/stack"
)

// pgbenchArgs are process i's pgbench arguments. -S is the built-in
// select-only script; with -C pgbench opens a new connection for every
// transaction and its TPS includes the connection time.
func (h *Harness) pgbenchArgs(t plan.Test, tg plan.Target, i, secs int, agg bool, out string) []string {
	args := []string{"-n", "-T", strconv.Itoa(secs)}
	if tg.Multi {
		args = append(args, "-c", "1", "-j", "1")
	} else {
		args = append(args, "-c", strconv.Itoa(t.Clients), "-j", strconv.Itoa(h.cfg.Threads))
	}
	if agg {
		args = append(args, "-l", "--aggregate-interval=1", fmt.Sprintf("--log-prefix=%s.%d.agg", out, i))
	}
	for _, a := range plan.PgbenchArgs(t, tg, i) {
		if plan.IsScript(a) {
			a = filepath.Join(h.tmp, a)
		}
		args = append(args, a)
	}
	return append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(h.port(tg.Instance)), "-U", tg.UserFor(i), tg.DB)
}

// runPgbench is one pgbench run: one process, or (Multi targets) one
// process per client, all started at once. The transaction suite's runs
// last -ramp seconds longer and, for Multi targets, log per-second
// aggregates: on a busy 2-core machine 64 processes get going over several
// seconds, and the plain sum of their TPS (each over its own run) would
// count a process that runs while others are still connecting, or already
// finished, as if it ran under full load. The run's TPS is then the
// windowed one (loadout.WindowTPS); the plain sum is kept for comparison.
func (h *Harness) runPgbench(ctx context.Context, suite string, t plan.Test, tg plan.Target, out string) measurement {
	secs, agg := h.cfg.Seconds, false
	if suite == results.SuiteTransaction {
		secs, agg = secs+h.cfg.Ramp, tg.Multi
	}
	n := 1
	if tg.Multi {
		n = t.Clients
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+60)*time.Second)
	defer cancel()
	exits, cpu, err := h.startWaitAll(ctx, n, out, func(i int) *exec.Cmd {
		return stack.Command(ctx, h.pgbench, h.pgbenchArgs(t, tg, i, secs, agg, out), "PGPASSWORD="+h.password(tg))
	})
	if err != nil {
		return measurement{err: err.Error()}
	}
	m := measurement{cpu: cpu}
	var lats []float64
	for i := 1; i <= n; i++ {
		text, _ := os.ReadFile(fmt.Sprintf("%s.%d.log", out, i))
		if f := loadout.PgbenchFailure(string(text), exits[i-1], secs); f != "" {
			return measurement{err: f}
		}
		s := loadout.ParsePgbench(string(text))
		m.round.TPS += s.TPS
		if s.LatencyMS != nil {
			lats = append(lats, *s.LatencyMS)
		}
	}
	m.round.LatencyMS = results.Median(lats)
	if agg {
		h.window(&m.round, n, out)
	}
	return m
}

// startWaitAll starts n commands (i = 1..n, output to out.i.log) and waits
// for all; it returns their exit codes and their CPU seconds together.
func (h *Harness) startWaitAll(ctx context.Context, n int, out string, mk func(i int) *exec.Cmd) ([]int, float64, error) {
	cmds := make([]*exec.Cmd, n)
	for i := 1; i <= n; i++ {
		f, err := os.Create(fmt.Sprintf("%s.%d.log", out, i))
		if err != nil {
			return nil, 0, err
		}
		cmd := mk(i)
		cmd.Stdout, cmd.Stderr = f, f
		err = cmd.Start()
		f.Close()
		if err != nil {
			for _, c := range cmds[:i-1] {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
			return nil, 0, err
		}
		cmds[i-1] = cmd
	}
	exits := make([]int, n)
	cpu := 0.0
	for i, cmd := range cmds {
		err := cmd.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return nil, 0, err
		}
		exits[i] = cmd.ProcessState.ExitCode()
		cpu += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	return exits, cpu, nil
}

// window sets the round's TPS to the windowed throughput of the processes'
// aggregate logs, or marks it "sum" when there is no window.
func (h *Harness) window(r *results.Round, n int, out string) {
	sum := r.TPS
	r.SumTPS = &sum
	procs := make([][]loadout.AggSample, 0, n)
	for i := 1; i <= n; i++ {
		files, _ := filepath.Glob(fmt.Sprintf("%s.%d.agg*", out, i))
		var samples []loadout.AggSample
		for _, p := range files {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			s, err := loadout.ParseAgg(f)
			f.Close()
			if err == nil {
				samples = append(samples, s...)
			}
		}
		procs = append(procs, samples)
	}
	w, ok := loadout.WindowTPS(procs)
	if !ok {
		r.Window = "sum"
		return
	}
	r.TPS, r.Window, r.LatencyMS = w.TPS, w.String(), w.LatencyMS
}

// runTenantload is one bench/tenantload run through multigres tx.
func (h *Harness) runTenantload(ctx context.Context, t plan.Test, tg plan.Target, out string) measurement {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(h.cfg.Seconds+120)*time.Second)
	defer cancel()
	args := []string{"-addr", fmt.Sprintf("127.0.0.1:%d", h.port(tg.Instance)), "-user", strings.ReplaceAll(tg.User, "{i}", "%d"),
		"-db", tg.DB, "-tenants", strconv.Itoa(tg.Tenants), "-conns", strconv.Itoa(h.cfg.SwitchConns),
		"-workers", strconv.Itoa(t.Clients), "-duration", fmt.Sprintf("%ds", h.cfg.Seconds), "-mode", t.Args[0],
		"-scale", strconv.Itoa(h.cfg.Scale)}
	exits, _, err := h.startWaitAll(ctx, 1, out, func(int) *exec.Cmd {
		return stack.Command(ctx, h.tenantload, args, "PGPASSWORD="+appPassword)
	})
	if err != nil {
		return measurement{err: err.Error()}
	}
	text, _ := os.ReadFile(out + ".1.log")
	line, ok := loadout.LineWithPrefix(string(text), "tps=")
	if exits[0] != 0 || !ok {
		return measurement{err: fmt.Sprintf("exit %d: %s", exits[0], loadout.Head(string(text), 6))}
	}
	kv := loadout.KV(line)
	num := func(k string) float64 { v, _ := strconv.ParseFloat(kv[k], 64); return v }
	switched, backends := num("switched"), int(num("backends"))
	return measurement{cpu: num("cpu_s"), round: results.Round{TPS: num("tps"), Switched: &switched, Backends: &backends}}
}
