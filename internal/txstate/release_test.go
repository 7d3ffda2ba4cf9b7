package txstate

import (
	"errors"
	"testing"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// COPY FROM STDIN.
var copyCases = []machineCase{
	{"COPY data flows while the server reads it, and Syncs are owed nothing", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(q("COPY t FROM STDIN"))
		r.answer(copyInResponse())
		if !r.m.CopyIn() {
			t.Fatal("not in COPY")
		}
		s, _ := r.client(copyData())
		want(t, "data", s, "d")
		r.client(syncMsg())
		r.client(copyDone())
		got, step := r.answer(cc("COPY 1"), rfq('I'))
		want(t, "to client", got, "CZ")
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"a query during COPY ends the client", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(q("COPY t FROM STDIN"))
		r.answer(copyInResponse())
		if err := r.clientErr(q("SELECT 1")); !errors.Is(err, ErrCopyPipelined) {
			t.Fatalf("err %v", err)
		}
	}},
	{"a COPY pipelined with a command before its data ends the client", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "COPY t FROM STDIN"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(q("SELECT 1"))
		r.answer(parseOK(), bindOK())
		if _, _, err := r.server(copyInResponse()); !errors.Is(err, ErrCopyPipelined) {
			t.Fatalf("err %v", err)
		}
	}},
	{"a COPY failing with a Sync pending ends the client", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "COPY t FROM STDIN"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(syncMsg())
		r.answer(parseOK(), bindOK(), copyInResponse())
		step, got, err := r.server(errResp("55000"))
		if !errors.Is(err, ErrCopyUncertain) || got != "E" || !step.Flush {
			t.Fatalf("err %v got %q", err, got)
		}
	}},
	{"the client's own CopyFail with a Sync pending is certain", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "COPY t FROM STDIN"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(syncMsg())
		r.answer(parseOK(), bindOK(), copyInResponse())
		r.client(copyFail())
		if _, _, err := r.server(errResp(wire.CodeQueryCanceled)); err != nil {
			t.Fatal(err)
		}
	}},
	{"a Sync sent during COPY that the server answers after all is forwarded", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(q("COPY t FROM STDIN"))
		r.answer(copyInResponse())
		r.client(copyFail())
		got, step := r.answer(errResp(wire.CodeQueryCanceled), rfq('I'))
		want(t, "to client", got, "EZ")
		if !step.Release {
			t.Fatal("not released")
		}
	}},
}

// Release decisions.
var releaseCases = []machineCase{
	{"a connection in a block is kept", nil, func(t *testing.T, r *rig) {
		r.client(q("BEGIN"), rollbackFx)
		_, step := r.answer(append(switchAnswers(2, 2), cc("BEGIN"), rfq('T'))...)
		if step.Release || !r.m.Attached() || r.m.Status() != 'T' {
			t.Fatalf("step %+v", step)
		}
	}},
	{"a connection is kept until the last pipelined Sync is answered", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(q("SELECT 2"))
		r.client(syncMsg())
		_, step := r.answer(cc("SELECT 1"), rfq('I'))
		if step.Release {
			t.Fatal("released with a Sync still owed")
		}
		if _, step = r.answer(rfq('I')); !step.Release || !step.Reusable {
			t.Fatalf("step %+v", step)
		}
	}},
	{"rows go to the client only for its own statements", nil, func(t *testing.T, r *rig) {
		r.client(q("SELECT 1"))
		if r.m.RowsForward() {
			t.Fatal("the switch's rows would reach the client")
		}
		r.answer(switchAnswers(1, 1)...)
		if !r.m.RowsForward() {
			t.Fatal("the query's rows would not")
		}
	}},
	{"a request ending in Sync or Query is answered without more input", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		if r.m.ServerAnswersAll() {
			t.Fatal("a Parse without Sync")
		}
		r.client(syncMsg())
		if !r.m.ServerAnswersAll() {
			t.Fatal("after Sync")
		}
	}},
	{"Execute completes with PortalSuspended and EmptyQueryResponse too", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(execute(""))
		r.client(describe('P', ""))
		r.client(syncMsg())
		got, step := r.answer(parseOK(), bindOK(), suspended(), emptyQuery(), noData(), rfq('I'))
		want(t, "to client", got, "12sInZ")
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"a departed client's idle connection is rolled back and pooled", nil, func(t *testing.T, r *rig) {
		r.client(q("BEGIN"), rollbackFx)
		r.answer(append(switchAnswers(2, 2), cc("BEGIN"), rfq('T'))...)
		if p := r.m.Abandon(false); p != PlanRollback {
			t.Fatalf("plan %v", p)
		}
		s, _ := r.drain()
		want(t, "to server", s, "Q")
		got, step := r.answer(cc("ROLLBACK"), rfq('I'))
		want(t, "to client", got, "")
		if !step.Release || !step.Reusable {
			t.Fatalf("step %+v", step)
		}
	}},
	{"a departed client that never synced has its connection closed", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		r.client(flushMsg())
		r.answer(parseOK())
		if p := r.m.Abandon(true); p != PlanClose {
			t.Fatalf("plan %v", p)
		}
	}},
	{"a departed client's running statement is cancelled and never pooled", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(q("SELECT pg_sleep(10)"))
		if p := r.m.Abandon(false); p != PlanCancelClose {
			t.Fatalf("plan %v", p)
		}
		got, step := r.answer(cc("SELECT 1"), rfq('I'))
		want(t, "to client", got, "")
		if !step.Release || step.Reusable {
			t.Fatalf("step %+v", step)
		}
	}},
	{"a departed client without a connection needs nothing", nil, func(t *testing.T, r *rig) {
		if p := r.m.Abandon(false); p != PlanNone {
			t.Fatalf("plan %v", p)
		}
	}},
	{"a lost server detaches the client", nil, func(t *testing.T, r *rig) {
		r.client(q("SELECT 1"))
		r.m.Lost()
		if r.m.Attached() || r.m.Owes() || r.m.sv != nil {
			t.Fatal("still attached")
		}
	}},
}
