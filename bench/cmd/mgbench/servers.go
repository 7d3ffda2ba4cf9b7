package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
	"github.com/multigres-proxy/multigres/bench/internal/stack"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// maxConn: PostgreSQL's connection limit follows the client counts, with
// room for the checks.
func (h *Harness) maxConn() int {
	return max(200, h.cfg.Clients+40, h.cfg.TxClients+100)
}

// startAll starts the servers of the selected suites: the plain stack
// and, for the citus suite, the Citus one (citus.go).
func (h *Harness) startAll(ctx context.Context) error {
	if h.cfg.plainStack() {
		if err := h.startPlain(ctx); err != nil {
			return err
		}
	}
	if !h.cfg.has(results.SuiteCitus) {
		return nil
	}
	h.citus = &citusStack{servers: map[string]*stack.Server{}, setup: citusSetup{multigres: h.cfg.Multigres, pgbench: h.pgbench,
		dir: h.tmp, scale: h.cfg.Scale, poolSize: h.cfg.PoolSize}}
	return h.citus.start(ctx)
}

// startPlain starts PostgreSQL (in huge pages when it can), loads the
// data, starts the proxies the plan needs and checks every path.
func (h *Harness) startPlain(ctx context.Context) error {
	h.huge = stack.ReserveHugePages(h.cfg.HugePages)
	port, err := stack.FreePort()
	if err != nil {
		return err
	}
	logf("starting PostgreSQL (%s) on 127.0.0.1:%d, huge pages %s", h.pgBin, port, onOff(h.huge.On))
	h.pg, err = stack.StartPostgres(stack.PGConfig{Bin: h.pgBin, Dir: h.tmp, Port: port, MaxConn: h.maxConn(),
		Password: superPassword, HugePages: h.huge.On, NativeLib: h.cfg.NativeLib, Owner: h.owner})
	if err != nil {
		return err
	}
	if err := h.loadData(ctx); err != nil {
		return err
	}
	if err := h.startProxies(ctx); err != nil {
		return err
	}
	return h.checks(ctx)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// needed is the set of instances the plan's tests use, plus the ones the
// checks and the memory suite use.
func (h *Harness) needed() map[string]bool {
	need := map[string]bool{}
	for _, s := range h.plans {
		for _, t := range s.Tests {
			for _, id := range t.Targets {
				need[s.Target(id).Instance] = true
			}
		}
	}
	if h.cfg.has(results.SuiteTransaction) || h.cfg.has(results.SuiteSwitching) || h.cfg.has(results.SuiteMemory) {
		need[plan.MultigresTx] = true
	}
	if h.cfg.has(results.SuiteMemory) {
		need[plan.PgBouncerTx] = true
	}
	if h.cfg.has(results.SuiteSession) {
		need[plan.MultigresSession], need[plan.MultigresNoGuard] = true, true
	}
	return need
}

// txFlags are the serve flags of the transaction-mode instances.
func (h *Harness) txFlags() []string {
	return append([]string{"--pool-mode", h.cfg.TxPoolMode, "--default-pool-size", strconv.Itoa(h.cfg.PoolSize)},
		strings.Fields(h.cfg.MgTxFlags)...)
}

func (h *Harness) startProxies(ctx context.Context) error {
	need := h.needed()
	verifier, err := h.verifier(ctx)
	if err != nil {
		return err
	}
	maxClients := h.maxConn() + h.cfg.SwitchConns + h.cfg.IdleConns + 100
	pgb := func(name, mode string, pool int) stack.PgBouncerConfig {
		return stack.PgBouncerConfig{Bin: h.pgbouncer, Dir: h.tmp, Name: name, Mode: mode, Pool: pool, MaxClientConn: maxClients,
			PGPort: h.pg.Port, DBs: []string{plan.DB, plan.TxDB}, Verifier: verifier, Owner: h.owner}
	}
	bouncers := []struct {
		inst string
		cfg  stack.PgBouncerConfig
	}{
		{plan.PgBouncerTx, pgb("tx", "transaction", h.cfg.PoolSize)},
		{plan.PgBouncerSession, pgb("session", "session", h.cfg.Clients+4)},
	}
	for _, b := range bouncers {
		if !need[b.inst] {
			continue
		}
		logf("starting PgBouncer[%s] (%s mode, pool %d)", b.cfg.Name, b.cfg.Mode, b.cfg.Pool)
		s, err := stack.StartPgBouncer(b.cfg)
		if err != nil {
			return err
		}
		h.servers[b.inst] = s
	}
	return h.startMultigreses(need)
}

func (h *Harness) startMultigreses(need map[string]bool) error {
	session := []string{"--pool-mode", "session"}
	instances := []struct {
		inst, bin string
		flags     []string
	}{
		{plan.MultigresTx, h.cfg.Multigres, h.txFlags()},
		{plan.MultigresTxBase, h.baselineBin, h.txFlags()},
		{plan.MultigresSession, h.cfg.Multigres, session},
		{plan.MultigresSessionBase, h.baselineBin, session},
		{plan.MultigresNoGuard, h.cfg.Multigres, append(session, "--guard=off")},
		{plan.MultigresSigned, h.cfg.Multigres, append(session, "--context-signing=on")},
	}
	for _, m := range instances {
		if !need[m.inst] {
			continue
		}
		s, err := h.startMultigres(m.inst, m.bin, m.flags)
		if err != nil {
			return err
		}
		h.servers[m.inst] = s
	}
	return nil
}

func (h *Harness) startMultigres(name, bin string, flags []string) (*stack.Server, error) {
	s, err := stack.StartMultigres(stack.MultigresConfig{Bin: bin, Dir: h.tmp, Name: name, PGPort: h.pg.Port,
		AuthPassword: authPassword, Flags: flags})
	if err != nil {
		return nil, err
	}
	logf("started multigres[%s] on 127.0.0.1:%d %s", name, s.Port, strings.Join(flags, " "))
	return s, nil
}

// password is the target's login password: app_user's, or the superuser's
// of the server it reaches.
func (h *Harness) password(tg plan.Target) string {
	switch {
	case !tg.Super:
		return appPassword
	case tg.Instance == plan.CitusCoordinator:
		return pgtest.SuperPassword
	}
	return superPassword
}

// port is the port of a plan instance.
func (h *Harness) port(inst string) int {
	if inst == plan.Postgres {
		return h.pg.Port
	}
	if s := h.servers[inst]; s != nil {
		return s.Port
	}
	if h.citus != nil {
		if port, ok := h.citus.port(inst); ok {
			return port
		}
	}
	panic(fmt.Sprintf("instance %s was not started", inst))
}
