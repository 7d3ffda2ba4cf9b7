// Package plan says what a benchmark run measures: the suites, their
// targets (the ways a load reaches PostgreSQL), their tests (load shapes)
// and ratio columns, and the order in which a round runs them. It is
// declarative and pure: bench/cmd/mgbench starts the servers the targets
// name and runs the tests.
//
// Extending: a target is one Target literal (and, for another server
// configuration, one more Instance the harness starts); a test is one Test
// literal listing its targets; a ratio column is one RatioDef.
package plan

import (
	"fmt"
	"strings"

	"github.com/multigres-proxy/multigres/bench/internal/results"
)

// Instances: the servers a target connects to. The harness starts each one
// that an active target names.
const (
	Postgres             = "postgres"
	PgBouncerTx          = "pgbouncer-tx"
	PgBouncerSession     = "pgbouncer-session"
	MultigresTx          = "multigres-tx"
	MultigresTxBase      = "multigres-tx-baseline"
	MultigresSession     = "multigres-session"
	MultigresSessionBase = "multigres-session-baseline"
	MultigresNoGuard     = "multigres-noguard"
	MultigresSigned      = "multigres-signed"
	// The citus suite's: its cluster's coordinator, and multigres in front
	// of it in each pool mode (citus_databases).
	CitusCoordinator      = "citus-coordinator"
	MultigresCitusSession = "multigres-citus-session"
	MultigresCitusTx      = "multigres-citus-tx"
)

// Databases the harness creates (see bench/cmd/mgbench/data.go).
const (
	DB         = "bench"           // every row tenant "bench"
	SignedDB   = "bench_signed"    // copy of DB with signed context on
	SignedPLDB = "bench_signed_pl" // the same, PL/pgSQL reader forced
	TxDB       = "bench_tx"        // rows spread over TxTenants tenants
	Tenant     = "bench"
	TxTenants  = 1000
	CitusDB    = "bench_citus" // on the Citus cluster: pgbench_accounts distributed by tenant_id
)

// Kinds of test.
const (
	KindPgbench    = "pgbench"
	KindTenantload = "tenantload"
)

// Script names, replaced by files in the run's temp dir (Scripts).
const (
	GuardScript     = "guard-parsed.sql"
	AppTenantScript = "app-tenant.sql"
	CitusReadScript = "citus-read.sql"
	CitusAppScript  = "citus-app-block.sql"
)

// Options are the knobs that shape the plan.
type Options struct {
	Suites        []string
	Seconds       int // pgbench -T
	Ramp          int // extra -T of the transaction suite
	Scale         int
	Clients       int // session suite: pgbench -c
	Threads       int // pgbench -j
	TxClients     int // transaction suite: pgbench processes; switching: workers
	PoolSize      int
	TxPoolMode    string
	MgTxFlags     string
	SwitchConns   int
	SwitchTenants int
	SwitchModes   []string
	IdleConns     int
	CitusClients  int // citus suite: pgbench -c
	Baseline      bool
}

// Target is one way for the load to reach PostgreSQL.
type Target struct {
	ID, Label string
	Instance  string
	// User is the login; "{i}" is the pgbench process number (Multi) or
	// the tenant number (tenantload).
	User string
	// Super: User is the server's superuser, who logs in with its own
	// password rather than app_user's.
	Super bool
	DB    string
	Multi bool // one pgbench process per client (-c 1 -j 1 each)
	// Script replaces pgbench's built-in select-only script (-S) for this
	// target, with "-D tno=i" giving process i its tenant number.
	Script  string
	Tenants int // tenantload -tenants
}

// Test is one load shape run against some of a suite's targets.
type Test struct {
	Name    string   // as shown in the tables
	Kind    string   // KindPgbench or KindTenantload
	Args    []string // pgbench flags; for tenantload, the -mode
	Clients int
	Targets []string
}

// Suite is one suite's plan.
type Suite struct {
	Name, Title, Description string
	Targets                  []Target
	Tests                    []Test
	Ratios                   []results.RatioDef
}

// Target returns the suite's target with that id, or nil.
func (s *Suite) Target(id string) *Target {
	for i := range s.Targets {
		if s.Targets[i].ID == id {
			return &s.Targets[i]
		}
	}
	return nil
}

// Has reports whether o selects the suite.
func (o Options) Has(suite string) bool {
	for _, s := range o.Suites {
		if s == suite {
			return true
		}
	}
	return false
}

