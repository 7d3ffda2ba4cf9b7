package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/results"
)

// checks runs before any measurement: every path returns the rows it
// should, RLS is really on, multigres sets the tenant itself, the guard
// and signing are really on where they should be, and transaction pooling
// really shares server connections. Any failure aborts the run.
func (h *Harness) checks(ctx context.Context) error {
	if h.servers[plan.MultigresTx] != nil {
		if err := h.checkTx(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	if h.cfg.has(results.SuiteSession) {
		if err := h.checkSession(ctx); err != nil {
			return fmt.Errorf("check: %w", err)
		}
	}
	return nil
}

// expect runs sql as user through port on db and compares the value.
func (h *Harness) expect(ctx context.Context, what, user string, port int, db, sql, want string) error {
	got, err := h.as(ctx, user, port, db, sql)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got != want {
		return fmt.Errorf("%s: %s sees %q, want %q", what, user, got, want)
	}
	return nil
}

const countSQL = "SELECT count(*) FROM pgbench_accounts"

// checkTx: the many-tenant paths see exactly their tenant's rows, the guard
// is on, and the tx instance shares at most pool-size server connections.
func (h *Harness) checkTx(ctx context.Context) error {
	per := fmt.Sprint(100000 * h.cfg.Scale / plan.TxTenants)
	pg := h.pg.Port
	if err := h.expect(ctx, "direct on "+plan.TxDB, "app_user", pg, plan.TxDB, countSQL, per); err != nil {
		return err
	}
	if err := h.expect(ctx, "RLS in "+plan.TxDB, "app_user", pg, plan.TxDB,
		"SET app.current_tenant_id = 'nobody'; "+countSQL, "0"); err != nil {
		return err
	}
	own := func(t string) string {
		return fmt.Sprintf("SELECT count(*) || ':' || count(*) FILTER (WHERE tenant_id = '%s') FROM pgbench_accounts", t)
	}
	if s := h.servers[plan.PgBouncerTx]; s != nil {
		if err := h.expect(ctx, "PgBouncer tx", "app_user", s.Port, plan.TxDB, own("t1"), per+":"+per); err != nil {
			return err
		}
		// What the "app sets tenant" target does in every transaction.
		app := "BEGIN; SELECT set_config('app.current_tenant_id', 't2', true); " + own("t2") + "; COMMIT"
		if err := h.expect(ctx, "PgBouncer tx, app sets tenant", "app_user", s.Port, plan.TxDB, app, per+":"+per); err != nil {
			return err
		}
	}
	for _, inst := range []string{plan.MultigresTx, plan.MultigresTxBase} {
		if h.servers[inst] == nil {
			continue
		}
		if err := h.checkTxMultigres(ctx, inst, per, own); err != nil {
			return err
		}
	}
	logf("check transaction-mode paths: %s rows each, all of the login's tenant; app_user.nobody sees none; the guard refuses set_config", per)
	return h.checkPooling(ctx)
}

func (h *Harness) checkTxMultigres(ctx context.Context, inst, per string, own func(string) string) error {
	port := h.port(inst)
	for _, t := range []string{"t1", "t2", fmt.Sprintf("t%d", plan.TxTenants)} {
		if err := h.expect(ctx, inst, "app_user."+t, port, plan.TxDB, own(t), per+":"+per); err != nil {
			return err
		}
	}
	if err := h.expect(ctx, inst, "app_user.nobody", port, plan.TxDB, countSQL, "0"); err != nil {
		return err
	}
	_, err := h.as(ctx, "app_user.t1", port, plan.TxDB, "SELECT set_config('app.current_tenant_id', 't2', false)")
	if err == nil {
		return fmt.Errorf("%s (guard on) let set_config through", inst)
	}
	return nil
}

// checkPooling: 3 x pool-size logins in a row, one query each, must share
// at most pool-size server backends.
func (h *Harness) checkPooling(ctx context.Context) error {
	n := 3 * h.cfg.PoolSize
	pids := map[string]bool{}
	for t := 1; t <= n; t++ {
		pid, err := h.as(ctx, fmt.Sprintf("app_user.t%d", t), h.port(plan.MultigresTx), plan.TxDB, "SELECT pg_backend_pid()")
		if err != nil {
			return err
		}
		pids[pid] = true
	}
	if h.cfg.TxPoolMode == "transaction" && len(pids) > h.cfg.PoolSize {
		return fmt.Errorf("multigres tx: %d logins used %d server backends (pool %d): not transaction pooling", n, len(pids), h.cfg.PoolSize)
	}
	logf("check multigres tx (%s mode): %d successive logins used %d server backend(s)", h.cfg.TxPoolMode, n, len(pids))
	return nil
}

// checkSession: every session-suite path sees all rows of plan.DB (or its
// signed copy), signing is enforced, the guard settings differ, and another
// tenant sees nothing.
func (h *Harness) checkSession(ctx context.Context) error {
	want, err := h.super(ctx, plan.DB, countSQL)
	if err != nil {
		return err
	}
	s := h.sessionPlan()
	for _, tg := range s.Targets {
		if h.servers[tg.Instance] == nil && tg.Instance != plan.Postgres {
			continue
		}
		if err := h.expect(ctx, tg.Label, tg.User, h.port(tg.Instance), tg.DB, countSQL, want); err != nil {
			return err
		}
	}
	logf("check session-mode paths: each sees all %s rows", want)
	return h.checkSessionSafeguards(ctx)
}

func (h *Harness) sessionPlan() *plan.Suite {
	for i := range h.plans {
		if h.plans[i].Name == results.SuiteSession {
			return &h.plans[i]
		}
	}
	return &plan.Suite{}
}

func (h *Harness) checkSessionSafeguards(ctx context.Context) error {
	// Signing is enforced: on the signed databases the role default (or
	// any SET) without the proxy's MAC reads as no tenant, even directly.
	for _, db := range []string{plan.SignedDB, plan.SignedPLDB} {
		if err := h.expect(ctx, "signing on "+db, "app_user", h.pg.Port, db,
			"SELECT current_setting('app.current_tenant_id', true) || ':' || count(*) FROM pgbench_accounts", plan.Tenant+":0"); err != nil {
			return err
		}
	}
	if err := h.checkGuards(ctx); err != nil {
		return err
	}
	// Another tenant sees nothing: RLS is on, and multigres sets the
	// tenant itself (the role default does not leak through).
	if err := h.expect(ctx, "RLS directly", "app_user", h.pg.Port, plan.DB, "SET app.current_tenant_id = 'nobody'; "+countSQL, "0"); err != nil {
		return err
	}
	for inst, db := range map[string]string{plan.MultigresSession: plan.DB, plan.MultigresSigned: plan.SignedDB} {
		if h.servers[inst] == nil {
			continue
		}
		if err := h.expect(ctx, inst, "app_user.nobody", h.port(inst), db, countSQL, "0"); err != nil {
			return err
		}
	}
	logf("check signing, guard and RLS: enforced (another tenant sees 0 rows directly and through multigres)")
	return nil
}

// checkGuards: the guard settings really differ. On refuses set_config of
// the tenant, off lets it through (the hardened database still confines it
// to this session), and on allows the guard-parsed statement.
func (h *Harness) checkGuards(ctx context.Context) error {
	user := "app_user." + plan.Tenant
	refuse := "SELECT set_config('app.current_tenant_id', 'nobody', false)"
	if _, err := h.as(ctx, user, h.port(plan.MultigresSession), plan.DB, refuse); err == nil || !strings.Contains(err.Error(), "set_config") {
		return fmt.Errorf("multigres (guard on) did not refuse set_config: %v", err)
	}
	if _, err := h.as(ctx, user, h.port(plan.MultigresNoGuard), plan.DB, refuse); err != nil {
		return fmt.Errorf("multigres guard off refused set_config: %w", err)
	}
	guarded := strings.ReplaceAll(plan.GuardSQL, ":aid", "1")
	if _, err := h.as(ctx, user, h.port(plan.MultigresSession), plan.DB, guarded); err != nil {
		return fmt.Errorf("multigres (guard on) refused the guard-parsed statement: %w", err)
	}
	return nil
}
