package txstate

import (
	"errors"
	"strings"
	"testing"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

var (
	rollbackFx  = &sqlguard.Effects{TxControl: true}
	deallocFx   = &sqlguard.Effects{DeallocateAll: true}
	resetPathFx = &sqlguard.Effects{Settings: []sqlguard.Setting{{Name: "search_path", Reset: true}}}
)

// Tracked settings and their certainty.
var settingCases = []machineCase{
	{"a committed SET follows the client and the server", nil, func(t *testing.T, r *rig) {
		r.client(q("SET search_path = s1"), setFx)
		r.answer(append(switchAnswers(2, 2), cc("SET"), rfq('I'))...)
		if r.m.Settings()["search_path"] != "s1" || r.sv.Settings["search_path"] != "s1" {
			t.Fatalf("client %v server %v", r.m.Settings(), r.sv.Settings)
		}
	}},
	{"a SET changes the statement salt", nil, func(t *testing.T, r *rig) {
		before := r.m.salt
		r.client(q("SET search_path = s1"), setFx)
		r.answer(append(switchAnswers(2, 2), cc("SET"), rfq('I'))...)
		if r.m.salt == before {
			t.Fatal("same salt")
		}
	}},
	{"a SET in a failed query leaves the client's settings and unknown server settings", nil, func(t *testing.T, r *rig) {
		r.client(q("SET search_path = s1; SELECT 1/0"), setFx)
		r.answer(append(switchAnswers(2, 2), cc("SET"), errResp("22012"), rfq('I'))...)
		if len(r.m.Settings()) != 0 || !IsUnknown(r.sv.Settings) {
			t.Fatalf("client %v server %v", r.m.Settings(), r.sv.Settings)
		}
	}},
	{"a SET still in a block makes the server's settings unknown", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.m.sv = r.sv // commitEffects runs attached
		r.m.commitEffects(setFx, 'T')
		if !IsUnknown(r.sv.Settings) || len(r.m.Settings()) != 0 {
			t.Fatalf("server %v", r.sv.Settings)
		}
	}},
	{"an unnamed-statement SET counts at its Sync", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SET search_path = s1"), setFx)
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(syncMsg())
		r.answer(parseOK(), bindOK(), cc("SET"), rfq('I'))
		if r.m.Settings()["search_path"] != "s1" {
			t.Fatalf("client %v", r.m.Settings())
		}
	}},
	{"SETs and a statement that may roll back in one batch make the server unknown", nil, func(t *testing.T, r *rig) {
		r.prepare("tx", "ROLLBACK")
		r.settle()
		r.client(parse("", "SET search_path = s1"), setFx)
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(bind("", "tx"))
		r.client(execute(""))
		r.client(syncMsg())
		r.answer(parseOK(), bindOK(), cc("SET"), bindOK(), cc("ROLLBACK"), rfq('I'))
		if !IsUnknown(r.sv.Settings) || r.m.Settings()["search_path"] == "s1" {
			t.Fatalf("client %v server %v", r.m.Settings(), r.sv.Settings)
		}
	}},
	{"a ROLLBACK in a batch with a committed SET makes the server unknown", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SET search_path = s1"), setFx)
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(q("ROLLBACK"), rollbackFx)
		r.answer(parseOK(), bindOK(), cc("SET"), cc("ROLLBACK"), rfq('I'))
		if !IsUnknown(r.sv.Settings) {
			t.Fatalf("server %v", r.sv.Settings)
		}
	}},
	{"RESET removes a tracked setting", map[string]string{"search_path": "s1"}, func(t *testing.T, r *rig) {
		r.client(q("RESET search_path"), resetPathFx)
		r.answer(append(switchAnswers(2, 2), cc("RESET"), rfq('I'))...)
		if _, ok := r.m.Settings()["search_path"]; ok {
			t.Fatalf("client %v", r.m.Settings())
		}
	}},
	{"a partial DateStyle keeps the value the server reported", nil, func(t *testing.T, r *rig) {
		r.sv.Param = func(n string) (string, bool) { return "SQL, DMY", n == "DateStyle" }
		fx := &sqlguard.Effects{Settings: []sqlguard.Setting{{Name: "datestyle", Value: "SQL"}}}
		r.client(q("SET datestyle = SQL"), fx)
		r.answer(append(switchAnswers(2, 2), cc("SET"), rfq('I'))...)
		if r.m.Settings()["datestyle"] != "SQL, DMY" {
			t.Fatalf("client %v", r.m.Settings())
		}
	}},
	{"a SET in a block is refused", nil, func(t *testing.T, r *rig) {
		r.m.status = 'T'
		if we := r.m.CheckEffects(wire.Query, q("SET x = 1"), setFx); we == nil || we.Code != wire.CodeFeatureNotSupported {
			t.Fatalf("%v", we)
		}
	}},
	{"a SET with transaction control is refused", nil, func(t *testing.T, r *rig) {
		fx := &sqlguard.Effects{Settings: setFx.Settings, TxControl: true}
		if r.m.CheckEffects(wire.Query, q("BEGIN; SET x = 1"), fx) == nil {
			t.Fatal("allowed")
		}
	}},
	{"a SET as a named statement is refused", nil, func(t *testing.T, r *rig) {
		if we := r.m.CheckEffects(wire.Parse, parse("s", "SET x = 1"), setFx); we == nil || !strings.Contains(we.Message, "unnamed statement") {
			t.Fatalf("%v", we)
		}
	}},
	{"DEALLOCATE ALL as a Parse is refused", nil, func(t *testing.T, r *rig) {
		if r.m.CheckEffects(wire.Parse, parse("", "DEALLOCATE ALL"), deallocFx) == nil {
			t.Fatal("allowed")
		}
	}},
	{"a SET sent as a simple query outside a block is allowed", nil, func(t *testing.T, r *rig) {
		if we := r.m.CheckEffects(wire.Query, q("SET x = 1"), setFx); we != nil {
			t.Fatal(we)
		}
	}},
	{"DEALLOCATE ALL clears the client's and the server's statements once it ran", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(q("DEALLOCATE ALL"), deallocFx)
		if r.sv.Prepared.Len() != 1 {
			t.Fatal("cleared before it ran")
		}
		r.answer(cc("DEALLOCATE ALL"), rfq('I'))
		if r.sv.Prepared.Len() != 0 || len(r.m.st.byName) != 0 {
			t.Fatalf("server %d client %d", r.sv.Prepared.Len(), len(r.m.st.byName))
		}
	}},
	{"the pre-switch reset resets a short timer and a foreign encoding", nil, func(t *testing.T, r *rig) {
		got := PreSwitchResets(map[string]string{"statement_timeout": "1ms", "client_encoding": "LATIN1"}, nil, false)
		if strings.Join(got, ",") != "statement_timeout,lock_timeout,client_encoding" {
			t.Fatalf("%v", got)
		}
		if got := PreSwitchResets(map[string]string{"default_transaction_read_only": "on"}, nil, true); len(got) != 3 {
			t.Fatalf("login shaping %v", got)
		}
		if got := PreSwitchResets(Unknown(), nil, false); len(got) != 6 {
			t.Fatalf("unknown %v", got)
		}
	}},
	{"the reset statement takes the client's encoding and records the changes", nil, func(t *testing.T, r *rig) {
		sql, changes := ResetStatement([]string{"statement_timeout", "client_encoding"}, map[string]string{"client_encoding": "UTF8"})
		if sql != "RESET statement_timeout; SET client_encoding = 'UTF8'; " {
			t.Fatalf("%q", sql)
		}
		r.sv.Settings = map[string]string{"statement_timeout": "1ms", "client_encoding": "LATIN1"}
		r.sv.NoteResets(changes)
		if r.sv.Settings["client_encoding"] != "UTF8" || r.sv.Settings["statement_timeout"] != "" {
			t.Fatalf("%v", r.sv.Settings)
		}
		r.sv.Settings = Unknown()
		r.sv.NoteResets(changes)
		if !IsUnknown(r.sv.Settings) {
			t.Fatal("resets made unknown settings known")
		}
	}},
}