// Build returns the plans of the selected suites that run load (the memory
// suite has its own runner), in results.SuiteOrder.
func Build(o Options) []Suite {
	var out []Suite
	if o.Has(results.SuiteTransaction) {
		out = append(out, transaction(o))
	}
	if o.Has(results.SuiteSwitching) {
		out = append(out, switching(o))
	}
	if o.Has(results.SuiteSession) {
		out = append(out, session(o))
	}
	if o.Has(results.SuiteCitus) {
		out = append(out, citus(o))
	}
	return out
}

// withBase appends id's baseline twin to ids when the run has a baseline.
func withBase(o Options, ids ...string) []string {
	if !o.Baseline {
		return ids
	}
	var out []string
	for _, id := range ids {
		out = append(out, id)
		if id == "tx_multigres" || id == "multigres" || id == "sw_rotating" || id == "sw_one" {
			out = append(out, id+"_base")
		}
	}
	return out
}

func transaction(o Options) Suite {
	s := Suite{Name: results.SuiteTransaction,
		Title:       fmt.Sprintf("Transaction pooling: pgbench, %d clients over %d server connections", o.TxClients, o.PoolSize),
		Description: describeTransaction(o)}
	s.Targets = []Target{
		{ID: "tx_multigres", Label: "multigres tx", Instance: MultigresTx, User: "app_user.t{i}", DB: TxDB, Multi: true},
		{ID: "tx_multigres_base", Label: "multigres tx baseline", Instance: MultigresTxBase, User: "app_user.t{i}", DB: TxDB, Multi: true},
		{ID: "tx_pgbouncer", Label: "PgBouncer tx", Instance: PgBouncerTx, User: "app_user", DB: TxDB, Multi: true},
		{ID: "tx_pgbouncer_app", Label: "PgBouncer tx, app sets tenant", Instance: PgBouncerTx, User: "app_user", DB: TxDB, Multi: true, Script: AppTenantScript},
		{ID: "tx_direct", Label: "direct", Instance: Postgres, User: "app_user", DB: TxDB, Multi: true},
		{ID: "tx_pgbouncer1", Label: "PgBouncer tx, 1 pgbench", Instance: PgBouncerTx, User: "app_user", DB: TxDB},
		{ID: "tx_direct1", Label: "direct, 1 pgbench", Instance: Postgres, User: "app_user", DB: TxDB},
	}
	all := withBase(o, "tx_multigres", "tx_pgbouncer", "tx_pgbouncer_app", "tx_direct", "tx_pgbouncer1", "tx_direct1")
	t := func(name string, targets []string) Test {
		return Test{Name: name, Kind: KindPgbench, Args: strings.Fields(name), Clients: o.TxClients, Targets: targets}
	}
	// PgBouncer 1.18 cannot run -M prepared in transaction mode (a
	// statement prepared on one server connection is missing on the
	// next): it runs anyway, so the table records the failure. The
	// app-side variant would fail the same way, and the 1-pgbench shapes
	// add run time without adding a finding there.
	s.Tests = []Test{
		t("-S -M simple", all),
		t("-S -M extended", all),
		t("-S -M prepared", withBase(o, "tx_multigres", "tx_pgbouncer", "tx_direct")),
		t("-S -C -M simple", withBase(o, "tx_multigres", "tx_pgbouncer", "tx_pgbouncer_app", "tx_direct")),
	}
	s.Ratios = []results.RatioDef{
		{Label: "multigres tx/PgBouncer tx", Num: "tx_multigres", Den: "tx_pgbouncer"},
		{Label: "multigres tx/app sets tenant", Num: "tx_multigres", Den: "tx_pgbouncer_app"},
		{Label: "multigres tx/direct", Num: "tx_multigres", Den: "tx_direct"},
		{Label: "PgBouncer tx/direct", Num: "tx_pgbouncer", Den: "tx_direct"},
		{Label: fmt.Sprintf("direct %d processes/1 pgbench", o.TxClients), Num: "tx_direct", Den: "tx_direct1"},
	}
	if o.Baseline {
		s.Ratios = append(s.Ratios, results.RatioDef{Label: "multigres tx/baseline", Num: "tx_multigres", Den: "tx_multigres_base"})
	}
	return s
}

