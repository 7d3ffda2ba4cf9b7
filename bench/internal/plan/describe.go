package plan

import "fmt"

// The method paragraphs stored with each suite's results, so that a
// results file says how it was measured.

func describeTransaction(o Options) string {
	secs := fmt.Sprintf("-T %d", o.Seconds+o.Ramp)
	flags := "--pool-mode " + o.TxPoolMode + fmt.Sprintf(" --default-pool-size %d", o.PoolSize)
	if o.MgTxFlags != "" {
		flags += " " + o.MgTxFlags
	}
	return fmt.Sprintf("multigres `%s` (guard on); PgBouncer `pool_mode = transaction`, `default_pool_size = %d`; database `%s` "+
		"(accounts spread over tenants t1..t%d; direct and PgBouncer log in as `app_user`, tenant t1 from a role default). "+
		"multigres tx, PgBouncer tx and direct: %d pgbench processes `-n -c 1 -j 1 %s -l --aggregate-interval=1` started at once "+
		"(multigres: process i logs in as `app_user.ti`); TPS = transactions per second of all processes together over the seconds "+
		"in which at least 90%% of them were running (\"s@90%%\"; 50%% when they never overlapped that much; \"sum\" = no such second, "+
		"the sum of pgbench's TPS). \"PgBouncer tx, app sets tenant\": what an application does without multigres, each "+
		"transaction `BEGIN; SELECT set_config('app.current_tenant_id', 'ti', true); SELECT …; COMMIT` through PgBouncer tx "+
		"(process i as tenant ti). \"1 pgbench\": one `pgbench -n -c %d -j %d %s`, its TPS without the initial connection time.",
		flags, o.PoolSize, TxDB, TxTenants, o.TxClients, secs, o.TxClients, o.Threads, secs)
}

func describeSwitching(o Options) string {
	return fmt.Sprintf("Rotating: connection k logs in as `app_user.t(k mod %d + 1)`; each of %d workers uses its connections in turn. "+
		"One tenant: all %d connections are `app_user.t1`. \"Switched\" is the share of transactions that ran on a server backend "+
		"whose previous transaction was another tenant's.", o.SwitchTenants, o.TxClients, o.SwitchConns)
}

func describeSession() string {
	return fmt.Sprintf("Databases `%s` (every row tenant `%s`; multigres as `app_user.%s`, direct and PgBouncer as `app_user` with a role default). "+
		"multigres signed: database `%s` (`multigres init --context-signing`); multigres signed, PL/pgSQL reader: `%s`, the portable "+
		"reader forced. Both through the same multigres instance (`--context-signing=on`). `guard-parsed.sql` runs `%s` with a random aid.",
		DB, Tenant, Tenant, SignedDB, SignedPLDB, GuardSQL)
}

func describeCitus(o Options) string {
	return fmt.Sprintf("A Citus coordinator and two workers on this machine (internal/pgtest's Citus cluster: the workers "+
		"trust 127.0.0.1). Database `%s`: `pgbench -i -s %d` as the superuser, then pgbench_accounts given a `tenant_id` column "+
		"(every row tenant `%s`), primary key (tenant_id, aid), distributed by tenant_id and protected by `multigres_protect`. "+
		"\"read\" is `pgbench -n -c %d -j %d -T %d` with `%s`, that is `%s` for a random aid: the tenant key routes it to one "+
		"worker. superuser: the coordinator straight as `postgres` (no context, no block, RLS bypassed). tenant opens the block: "+
		"the coordinator straight as `app_user` with `%s`, `BEGIN; SET LOCAL app.current_tenant_id = '%s'; SELECT …; END` "+
		"(`citus.propagate_set_commands = local` from a role default), what a client does on Citus without multigres. "+
		"multigres session and tx (`--citus-databases %s`, tx `--default-pool-size %d`): `app_user.%s` sends the read alone; "+
		"multigres opens the block (docs/scaling.md, \"Citus\").",
		CitusDB, o.Scale, Tenant, o.CitusClients, o.Threads, o.Seconds, CitusReadScript, CitusReadSQL, CitusAppScript, Tenant,
		CitusDB, o.PoolSize, Tenant)
}

// MemoryTitle and MemoryDescription describe the memory suite.
const MemoryTitle = "Memory: idle client connections"

// MemoryDescription is the memory suite's method paragraph.
func MemoryDescription(o Options) string {
	return fmt.Sprintf("bench/idleconns against a fresh proxy each (transaction mode, pool %d): warm-up logins, VmRSS, then %d "+
		"connections that each run `SELECT 1` and stay idle; KiB per idle connection = (VmRSS with them − baseline) ÷ connections.",
		o.PoolSize, o.IdleConns)
}