// Errors, skipping and what the server may send on its own.
var errorCases = []machineCase{
	{"an extended error skips to the Sync and drops the failed statement", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("s1", "SELEC"))
		r.client(bind("", "s1"))
		r.client(execute(""))
		r.client(syncMsg())
		got, step := r.answer(closeOK(), errResp("42601"), rfq('I'))
		want(t, "to client", got, "EZ")
		if !step.Release || len(r.m.st.byName) != 0 || r.sv.Prepared.Len() != 0 {
			t.Fatalf("stmts %v prepared %d", r.m.st.byName, r.sv.Prepared.Len())
		}
	}},
	{"a skipped injected Close leaves an orphan that the next prepare closes", nil, func(t *testing.T, r *rig) {
		r.settle()
		for i, sql := range []string{"SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4"} {
			r.client(parse("s"+string(rune('a'+i)), sql))
		}
		r.client(syncMsg())
		r.answer(closeOK(), parseOK(), closeOK(), parseOK(), closeOK(), parseOK(), closeOK(), parseOK(), rfq('I'))
		r.settle()
		r.client(bind("", "nope")) // refused: the server fails here
		r.client(parse("se", "SELECT 5"))
		r.client(syncMsg())
		r.answer(errResp("42P01"), rfq('I'))
		if len(r.sv.Orphans) != 1 {
			t.Fatalf("orphans %v", r.sv.Orphans)
		}
		r.settle()
		r.client(parse("sf", "SELECT 6"))
		if got := types(r.sentLast()); !strings.HasPrefix(got, "CC") {
			t.Fatalf("the orphan is not closed first: %q", got)
		}
	}},
	{"after an error with no Sync owed the relay skips like the server", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELEC"))
		r.client(flushMsg())
		r.answer(errResp("42601"))
		s, c := r.client(bind("", ""))
		want(t, "skipped", s+c, "")
		s, _ = r.client(syncMsg())
		want(t, "the Sync goes", s, "S")
	}},
	{"a failed unnamed Parse leaves nobody owning the unnamed statement", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELEC"))
		r.client(syncMsg())
		r.answer(errResp("42601"), rfq('I'))
		if r.sv.UnnamedOwner != 0 {
			t.Fatal("owner kept")
		}
	}},
	{"an answer out of step with the queue is an error", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		if _, _, err := r.server(bindOK()); err == nil {
			t.Fatal("BindComplete for a Parse accepted")
		}
	}},
	{"a ReadyForQuery where a Parse is owed is an error", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		if _, _, err := r.server(rfq('I')); err == nil {
			t.Fatal("accepted")
		}
	}},
	{"an unsolicited FATAL ends the client after it is forwarded", nil, func(t *testing.T, r *rig) {
		r.settle()
		step, got, err := r.server(errResp("57P01"))
		if !errors.Is(err, ErrServerClosing) || got != "E" || !step.Flush {
			t.Fatalf("err %v got %q", err, got)
		}
	}},
	{"notices and parameter changes with nothing owed are forwarded", nil, func(t *testing.T, r *rig) {
		r.settle()
		got, _ := r.answer(notice(), paramStatus("TimeZone", "UTC"))
		want(t, "to client", got, "NS")
	}},
	{"anything else with nothing owed is an error", nil, func(t *testing.T, r *rig) {
		if _, _, err := r.server(cc("SELECT 1")); err == nil {
			t.Fatal("accepted")
		}
	}},
	{"a client's own notice is forwarded", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(q("SELECT 1"))
		got, _ := r.answer(notice(), cc("SELECT 1"), rfq('I'))
		want(t, "to client", got, "NCZ")
	}},
	{"synthesized answers come out in protocol order", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(q("SELECT 2"))
		r.client(closeMsg('S', "s1")) // answered by multigres, after the query
		got, _ := r.answer(cc("SELECT 1"), rfq('I'))
		want(t, "to client", got, "CZ3")
	}},
	{"a Parse in an aborted block is sent even for a known statement", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(q("BEGIN"), rollbackFx)
		r.answer(cc("BEGIN"), rfq('T'))
		r.client(q("SELECT 1/0"))
		r.answer(errResp("22012"), rfq('E'))
		r.client(closeMsg('S', "s1"))
		s, _ := r.client(parse("s1", "SELECT 1"))
		want(t, "to server", s, "CP")
	}},
}
