package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"time"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/stack"
)

// connURL is a plaintext URL for user on 127.0.0.1:port/db.
func connURL(user, password string, port int, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: "127.0.0.1:" + strconv.Itoa(port), Path: "/" + db}
	u.RawQuery = "sslmode=disable&connect_timeout=10"
	return u.String()
}

// query runs sql (one or more statements, simple protocol) and returns the
// first value of the first row of the last statement that returned rows
// ("" when none did).
func query(ctx context.Context, connString, sql string) (string, error) {
	return queryEach(ctx, connString, []string{sql})
}

func (h *Harness) super(ctx context.Context, db, sql string) (string, error) {
	return query(ctx, connURL("postgres", superPassword, h.pg.Port, db), sql)
}

// as runs sql as user (app_user's password) through the server on port.
func (h *Harness) as(ctx context.Context, user string, port int, db, sql string) (string, error) {
	return query(ctx, connURL(user, appPassword, port, db), sql)
}

func (h *Harness) command(ctx context.Context, limit time.Duration, name string, args ...string) error {
	return runCommand(ctx, limit, superPassword, name, args...)
}

// runCommand runs a setup command (PGPASSWORD=password when not "") to its
// end, within limit; its output is the error's text when it fails.
func runCommand(ctx context.Context, limit time.Duration, password, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var env []string
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	cmd.Env = stack.ChildEnv(env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// multigresInit runs `multigres init` (of the build under test) on db.
func (h *Harness) multigresInit(ctx context.Context, db string, flags ...string) error {
	args := append([]string{"init"}, flags...)
	args = append(args, "--database-url", connURL("postgres", superPassword, h.pg.Port, db), "--auth-password", authPassword)
	if err := h.command(ctx, 2*time.Minute, h.cfg.Multigres, args...); err != nil {
		return fmt.Errorf("multigres init %v on %s: %w", flags, db, err)
	}
	return nil
}

// loadData: pgbench tables, multigres init, and a tenant policy on
// pgbench_accounts. In plan.DB every row belongs to tenant "bench", so every
// session-suite path reads the same rows through the same RLS policy as the
// same role, app_user. The copies follow.
func (h *Harness) loadData(ctx context.Context) error {
	if _, err := h.super(ctx, "postgres", "CREATE DATABASE "+plan.DB); err != nil {
		return err
	}
	logf("pgbench -i -s %d", h.cfg.Scale)
	if err := h.command(ctx, 10*time.Minute, h.pgbench, "-i", "-q", "-s", strconv.Itoa(h.cfg.Scale),
		"-h", "127.0.0.1", "-p", strconv.Itoa(h.pg.Port), "-U", "postgres", plan.DB); err != nil {
		return err
	}
	logf("multigres init")
	if err := h.multigresInit(ctx, plan.DB); err != nil {
		return err
	}
	logf("protecting pgbench_accounts (tenant_id = '%s' on every row)", plan.Tenant)
	if _, err := h.super(ctx, plan.DB, protectSQL); err != nil {
		return fmt.Errorf("protecting pgbench_accounts: %w", err)
	}
	if _, err := h.super(ctx, plan.DB, "VACUUM ANALYZE"); err != nil {
		return err
	}
	if err := h.signedCopies(ctx); err != nil {
		return err
	}
	if err := h.txCopy(ctx); err != nil {
		return err
	}
	_, err := h.super(ctx, "postgres", "CHECKPOINT")
	return err
}

// Direct and PgBouncer clients log in as plain app_user; the role default
// gives them the tenant that multigres sets from app_user.bench. A role
// setting survives PgBouncer's DISCARD ALL (a startup 'options' parameter
// would not pass PgBouncer at all).
var protectSQL = `
ALTER ROLE app_user PASSWORD '` + appPassword + `';
ALTER TABLE pgbench_accounts ADD COLUMN tenant_id text NOT NULL DEFAULT '` + plan.Tenant + `';
CREATE INDEX pgbench_accounts_tenant_aid ON pgbench_accounts (tenant_id, aid);
SELECT multigres_protect('pgbench_accounts', 'tenant_id');
GRANT SELECT, INSERT, UPDATE, DELETE ON pgbench_branches, pgbench_tellers, pgbench_history TO app_user;
ALTER ROLE app_user IN DATABASE ` + plan.DB + ` SET app.current_tenant_id = '` + plan.Tenant + `';`

// signedCopies: the signed databases are copies of plan.DB (same rows,
// index, policy, grants and statistics) with init --context-signing, and
// the same role default, which with signing on must not help a direct
// login. Nothing is connected to plan.DB yet, so it serves as a template.
// Database ACLs are not copied, so the second init hardens them again.
func (h *Harness) signedCopies(ctx context.Context) error {
	for _, db := range []string{plan.SignedDB, plan.SignedPLDB} {
		logf("creating %s (copy of %s) with signed context", db, plan.DB)
		if _, err := h.super(ctx, "postgres", fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", db, plan.DB)); err != nil {
			return err
		}
		if err := h.multigresInit(ctx, db, "--context-signing"); err != nil {
			return err
		}
		if _, err := h.super(ctx, "postgres", fmt.Sprintf("ALTER ROLE app_user IN DATABASE %s SET app.current_tenant_id = '%s'", db, plan.Tenant)); err != nil {
			return err
		}
	}
	var err error
	if h.reader, err = h.super(ctx, plan.SignedDB, "SELECT multigres.context_reader()"); err != nil {
		return err
	}
	logf("%s: context reader %s", plan.SignedDB, h.reader)
	// The portable PL/pgSQL reader, forced: what a server that cannot load
	// the native reader gets (most managed PostgreSQL services).
	got, err := h.super(ctx, plan.SignedPLDB, "SELECT multigres.install_context_readers(true, false)")
	if err == nil && got != "plpgsql" {
		err = fmt.Errorf("installing the PL/pgSQL reader gave %q", got)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", plan.SignedPLDB, err)
	}
	return nil
}

// txCopy: the many-tenant copy. The same rows, index and policy, with aid
// spread over tenants t1..tN (each owns 100000*scale/N rows). pgbench -S's
// random aid then belongs to the connection's tenant with probability 1/N
// on every path: every target runs the same plan (an index probe and the
// RLS filter) and almost always returns no row.
func (h *Harness) txCopy(ctx context.Context) error {
	logf("creating %s (copy of %s, accounts spread over tenants t1..t%d)", plan.TxDB, plan.DB, plan.TxTenants)
	if _, err := h.super(ctx, "postgres", fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", plan.TxDB, plan.DB)); err != nil {
		return err
	}
	spread := fmt.Sprintf(`UPDATE pgbench_accounts SET tenant_id = 't' || ((aid - 1) %% %d + 1);
ALTER ROLE app_user IN DATABASE %s SET app.current_tenant_id = 't1';`, plan.TxTenants, plan.TxDB)
	if _, err := h.super(ctx, plan.TxDB, spread); err != nil {
		return err
	}
	if _, err := h.super(ctx, plan.TxDB, "VACUUM FULL ANALYZE pgbench_accounts"); err != nil {
		return err
	}
	// Database ACLs are not copied: harden the copy again.
	return h.multigresInit(ctx, plan.TxDB)
}

// verifier is app_user's SCRAM verifier, for PgBouncer's auth_file.
func (h *Harness) verifier(ctx context.Context) (string, error) {
	v, err := h.super(ctx, "postgres", "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_user'")
	if err != nil {
		return "", err
	}
	if len(v) < 13 || v[:13] != "SCRAM-SHA-256" {
		return "", errors.New("app_user has no SCRAM verifier")
	}
	return v, nil
}
