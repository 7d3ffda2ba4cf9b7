package plan

import (
	"reflect"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/bench/internal/results"
)

func opts(baseline bool, suites ...string) Options {
	return Options{Suites: suites, Seconds: 10, Ramp: 3, Scale: 10, Clients: 16, Threads: 2, TxClients: 64, PoolSize: 8, TxPoolMode: "transaction",
		SwitchConns: 1000, SwitchTenants: 1000, SwitchModes: []string{"simple", "extended"}, IdleConns: 10000, Baseline: baseline}
}

func TestBuildSelectsSuites(t *testing.T) {
	var names []string
	for _, s := range Build(opts(false, "session", "memory", "transaction")) {
		names = append(names, s.Name)
	}
	if want := []string{"transaction", "session"}; !reflect.DeepEqual(names, want) {
		t.Errorf("suites %v, want %v (memory has its own runner)", names, want)
	}
}

// Every test names only targets its suite defines, every ratio too.
func TestTargetsExist(t *testing.T) {
	for _, s := range Build(opts(true, "transaction", "switching", "session")) {
		for _, test := range s.Tests {
			for _, id := range test.Targets {
				if s.Target(id) == nil {
					t.Errorf("%s/%s: unknown target %s", s.Name, test.Name, id)
				}
			}
		}
		for _, r := range s.Ratios {
			if s.Target(r.Num) == nil || s.Target(r.Den) == nil {
				t.Errorf("%s: ratio %s names an unknown target", s.Name, r.Label)
			}
		}
	}
}

func TestTransactionTargets(t *testing.T) {
	s := Build(opts(false, "transaction"))[0]
	if !strings.Contains(s.Description, "`-n -c 1 -j 1 -T 13 -l --aggregate-interval=1`") {
		t.Errorf("description: %s", s.Description)
	}
	want := map[string]string{
		"-S -M simple":    "tx_multigres tx_pgbouncer tx_pgbouncer_app tx_direct tx_pgbouncer1 tx_direct1",
		"-S -M prepared":  "tx_multigres tx_pgbouncer tx_direct",
		"-S -C -M simple": "tx_multigres tx_pgbouncer tx_pgbouncer_app tx_direct",
	}
	for _, test := range s.Tests {
		if w, ok := want[test.Name]; ok && strings.Join(test.Targets, " ") != w {
			t.Errorf("%s: targets %v, want %s", test.Name, test.Targets, w)
		}
		if test.Clients != 64 {
			t.Errorf("%s: %d clients", test.Name, test.Clients)
		}
	}
	for _, r := range s.Ratios {
		if strings.Contains(r.Label, "baseline") {
			t.Errorf("ratio %s without a baseline", r.Label)
		}
	}
}

func TestBaselineTwins(t *testing.T) {
	s := Build(opts(true, "transaction"))[0]
	if got := strings.Join(s.Tests[2].Targets, " "); got != "tx_multigres tx_multigres_base tx_pgbouncer tx_direct" {
		t.Errorf("prepared with baseline: %s", got)
	}
	last := s.Ratios[len(s.Ratios)-1]
	if last != (results.RatioDef{Label: "multigres tx/baseline", Num: "tx_multigres", Den: "tx_multigres_base"}) {
		t.Errorf("baseline ratio %+v", last)
	}
	if s.Target("tx_multigres_base").Instance != MultigresTxBase {
		t.Error("the baseline target must use the baseline instance")
	}
}

func TestSwitchingModes(t *testing.T) {
	o := opts(false, "switching")
	o.SwitchModes = []string{"prepared"}
	o.SwitchTenants = 200
	s := Build(o)[0]
	if len(s.Tests) != 1 || s.Tests[0].Name != "tenantload -mode prepared" || s.Tests[0].Args[0] != "prepared" {
		t.Errorf("tests %+v", s.Tests)
	}
	if s.Target("sw_rotating").Label != "200 tenants rotating" || s.Target("sw_one").Tenants != 1 {
		t.Errorf("targets %+v", s.Targets)
	}
}

