package txstate

// Attacks on the state machine, each pinning down a guarantee
// (test/e2e/txstatemachine_attack_test.go runs the same attacks against a
// real PostgreSQL): settings left unknown stay unknown, answers multigres
// gives itself reach a waiting client, the unnamed statement dies when
// PostgreSQL's does, a Parse is answered locally only while the
// transaction status is known.

import (
	"bytes"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
)

var (
	attackTxFx = &sqlguard.Effects{TxControl: true}
	attackROFx = &sqlguard.Effects{Settings: []sqlguard.Setting{{Name: "default_transaction_read_only", Value: "on"}}}
	attackWMFx = &sqlguard.Effects{Settings: []sqlguard.Setting{{Name: "work_mem", Value: "8MB"}}}
)

// TestAttackUnknownSettingsStayUnknownAfterLaterSet: BEGIN; SET
// default_transaction_read_only = on; COMMIT; SET work_mem = '8MB',
// pipelined simple queries. The read-only SET runs in the block
// (commitEffects: the server's settings are unknown) and the COMMIT makes
// it stick. The last SET succeeds at 'I', and commitEffects then records
// the server's settings as the client's plus work_mem, dropping the
// unknown marker: the next switch would not reset read-only.
func TestAttackUnknownSettingsStayUnknownAfterLaterSet(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settle()
	r.client(q("BEGIN"), attackTxFx)
	r.client(q("SET default_transaction_read_only = on"), attackROFx)
	r.client(q("COMMIT"), attackTxFx)
	r.client(q("SET work_mem = '8MB'"), attackWMFx)
	_, step := r.answer(cc("BEGIN"), rfq('T'), cc("SET"), rfq('T'), cc("COMMIT"), rfq('I'), cc("SET"), rfq('I'))
	if !step.Release {
		t.Fatalf("step %+v", step)
	}
	if !IsUnknown(r.sv.Settings) && r.sv.Settings["default_transaction_read_only"] != "on" {
		t.Errorf("the server has default_transaction_read_only = on (committed); the model says %v", r.sv.Settings)
	}
}

// TestAttackBatchUnknownSettingsStayUnknownAfterLaterSet: the extended
// form: an unnamed-statement SET and a named statement (effects not
// tracked, e.g. COMMIT) in one batch make the server's settings unknown;
// a simple-query SET pipelined behind the batch makes them known again.
func TestAttackBatchUnknownSettingsStayUnknownAfterLaterSet(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.prepare("c", "COMMIT")
	r.settle()
	r.client(parse("", "SET default_transaction_read_only = on"), attackROFx)
	r.client(bind("", ""))
	r.client(execute(""))
	r.client(bind("", "c"))
	r.client(execute(""))
	r.client(syncMsg())
	r.client(q("SET work_mem = '8MB'"), attackWMFx)
	_, step := r.answer(parseOK(), bindOK(), cc("SET"), bindOK(), cc("COMMIT"), rfq('I'), cc("SET"), rfq('I'))
	if !step.Release {
		t.Fatalf("step %+v", step)
	}
	if !IsUnknown(r.sv.Settings) && r.sv.Settings["default_transaction_read_only"] != "on" {
		t.Errorf("the server may have default_transaction_read_only = on (the batch's COMMIT); the model says %v", r.sv.Settings)
	}
}

// TestAttackSynthAnswerWithNothingOwedIsFlushed: inside a block with
// nothing owed, Close of a named statement is answered by multigres at
// once (owe), but the Machine does not ask for a flush: a client that
// sends Close + Flush waits for its CloseComplete forever.
func TestAttackSynthAnswerWithNothingOwedIsFlushed(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settle()
	r.client(q("BEGIN"), attackTxFx)
	r.answer(cc("BEGIN"), rfq('T'))
	r.m.TakeReady()
	_, c := r.client(closeMsg('S', "s1"))
	want(t, "to client", c, "3")
	if _, flush, unflushed := r.m.TakeReady(); !flush && !unflushed {
		t.Error("a CloseComplete multigres answered itself, with nothing owed, is not flushed")
	}
}

