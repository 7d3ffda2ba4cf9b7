package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/bench/internal/plan"
	"github.com/multigres-proxy/multigres/bench/internal/stack"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// The citus suite measures what the per-transaction block costs that
// multigres opens on a Citus database (docs/scaling.md, "Citus"), against
// a real cluster: a coordinator and two workers started by internal/pgtest,
// the cluster test/citus runs against. Its servers are a citusStack,
// separate from the Harness's single PostgreSQL: a run of the citus suite
// alone starts neither that PostgreSQL nor PgBouncer.

// citusSettings are the nodes' settings on top of pgtest's Citus ones: the
// shard that holds every row (about 150 MB at scale 10) stays in shared
// buffers, as the plain cluster's data does.
var citusSettings = []string{"shared_buffers=256MB", "log_min_messages=warning"}

// citusMissing is the citus suite's early failure when Citus is not
// installed for the PostgreSQL server binaries here.
func citusMissing() error {
	why := pgtest.CitusMissing()
	if why == "" {
		return nil
	}
	return fmt.Errorf("the citus suite needs Citus (run scripts/ensure-deps.sh citus, or ../shared/citus/install.sh as root): %s", why)
}

// citusSetup is what the citus suite's servers need from the run.
type citusSetup struct {
	multigres, pgbench, dir string
	scale, poolSize         int
}

// citusStack is the citus suite's servers: the Citus cluster with the
// database plan.CitusDB, and multigres in front of its coordinator in
// both pool modes.
type citusStack struct {
	setup   citusSetup
	cluster *pgtest.Citus
	servers map[string]*stack.Server // by plan instance
	pg      string                   // the coordinator's server_version
	version string                   // Citus' version
}

// start starts the cluster, loads the data, starts the proxies and checks
// every path. On an error the caller still stops what started.
func (c *citusStack) start(ctx context.Context) error {
	logf("starting Citus: a coordinator and two workers (internal/pgtest)")
	var err error
	if c.cluster, err = pgtest.StartCitusWith(citusSettings...); err != nil {
		return err
	}
	logf("Citus coordinator on 127.0.0.1:%d", c.cluster.Coordinator.Port)
	if err := c.load(ctx); err != nil {
		return fmt.Errorf("citus: %w", err)
	}
	if err := c.describe(ctx); err != nil {
		return err
	}
	if err := c.startProxies(); err != nil {
		return err
	}
	if err := c.check(ctx); err != nil {
		return fmt.Errorf("check citus: %w", err)
	}
	return nil
}

// stop ends the proxies and the cluster (whose directories pgtest removes).
func (c *citusStack) stop() {
	for _, s := range c.servers {
		s.Stop()
	}
	if c.cluster != nil {
		c.cluster.Stop()
	}
}

func (c *citusStack) super(ctx context.Context, db, sql string) (string, error) {
	return query(ctx, connURL(pgtest.SuperUser, pgtest.SuperPassword, c.cluster.Coordinator.Port, db), sql)
}

// describe reads the versions the results file records (citus_version()
// once the extension is in plan.CitusDB).
func (c *citusStack) describe(ctx context.Context) error {
	var err error
	if c.pg, err = c.super(ctx, "postgres", "SHOW server_version"); err != nil {
		return err
	}
	c.pg, _, _ = strings.Cut(c.pg, " ")
	c.version, err = c.super(ctx, plan.CitusDB, "SELECT (regexp_match(citus_version(), '^Citus (\\S+)'))[1]")
	logf("Citus %s on PostgreSQL %s", c.version, c.pg)
	return err
}

// queryEach runs each statement as a Query of its own on one connection
// and returns the first value of the last statement that returned rows.
func queryEach(ctx context.Context, connString string, sqls []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, connString)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	got := ""
	for _, sql := range sqls {
		res, err := conn.Exec(ctx, sql).ReadAll()
		if err != nil {
			return "", err
		}
		for _, r := range res {
			if len(r.Rows) > 0 && len(r.Rows[0]) > 0 {
				got = string(r.Rows[0][0])
			}
		}
	}
	return got, nil
}

// citusDistributeSQL makes pgbench_accounts a tenant table of Citus: a
// tenant_id column (every row tenant plan.Tenant, so one shard on one
// worker holds them all) in the primary key, as Citus requires of the
// distribution column, then distributed by it and protected. The
// coordinator's local copy of the rows is dropped once they are on the
// shards. app_user gets the run's password, and a role default that makes
// Citus carry a transaction's SET LOCALs to the workers, which the
// "tenant opens the block" target needs (multigres sets it at login). The
// default is the coordinator's only, as multigres' setting is: Citus does
// not propagate it to the workers. Statements run one by one: Citus
// distributes a table outside a block.
var citusDistributeSQL = []string{
	"ALTER ROLE app_user PASSWORD '" + appPassword + "'",
	"SET citus.enable_alter_role_set_propagation = off; " +
		"ALTER ROLE app_user IN DATABASE " + plan.CitusDB + " SET citus.propagate_set_commands = 'local'",
	"ALTER TABLE pgbench_accounts ADD COLUMN tenant_id text NOT NULL DEFAULT '" + plan.Tenant + "'",
	"ALTER TABLE pgbench_accounts DROP CONSTRAINT pgbench_accounts_pkey",
	"ALTER TABLE pgbench_accounts ADD PRIMARY KEY (tenant_id, aid)",
	"SELECT create_distributed_table('pgbench_accounts', 'tenant_id')",
	"SELECT truncate_local_data_after_distributing_table('pgbench_accounts')",
	"SELECT multigres_protect('pgbench_accounts', 'tenant_id')",
	"VACUUM ANALYZE pgbench_accounts",
}

