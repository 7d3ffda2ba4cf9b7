package txstate

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// machineCase is one exchange driven through a fresh rig.
type machineCase struct {
	name     string
	settings map[string]string
	run      func(t *testing.T, r *rig)
}

// TestMachine drives the transaction-pooling state machine through the
// protocol exchanges it must get right, each bug class of transaction-mode
// isolation among them, without a server.
func TestMachine(t *testing.T) {
	t.Parallel()
	var cases []machineCase
	cases = append(cases, attachCases...)
	cases = append(cases, switchCases...)
	cases = append(cases, statementCases...)
	cases = append(cases, settingCases...)
	cases = append(cases, errorCases...)
	cases = append(cases, copyCases...)
	cases = append(cases, releaseCases...)
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newRig(t, c.settings))
		})
	}
}

func want(t *testing.T, what, got, wanted string) {
	t.Helper()
	if got != wanted {
		t.Fatalf("%s: got %q, want %q", what, got, wanted)
	}
}

// Attaching and answering without a server.
var attachCases = []machineCase{
	{"a lone Sync without a server is answered locally", nil, func(t *testing.T, r *rig) {
		s, c := r.client(syncMsg())
		want(t, "to server", s, "")
		want(t, "to client", c, "Z")
		if st, flush, _ := r.m.TakeReady(); st != 'I' || !flush {
			t.Fatalf("ready %q flush %v", st, flush)
		}
		if r.m.Attached() {
			t.Fatal("a Sync borrowed a connection")
		}
	}},
	{"Flush and COPY messages without a server hold nothing", nil, func(t *testing.T, r *rig) {
		for _, f := range [][]byte{flushMsg(), copyData(), copyDone(), copyFail()} {
			s, c := r.client(f)
			want(t, "to server", s, "")
			want(t, "to client", c, "")
		}
		if r.m.Attached() {
			t.Fatal("attached")
		}
	}},
	{"closing a named statement without a server is answered locally", nil, func(t *testing.T, r *rig) {
		_, c := r.client(closeMsg('S', "s1"))
		want(t, "to client", c, "3")
	}},
	{"closing the unnamed statement needs a server", nil, func(t *testing.T, r *rig) {
		step, err := r.m.ClientMessage(wire.Close, closeMsg('S', ""), nil)
		if err != nil || step != NeedServer {
			t.Fatalf("step %v err %v", step, err)
		}
	}},
	{"a query borrows a server and takes the short switch", nil, func(t *testing.T, r *rig) {
		r.settle()
		if r.m.Attached() || r.sv.Context != r.m.cfg.Key {
			t.Fatalf("attached %v, server context %q", r.m.Attached(), r.sv.Context)
		}
	}},
	{"a failed attach answers a Query with ReadyForQuery", nil, func(t *testing.T, r *rig) {
		step, _ := r.m.ClientMessage(wire.Query, q("SELECT 1"), nil)
		if step != NeedServer {
			t.Fatal("no NeedServer")
		}
		r.m.AttachFailed(wire.Query)
		_, c := r.drain()
		want(t, "to client", c, "Z")
	}},
	{"a failed attach discards extended messages up to Sync", nil, func(t *testing.T, r *rig) {
		r.m.ClientMessage(wire.Parse, parse("", "SELECT 1"), nil)
		r.m.AttachFailed(wire.Parse)
		for _, f := range [][]byte{bind("", ""), execute("")} {
			s, c := r.client(f)
			want(t, "skipped to server", s, "")
			want(t, "skipped to client", c, "")
		}
		s, c := r.client(syncMsg())
		want(t, "to server", s, "")
		want(t, "to client", c, "Z")
		if r.m.Attached() {
			t.Fatal("attached")
		}
	}},
	{"the same context needs no switch", nil, func(t *testing.T, r *rig) {
		r.settle()
		s, _ := r.client(q("SELECT 2"))
		want(t, "to server", s, "Q")
	}},
	{"another tenant's connection is switched", nil, func(t *testing.T, r *rig) {
		r.settle()
		other := newRigFor(t, "globex", nil)
		other.sv = r.sv
		s, _ := other.client(q("SELECT 2"))
		want(t, "to server (switch prepared by acme)", s, "BEQ")
		if r.sv.Context != other.m.cfg.Key {
			t.Fatal("the server model does not carry globex's context")
		}
	}},
}