func TestOrderRotates(t *testing.T) {
	if got := Order(1, 0, 3); !reflect.DeepEqual(got, []int{0, 1, 2}) {
		t.Errorf("round 1, test 0: %v", got)
	}
	if got := Order(2, 0, 3); !reflect.DeepEqual(got, []int{1, 2, 0}) {
		t.Errorf("round 2, test 0: %v", got)
	}
	if got := Order(3, 2, 3); !reflect.DeepEqual(got, []int{1, 2, 0}) {
		t.Errorf("round 3, test 2: %v", got)
	}
	// Over n rounds every target runs first once.
	firsts := map[int]bool{}
	for r := 1; r <= 4; r++ {
		firsts[Order(r, 1, 4)[0]] = true
	}
	if len(firsts) != 4 {
		t.Errorf("first places over 4 rounds: %v", firsts)
	}
}

func TestPgbenchArgs(t *testing.T) {
	test := Test{Args: []string{"-S", "-C", "-M", "simple"}}
	app := Target{Script: AppTenantScript}
	if got := PgbenchArgs(test, app, 7); strings.Join(got, " ") != "-f app-tenant.sql -D tno=7 -C -M simple" {
		t.Errorf("app target args %v", got)
	}
	if got := PgbenchArgs(test, Target{}, 7); strings.Join(got, " ") != "-S -C -M simple" {
		t.Errorf("plain args %v", got)
	}
	if (Target{User: "app_user.t{i}"}).UserFor(12) != "app_user.t12" {
		t.Error("UserFor")
	}
}

func TestScripts(t *testing.T) {
	sc := Scripts(10)
	if !strings.HasPrefix(sc[GuardScript], "\\set aid random(1, 1000000)\n") || !strings.Contains(sc[GuardScript], "current_setting('search_path')") {
		t.Errorf("guard script %q", sc[GuardScript])
	}
	app := sc[AppTenantScript]
	for _, want := range []string{"BEGIN;", "set_config('app.current_tenant_id', 't' || :tno::text, true)", "COMMIT;"} {
		if !strings.Contains(app, want) {
			t.Errorf("app script lacks %q: %q", want, app)
		}
	}
}

// The citus suite: four targets in every test, all on scripts (the app
// target's opens the block itself), the superuser with its own password.
func TestCitusSuite(t *testing.T) {
	o := opts(false, "citus")
	o.CitusClients = 4
	s := Build(o)[0]
	if s.Name != results.SuiteCitus || len(s.Tests) != 3 || len(s.Ratios) != 4 {
		t.Fatalf("citus suite %+v", s)
	}
	for _, test := range s.Tests {
		if len(test.Targets) != 4 || test.Clients != 4 {
			t.Errorf("%s: targets %v, %d clients", test.Name, test.Targets, test.Clients)
		}
	}
	if !s.Target("citus_super").Super || s.Target("citus_app").Super || s.Target("citus_mg_tx").Instance != MultigresCitusTx {
		t.Errorf("targets %+v", s.Targets)
	}
	got := PgbenchArgs(s.Tests[2], *s.Target("citus_app"), 1)
	if strings.Join(got, " ") != "-f citus-app-block.sql -D tno=1 -M prepared" {
		t.Errorf("app target args %v", got)
	}
	sc := Scripts(1)
	if !strings.Contains(sc[CitusAppScript], "BEGIN;\nSET LOCAL app.current_tenant_id = 'bench';\n"+CitusReadSQL+"\nEND;\n") ||
		!strings.Contains(sc[CitusReadScript], "WHERE tenant_id = 'bench' AND aid = :aid") {
		t.Errorf("citus scripts %q", sc)
	}
	if !IsScript(CitusReadScript) || IsScript("-S") {
		t.Error("IsScript")
	}
}