func switching(o Options) Suite {
	s := Suite{Name: results.SuiteSwitching,
		Title: fmt.Sprintf("Tenant switching: bench/tenantload, %d client connections, %d in flight, multigres tx (pool %d)",
			o.SwitchConns, o.TxClients, o.PoolSize),
		Description: describeSwitching(o)}
	rot := fmt.Sprintf("%d tenants rotating", o.SwitchTenants)
	s.Targets = []Target{
		{ID: "sw_rotating", Label: rot, Instance: MultigresTx, User: "app_user.t{i}", DB: TxDB, Tenants: o.SwitchTenants},
		{ID: "sw_rotating_base", Label: rot + ", baseline", Instance: MultigresTxBase, User: "app_user.t{i}", DB: TxDB, Tenants: o.SwitchTenants},
		{ID: "sw_one", Label: "1 tenant", Instance: MultigresTx, User: "app_user.t{i}", DB: TxDB, Tenants: 1},
		{ID: "sw_one_base", Label: "1 tenant, baseline", Instance: MultigresTxBase, User: "app_user.t{i}", DB: TxDB, Tenants: 1},
	}
	for _, m := range o.SwitchModes {
		s.Tests = append(s.Tests, Test{Name: "tenantload -mode " + m, Kind: KindTenantload, Args: []string{m},
			Clients: o.TxClients, Targets: withBase(o, "sw_rotating", "sw_one")})
	}
	s.Ratios = []results.RatioDef{{Label: "rotating/1 tenant", Num: "sw_rotating", Den: "sw_one"}}
	if o.Baseline {
		s.Ratios = append(s.Ratios,
			results.RatioDef{Label: "baseline rotating/1 tenant", Num: "sw_rotating_base", Den: "sw_one_base"},
			results.RatioDef{Label: "rotating/baseline", Num: "sw_rotating", Den: "sw_rotating_base"})
	}
	return s
}

func session(o Options) Suite {
	s := Suite{Name: results.SuiteSession,
		Title:       fmt.Sprintf("Session mode: pgbench -n -c %d -j %d", o.Clients, o.Threads),
		Description: describeSession()}
	mgUser := "app_user." + Tenant
	s.Targets = []Target{
		{ID: "direct", Label: "direct", Instance: Postgres, User: "app_user", DB: DB},
		{ID: "pgbouncer", Label: "PgBouncer", Instance: PgBouncerSession, User: "app_user", DB: DB},
		{ID: "multigres", Label: "multigres", Instance: MultigresSession, User: mgUser, DB: DB},
		{ID: "multigres_base", Label: "multigres baseline", Instance: MultigresSessionBase, User: mgUser, DB: DB},
		{ID: "mg_noguard", Label: "multigres guard off", Instance: MultigresNoGuard, User: mgUser, DB: DB},
		{ID: "mg_signed", Label: "multigres signed", Instance: MultigresSigned, User: mgUser, DB: SignedDB},
		{ID: "mg_signed_pl", Label: "multigres signed, PL/pgSQL reader", Instance: MultigresSigned, User: mgUser, DB: SignedPLDB},
	}
	t := func(name string, args string, targets []string) Test {
		return Test{Name: name, Kind: KindPgbench, Args: strings.Fields(args), Clients: o.Clients, Targets: targets}
	}
	every := withBase(o, "direct", "pgbouncer", "multigres", "mg_noguard", "mg_signed", "mg_signed_pl")
	// -C measures logins, which the guard and signing do not change much:
	// the three original targets only.
	s.Tests = []Test{
		t("-S -M simple", "-S -M simple", every),
		t("-S -M extended", "-S -M extended", every),
		t("-S -C -M simple", "-S -C -M simple", withBase(o, "direct", "pgbouncer", "multigres")),
		t("-f guard-parsed.sql -M simple", "-f "+GuardScript+" -M simple", withBase(o, "multigres", "mg_noguard")),
		t("-f guard-parsed.sql -M extended", "-f "+GuardScript+" -M extended", withBase(o, "multigres", "mg_noguard")),
	}
	s.Ratios = []results.RatioDef{
		{Label: "multigres/direct", Num: "multigres", Den: "direct"},
		{Label: "multigres/PgBouncer", Num: "multigres", Den: "pgbouncer"},
		{Label: "guard on/off", Num: "multigres", Den: "mg_noguard"},
		{Label: "signing on/off", Num: "mg_signed", Den: "multigres"},
		{Label: "signing on/off, PL/pgSQL reader", Num: "mg_signed_pl", Den: "multigres"},
	}
	if o.Baseline {
		s.Ratios = append(s.Ratios, results.RatioDef{Label: "multigres/baseline", Num: "multigres", Den: "multigres_base"})
	}
	return s
}