// The context switch.
var switchCases = []machineCase{
	{"transaction control takes the full switch", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("BEGIN"))
		want(t, "to server", s, "PBEPBEQ")
		if r.m.unconfirmed {
			t.Fatal("the full switch is unconfirmed")
		}
	}},
	{"a query that SETs takes the full switch", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("SET search_path = s1"), setFx)
		want(t, "to server", s, "PBEPBEQ")
	}},
	{"a server with another client's transaction defaults gets an explicit BEGIN", nil, func(t *testing.T, r *rig) {
		r.sv.Settings = map[string]string{"default_transaction_read_only": "on"}
		s, _ := r.client(q("SELECT 1"))
		want(t, "to server", s, "PBEPBEPBEQ")
		if !bytes.Contains(r.sentLast(), []byte(switchBegin)) {
			t.Fatal("no BEGIN with explicit characteristics")
		}
	}},
	{"unknown server settings get the explicit BEGIN and a reset of each", nil, func(t *testing.T, r *rig) {
		r.sv.Settings = Unknown()
		ctx := r.m.contextFor(r.sv)
		if len(ctx.Resets) != len(sqlguard.TrackedSettings) {
			t.Fatalf("resets %v", ctx.Resets)
		}
		s, _ := r.client(q("SELECT 1"))
		want(t, "to server", s, "PBEPBEPBEQ")
	}},
	{"a different statement_timeout forbids the short switch", map[string]string{"statement_timeout": "5s"}, func(t *testing.T, r *rig) {
		s, _ := r.client(q("SELECT 1"))
		want(t, "to server", s, "PBEPBEQ")
	}},
	{"the switch carries the client's settings and resets the server's others", map[string]string{"application_name": "a"}, func(t *testing.T, r *rig) {
		r.sv.Settings = map[string]string{"search_path": "x"}
		ctx := r.m.contextFor(r.sv)
		if strings.Join(ctx.Variables, ",") != "app.current_tenant_id,application_name" || strings.Join(ctx.Resets, ",") != "search_path" {
			t.Fatalf("variables %v resets %v", ctx.Variables, ctx.Resets)
		}
	}},
	{"MACs are computed for the server's backend", nil, func(t *testing.T, r *rig) {
		var pids []uint32
		r.m.cfg.MACs = func(pid uint32) []string { pids = append(pids, pid); return []string{"mac"} }
		r.m.cfg.Context.MACNames = []string{"app.mac"}
		ctx := r.m.contextFor(r.sv)
		if len(pids) != 1 || pids[0] != 42 || ctx.MACs[0] != "mac" {
			t.Fatalf("pids %v macs %v", pids, ctx.MACs)
		}
	}},
	{"a failed short-switched query leaves the context unknown", nil, func(t *testing.T, r *rig) {
		r.client(q("SELECT 1/0"))
		_, step := r.answer(append(switchAnswers(1, 1), errResp("22012"), rfq('I'))...)
		if !step.Release || r.sv.Context != "" || !IsUnknown(r.sv.Settings) {
			t.Fatalf("release %v context %q", step.Release, r.sv.Context)
		}
	}},
	{"a command pipelined behind an unconfirmed short switch is switched again in full", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("SELECT 1"))
		want(t, "first", s, "PBEQ")
		s, _ = r.client(q("SELECT 2"))
		// From an unknown state: the explicit BEGIN, the switch, COMMIT.
		want(t, "second", s, "PBEPBEPBEQ")
	}},
	{"a Sync behind an unconfirmed short switch is not re-switched", nil, func(t *testing.T, r *rig) {
		r.client(q("SELECT 1"))
		s, _ := r.client(syncMsg())
		want(t, "to server", s, "S")
	}},
	{"an error in the switch is fatal", nil, func(t *testing.T, r *rig) {
		r.client(q("SELECT 1"))
		_, _, err := r.server(errResp("42501"))
		if !errors.Is(err, ErrSwitchFailed) {
			t.Fatalf("err %v", err)
		}
	}},
	{"the switch's answers are swallowed, notices included", nil, func(t *testing.T, r *rig) {
		r.client(q("BEGIN"))
		got, _ := r.answer(parseOK(), bindOK(), notice(), cc("SELECT 1"))
		want(t, "to client", got, "")
	}},
	{"the switch is prepared once per server", nil, func(t *testing.T, r *rig) {
		r.settle()
		other := newRigFor(t, "globex", nil)
		other.sv = r.sv
		s, _ := other.client(q("SELECT 1"))
		want(t, "to server", s, "BEQ")
	}},
	{"login context matches the switch's", map[string]string{"timezone": "UTC"}, func(t *testing.T, r *rig) {
		ctx := r.m.LoginContext(r.sv)
		r.m.LoggedIn(r.sv)
		if ctx.Values[1] != "UTC" || r.sv.Context != r.m.cfg.Key || r.sv.Settings["timezone"] != "UTC" {
			t.Fatalf("ctx %v server %+v", ctx, r.sv)
		}
	}},
}

// sentLast is the last ToServer the rig drained.
func (r *rig) sentLast() []byte { return r.lastSent }