// load creates plan.CitusDB on every node (the citus extension, the
// workers registered), loads pgbench -i as the superuser, runs
// `multigres init` on the coordinator and distributes pgbench_accounts.
func (c *citusStack) load(ctx context.Context) error {
	if err := c.cluster.CreateDatabase(ctx, plan.CitusDB); err != nil {
		return err
	}
	port := c.cluster.Coordinator.Port
	logf("citus: pgbench -i -s %d", c.setup.scale)
	if err := runCommand(ctx, 10*time.Minute, pgtest.SuperPassword, c.setup.pgbench, "-i", "-q", "-s", strconv.Itoa(c.setup.scale),
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgtest.SuperUser, plan.CitusDB); err != nil {
		return err
	}
	logf("citus: multigres init")
	if err := runCommand(ctx, 2*time.Minute, "", c.setup.multigres, "init",
		"--database-url", connURL(pgtest.SuperUser, pgtest.SuperPassword, port, plan.CitusDB), "--auth-password", authPassword); err != nil {
		return fmt.Errorf("multigres init on %s: %w", plan.CitusDB, err)
	}
	logf("citus: distributing pgbench_accounts by tenant_id (every row tenant '%s') and protecting it", plan.Tenant)
	for _, sql := range citusDistributeSQL {
		if _, err := c.super(ctx, plan.CitusDB, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// startProxies starts multigres in session and transaction mode with the
// database in citus_databases.
func (c *citusStack) startProxies() error {
	citus := []string{"--citus-databases", plan.CitusDB}
	instances := []struct {
		inst  string
		flags []string
	}{
		{plan.MultigresCitusSession, append([]string{"--pool-mode", "session"}, citus...)},
		{plan.MultigresCitusTx, append([]string{"--pool-mode", "transaction", "--default-pool-size", strconv.Itoa(c.setup.poolSize)}, citus...)},
	}
	for _, m := range instances {
		s, err := stack.StartMultigres(stack.MultigresConfig{Bin: c.setup.multigres, Dir: c.setup.dir, Name: m.inst,
			PGPort: c.cluster.Coordinator.Port, AuthPassword: authPassword, Flags: m.flags})
		if err != nil {
			return err
		}
		c.servers[m.inst] = s
		logf("started multigres[%s] on 127.0.0.1:%d %s", m.inst, s.Port, strings.Join(m.flags, " "))
	}
	return nil
}

// port is the port of one of the suite's instances (false: not one).
func (c *citusStack) port(inst string) (int, bool) {
	if inst == plan.CitusCoordinator {
		return c.cluster.Coordinator.Port, true
	}
	if s := c.servers[inst]; s != nil {
		return s.Port, true
	}
	return 0, false
}

// check: before any measurement, every target sees all the rows, and
// without a context (directly, or as another tenant through multigres)
// none: the policy really runs on the worker, and the context really
// reaches it only in the block.
func (c *citusStack) check(ctx context.Context) error {
	want, err := c.super(ctx, plan.CitusDB, countSQL)
	if err != nil {
		return err
	}
	if want == "0" || want == "" {
		return errors.New("the superuser sees no rows")
	}
	// The block as the pgbench script sends it: one statement per Query
	// (Citus would send a whole multi-statement Query to the workers as
	// the SET's text).
	block := []string{"BEGIN", "SET LOCAL app.current_tenant_id = '" + plan.Tenant + "'", countSQL, "END"}
	cases := []struct {
		what, user, inst string
		sqls             []string
		want             string
	}{
		{"tenant opens the block", "app_user", plan.CitusCoordinator, block, want},
		{"tenant without the block", "app_user", plan.CitusCoordinator, []string{countSQL}, "0"},
		{"multigres session", "app_user." + plan.Tenant, plan.MultigresCitusSession, []string{countSQL}, want},
		{"multigres tx", "app_user." + plan.Tenant, plan.MultigresCitusTx, []string{countSQL}, want},
		{"multigres session, another tenant", "app_user.nobody", plan.MultigresCitusSession, []string{countSQL}, "0"},
		{"multigres tx, another tenant", "app_user.nobody", plan.MultigresCitusTx, []string{countSQL}, "0"},
	}
	for _, tc := range cases {
		port, _ := c.port(tc.inst)
		got, err := queryEach(ctx, connURL(tc.user, appPassword, port, plan.CitusDB), tc.sqls)
		if err != nil {
			return fmt.Errorf("%s: %w", tc.what, err)
		}
		if got != tc.want {
			return fmt.Errorf("%s: %s sees %q rows, want %s", tc.what, tc.user, got, tc.want)
		}
	}
	logf("check citus paths: each sees all %s rows with the tenant's context, none without it", want)
	return nil
}