// citus: the cost of running tenant transactions on a Citus coordinator
// through multigres, which wraps each in a block with SET LOCAL so that
// the context reaches the workers, against the coordinator straight as a
// superuser (no context, no block) and as a tenant that opens that block
// itself. Every target runs a script (-S stands for it): the -S query with
// the tenant key, which Citus routes to one worker.
func citus(o Options) Suite {
	s := Suite{Name: results.SuiteCitus,
		Title:       fmt.Sprintf("Citus: coordinator and two workers, pgbench -n -c %d -j %d", o.CitusClients, o.Threads),
		Description: describeCitus(o)}
	mgUser := "app_user." + Tenant
	s.Targets = []Target{
		{ID: "citus_super", Label: "superuser", Instance: CitusCoordinator, User: "postgres", Super: true, DB: CitusDB, Script: CitusReadScript},
		{ID: "citus_app", Label: "tenant opens the block", Instance: CitusCoordinator, User: "app_user", DB: CitusDB, Script: CitusAppScript},
		{ID: "citus_mg_session", Label: "multigres session", Instance: MultigresCitusSession, User: mgUser, DB: CitusDB, Script: CitusReadScript},
		{ID: "citus_mg_tx", Label: "multigres tx", Instance: MultigresCitusTx, User: mgUser, DB: CitusDB, Script: CitusReadScript},
	}
	all := []string{"citus_super", "citus_app", "citus_mg_session", "citus_mg_tx"}
	for _, m := range []string{"simple", "extended", "prepared"} {
		s.Tests = append(s.Tests, Test{Name: "read -M " + m, Kind: KindPgbench, Args: []string{"-S", "-M", m},
			Clients: o.CitusClients, Targets: all})
	}
	s.Ratios = []results.RatioDef{
		{Label: "multigres session/tenant block", Num: "citus_mg_session", Den: "citus_app"},
		{Label: "multigres tx/tenant block", Num: "citus_mg_tx", Den: "citus_app"},
		{Label: "multigres session/superuser", Num: "citus_mg_session", Den: "citus_super"},
		{Label: "multigres tx/superuser", Num: "citus_mg_tx", Den: "citus_super"},
	}
	return s
}

// Order is the target order of test number ti (0-based) in round r
// (1-based) among n targets: rotated per round and test, so no target
// always runs first (cold) or right after another one (warm).
func Order(r, ti, n int) []int {
	out := make([]int, n)
	off := (r - 1 + ti) % n
	for k := range out {
		out[k] = (off + k) % n
	}
	return out
}

// GuardSQL is the guard's hard case: a statement that the guard's
// pre-filter sends to the parser (it contains "set") and that the guard
// allows. Verdicts are cached by statement text: with -M simple the text
// carries the aid, so almost every statement misses the cache and is
// parsed (worst case); with -M extended the Parse text is constant and hits.
const GuardSQL = "SELECT abalance FROM pgbench_accounts WHERE aid = :aid AND current_setting('search_path') IS NOT NULL;"

// CitusReadSQL is the citus suite's read: pgbench -S's query with the
// tenant key, which lets Citus route it to the one shard (and worker) of
// the tenant. Without it Citus would ask every shard, and RLS would filter
// the rows there.
const CitusReadSQL = "SELECT abalance FROM pgbench_accounts WHERE tenant_id = '" + Tenant + "' AND aid = :aid;"

// Scripts are the pgbench custom scripts by name, for a scale.
func Scripts(scale int) map[string]string {
	aid := fmt.Sprintf("\\set aid random(1, %d)\n", 100000*scale)
	return map[string]string{
		GuardScript: aid + GuardSQL + "\n",
		// What an application does without multigres behind a
		// transaction-mode pooler: every transaction sets the tenant
		// itself, transaction-local, before its query.
		AppTenantScript: aid + "BEGIN;\n" +
			"SELECT set_config('app.current_tenant_id', 't' || :tno::text, true);\n" +
			"SELECT abalance FROM pgbench_accounts WHERE aid = :aid;\n" +
			"COMMIT;\n",
		CitusReadScript: aid + CitusReadSQL + "\n",
		// What a client does on Citus without multigres: the context as a
		// SET LOCAL in a block of its own, which Citus carries to the
		// worker (citus.propagate_set_commands = local).
		CitusAppScript: aid + "BEGIN;\nSET LOCAL app.current_tenant_id = '" + Tenant + "';\n" + CitusReadSQL + "\nEND;\n",
	}
}

// IsScript reports whether a pgbench argument names one of Scripts.
func IsScript(arg string) bool {
	_, ok := Scripts(1)[arg]
	return ok
}

// PgbenchArgs are a test's pgbench flags for a target: the target's script
// instead of -S, and process i's tenant number for it.
func PgbenchArgs(t Test, tg Target, i int) []string {
	if tg.Script == "" {
		return append([]string(nil), t.Args...)
	}
	var out []string
	for _, a := range t.Args {
		if a == "-S" {
			out = append(out, "-f", tg.Script, "-D", fmt.Sprintf("tno=%d", i))
			continue
		}
		out = append(out, a)
	}
	return out
}

// UserFor is the target's login for process or tenant number i.
func (t Target) UserFor(i int) string {
	return strings.ReplaceAll(t.User, "{i}", fmt.Sprint(i))
}