// TestAttackSimpleQueryForgetsUnnamed: PostgreSQL drops the unnamed
// statement when a simple query runs; Bind of "" is then 26000. The
// Machine clears the server's owner but keeps the client's unnamed
// statement and re-sends its Parse: the statement runs again.
func TestAttackSimpleQueryForgetsUnnamed(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settle()
	r.client(parse("", "INSERT INTO t VALUES (1)"))
	r.client(bind("", ""))
	r.client(execute(""))
	r.client(syncMsg())
	r.answer(parseOK(), bindOK(), cc("INSERT 0 1"), rfq('I'))
	r.client(q("SELECT 1"))
	r.answer(rowDesc(), cc("SELECT 1"), rfq('I'))
	s, _ := r.client(bind("", ""))
	if strings.HasPrefix(s, "PB") && bytes.Contains(r.sentLast(), []byte("INSERT INTO t")) {
		t.Errorf("Bind of \"\" after a simple query re-sent the dropped INSERT (%q); PostgreSQL says 26000", s)
	}
}

// TestAttackRefusedUnnamedParseForgetsUnnamed: an unnamed Parse the guard
// refuses is sent as the refusal token, which the server fails; the
// client's previous unnamed statement must not come back with the next
// Bind of "" (PostgreSQL dropped it when the Parse began).
func TestAttackRefusedUnnamedParseForgetsUnnamed(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settle()
	r.client(parse("", "INSERT INTO t VALUES (1)"))
	r.client(bind("", ""))
	r.client(execute(""))
	r.client(syncMsg())
	r.answer(parseOK(), bindOK(), cc("INSERT 0 1"), rfq('I'))
	r.client(parse("", RefusalPrefix+"tok"))
	r.client(syncMsg())
	r.answer(errResp("42601"), rfq('I'))
	s, _ := r.client(bind("", ""))
	if bytes.Contains(r.sentLast(), []byte("INSERT INTO t")) {
		t.Errorf("Bind of \"\" after a refused unnamed Parse re-sent the previous INSERT (%q)", s)
	}
}

// TestAttackOwnQueryRanForcesReparse: a guarantee. The pool's health
// check (or the audit, or a pre-switch reset) drops the server's unnamed
// statement: the next Bind of "" re-sends the client's Parse first.
func TestAttackOwnQueryRanForcesReparse(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settle()
	r.client(parse("", "SELECT 1"))
	r.client(syncMsg())
	r.answer(parseOK(), rfq('I'))
	r.sv.OwnQueryRan()
	s, _ := r.client(bind("", ""))
	want(t, "to server", s, "PB")
}

// TestAttackAnotherTenantsUnnamedIsNotBound: a guarantee. globex's model
// of the same connection after acme parsed an unnamed statement there:
// globex's Bind of "" re-sends globex's own Parse, never binds acme's.
func TestAttackAnotherTenantsUnnamedIsNotBound(t *testing.T) {
	t.Parallel()
	g := newRigFor(t, "globex", nil)
	g.settle()
	g.client(parse("", "SELECT 'globex'"))
	g.client(syncMsg())
	g.answer(parseOK(), rfq('I'))
	a := newRigFor(t, "acme", nil)
	a.sv = g.sv // the same connection
	a.client(parse("", "SELECT 'acme'"))
	a.client(syncMsg())
	a.answer(append(switchAnswers(2, 2), parseOK(), rfq('I'))...)
	s, _ := g.client(bind("", ""))
	if !strings.Contains(s, "PB") || !bytes.Contains(g.sentLast(), []byte("SELECT 'globex'")) {
		t.Errorf("globex's Bind of \"\" after acme's unnamed Parse sent %q", s)
	}
}

