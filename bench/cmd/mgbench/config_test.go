package main

import (
	"strings"
	"testing"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), "/src")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.suiteList, " ") != "transaction switching memory" || c.Rounds != 3 || c.Seconds != 10 || c.Ramp != 3 ||
		c.TxClients != 64 || c.PoolSize != 8 || !c.HugePages || c.Multigres != "/src/bin/multigres" || c.Out != "/src/bench/results" {
		t.Errorf("defaults: %+v", c)
	}
	if o := c.planOptions(); o.Baseline || len(o.SwitchModes) != 2 {
		t.Errorf("plan options: %+v", o)
	}
}

func TestConfigEnvAndFlags(t *testing.T) {
	c, err := parseConfig([]string{"-rounds", "5", "-suites", "all"},
		env(map[string]string{"BENCH_ROUNDS": "2", "BENCH_SECONDS": "4", "BENCH_HUGE_PAGES": "0", "MULTIGRES_BIN": "/opt/mg"}), "/src")
	if err != nil {
		t.Fatal(err)
	}
	if c.Rounds != 5 || c.Seconds != 4 || c.HugePages || c.Multigres != "/opt/mg" || len(c.suiteList) != 4 {
		t.Errorf("flag must win over env, env over default: %+v", c)
	}
}

func TestConfigQuick(t *testing.T) {
	c, err := parseConfig([]string{"-quick", "-seconds", "2"}, env(map[string]string{"BENCH_IDLE_CONNS": "50"}), "/src")
	if err != nil {
		t.Fatal(err)
	}
	if c.Rounds != 1 || c.Seconds != 2 || c.Ramp != 2 || c.SwitchConns != 200 || c.IdleConns != 50 || c.SwitchTenants != 200 {
		t.Errorf("quick sets what flag and env leave: %+v", c)
	}
}

func TestConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"-suites", "bogus"}, nil},
		{[]string{"-switch-modes", "fast"}, nil},
		{[]string{"-rounds", "0"}, nil},
		{[]string{"-tx-pool-mode", "statement"}, nil},
		{[]string{"extra"}, nil},
		{nil, map[string]string{"BENCH_ROUNDS": "three"}},
		{[]string{"-suites", "switching", "-switch-conns", "10"}, nil},
	} {
		if _, err := parseConfig(tc.args, env(tc.env), "/src"); err == nil {
			t.Errorf("%v %v: want an error", tc.args, tc.env)
		}
	}
}

// The citus suite runs only when named: "all" leaves it out.
func TestConfigCitus(t *testing.T) {
	c, err := parseConfig([]string{"-suites", "citus"}, env(nil), "/src")
	if err != nil {
		t.Fatal(err)
	}
	if c.plainStack() || !c.has("citus") || c.settings().CitusClients != 4 {
		t.Errorf("citus alone: %+v", c)
	}
	c, err = parseConfig([]string{"-suites", "all"}, env(nil), "/src")
	if err != nil {
		t.Fatal(err)
	}
	if c.has("citus") || !c.plainStack() || c.settings().CitusClients != 0 {
		t.Errorf("all: %v", c.suiteList)
	}
}