// TestAttackAbandonedInFlightIsNeverPooled: a guarantee. A client that
// leaves with a statement in flight gets PlanCancelClose; a ReadyForQuery
// 'I' read afterwards releases the connection but never as reusable.
func TestAttackAbandonedInFlightIsNeverPooled(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.settle()
	r.client(q("SELECT pg_sleep(10)"))
	if p := r.m.Abandon(false); p != PlanCancelClose {
		t.Fatalf("plan %v", p)
	}
	got, step := r.answer(rowDesc(), cc("SELECT 1"), rfq('I'))
	if got != "" || !step.Release || step.Reusable {
		t.Errorf("after abandon: client got %q, step %+v", got, step)
	}
}

// TestAttackShortSwitchThenPipelinedCommandSwitchesAgain: a guarantee.
// acme's first query on globex's connection rides the short switch; a
// second command pipelined before its ReadyForQuery gets the full switch
// in front of it, so it never runs under globex's context if the first
// query failed.
func TestAttackShortSwitchThenPipelinedCommandSwitchesAgain(t *testing.T) {
	t.Parallel()
	g := newRigFor(t, "globex", nil)
	g.settle()
	a := newRigFor(t, "acme", nil)
	a.sv = g.sv
	s1, _ := a.client(q("SELECT 1/0"))
	if !strings.HasSuffix(s1, "BEQ") {
		t.Fatalf("first query sent %q, want the short switch before it", s1)
	}
	s2, _ := a.client(q("SELECT name FROM contacts"))
	if s2 == "Q" || !strings.HasSuffix(s2, "Q") || !strings.Contains(s2, "BE") {
		t.Fatalf("pipelined query sent %q, want a full switch before it", s2)
	}
	n := strings.Count(s2, "E")
	answers := [][]byte{bindOK(), cc("SELECT 1"), errResp("22012"), rfq('I')}
	for i := 0; i < n; i++ {
		if i < strings.Count(s2, "P") {
			answers = append(answers, parseOK())
		}
		answers = append(answers, bindOK(), cc("SELECT 1"))
	}
	answers = append(answers, rowDesc(), cc("SELECT 0"), rfq('I'))
	got, step := a.answer(answers...)
	if got != "EZTCZ" || !step.Release || !step.Reusable || a.sv.Context != a.m.cfg.Key {
		t.Errorf("client got %q, step %+v, context %q", got, step, a.sv.Context)
	}
}

// TestAttackSwitchErrorIsFatal: a guarantee. Any error answering part of
// the switch ends the client (the connection is not trusted).
func TestAttackSwitchErrorIsFatal(t *testing.T) {
	t.Parallel()
	g := newRigFor(t, "globex", nil)
	g.settle()
	a := newRigFor(t, "acme", nil)
	a.sv = g.sv
	a.client(q("SELECT name FROM contacts"))
	if _, _, err := a.server(bindOK()); err != nil {
		t.Fatal(err)
	}
	_, got, err := a.server(errResp("42501"))
	if err == nil || got != "" {
		t.Errorf("an error in the switch: client got %q, err %v", got, err)
	}
}

// TestAttackSkippedReprepareLeavesAnOrphan: a Parse of a statement the
// server already has, sent to the server because a Query is still owed,
// is skipped with its Close after an error: the statement stays on the
// server, so the model keeps it as an orphan rather than forgetting it.
func TestAttackSkippedReprepareLeavesAnOrphan(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	r.prepare("s1", "SELECT 1")
	r.client(closeMsg('S', "s1"))
	r.client(q("SELECT 1"))
	r.client(bind("", "nope")) // refused: the server fails here, skipping the rest
	r.client(parse("s1", "SELECT 1"))
	r.client(syncMsg())
	r.answer(cc("SELECT 1"), rfq('I'), errResp("26000"), rfq('I'))
	if len(r.sv.Orphans) != 1 || r.sv.Prepared.Len() != 0 {
		t.Fatalf("orphans %v prepared %d: the server still has the statement", r.sv.Orphans, r.sv.Prepared.Len())
	}
}
