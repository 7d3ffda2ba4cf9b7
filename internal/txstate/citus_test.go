package txstate

import (
	"bytes"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Guard effects of the transaction-control statements (what the guard's
// Citus mode reports).
var (
	beginFx    = &sqlguard.Effects{TxControl: true, Block: sqlguard.BlockBegin}
	commitFx   = &sqlguard.Effects{TxControl: true, Block: sqlguard.BlockEnd}
	savepoint  = &sqlguard.Effects{TxControl: true, Block: sqlguard.BlockSavepoint}
	rollbackTo = &sqlguard.Effects{TxControl: true, Block: sqlguard.BlockRollbackTo}
)

// newCitusRig is a rig whose Machine wraps transactions for Citus (two
// context variables, as the seed's list:user example), settled: its
// server carries the client's context and multigres' own statements.
func newCitusRig(t *testing.T, pinned bool) *rig {
	t.Helper()
	r := newRig(t, nil)
	r.m.cfg.Context = setconfig.Context{Variables: []string{"app.current_list_id", "app.current_user_id", "citus.propagate_set_commands"},
		Values: []string{"list123", "user456", "local"}, Role: "app_user"}
	r.m.cfg.Citus = &Citus{SetLocal: []string{"SET LOCAL app.current_list_id = E'list123'", "SET LOCAL app.current_user_id = E'user456'"}}
	r.m.cfg.Pinned = pinned
	r.m.cz = newCitus(r.m, r.m.cfg.Citus)
	if pinned {
		r.m.LoggedIn(r.sv) // a pinned client's context was applied at login
	}
	// The first query: (unpinned) the full switch, then multigres' block,
	// its BEGIN prepared.
	s, c := r.client(q("SELECT 1"))
	wantSent := "PBE" + "PBEPBE" + "QQ"
	var answers [][]byte
	if !pinned {
		wantSent = "PBEPBE" + wantSent
		answers = append(answers, parseOK(), bindOK(), cc("SELECT 1"), parseOK(), bindOK(), cc("COMMIT"))
	}
	want(t, "first query to server", s, wantSent)
	want(t, "first query to client", c, "")
	answers = append(append(answers, parseOK(), bindOK(), cc("BEGIN")), setLocalAnswers(2)...)
	got, step := r.answer(append(answers, rowDesc(), dataRow(), cc("SELECT 1"), rfq('T'), cc("COMMIT"), rfq('I'))...)
	want(t, "first query answers", got, "TDCZ")
	if !step.Release || !step.Reusable {
		t.Fatalf("first query: step %+v", step)
	}
	// An extended batch: multigres' COMMIT prepared (pinned: no switch
	// prepared it).
	r.client(parse("", "SELECT 1"))
	r.client(bind("", ""))
	r.client(execute(""))
	s, _ = r.client(syncMsg())
	answers = [][]byte{parseOK(), bindOK(), bindOK(), cc("BEGIN")}
	answers = append(append(answers, setLocalAnswers(2)...), dataRow(), cc("SELECT 1"))
	if pinned {
		want(t, "first sync", s, "PBES")
		answers = append(answers, parseOK())
	}
	got, step = r.answer(append(answers, bindOK(), cc("COMMIT"), rfq('I'))...)
	want(t, "first batch answers", got, "12DCZ")
	if !step.Release || !step.Reusable {
		t.Fatalf("first batch: step %+v", step)
	}
	return r
}

// named is what a named Parse sends (transaction mode: a Close first,
// for an orphan) and the server's answers to it.
func (r *rig) named() (string, [][]byte) {
	if r.m.cfg.Pinned {
		return "P", [][]byte{parseOK()}
	}
	return "CP", [][]byte{closeOK(), parseOK()}
}

func setLocalAnswers(n int) [][]byte {
	var out [][]byte
	for range n {
		out = append(out, parseOK(), bindOK(), cc("SET"))
	}
	return out
}

func dataRow() []byte { return wire.Build('D', []byte{0, 1, 0, 0, 0, 1, '1'}) }

// answerStatus feeds server frames like rig.answer and returns the
// status of the last ReadyForQuery the client got (0: none).
func (r *rig) answerStatus(frames ...[]byte) (string, byte, ServerStep) {
	r.t.Helper()
	var all strings.Builder
	var status byte
	var step ServerStep
	for _, f := range frames {
		var err error
		step, err = r.m.ServerMessage(wire.ServerType(f[0]), f)
		if err != nil {
			r.t.Fatalf("server %q: %v", f[0], err)
		}
		out := r.m.ToClient
		var got []byte
		if step.FrameAt >= 0 {
			got = append(append(append(got, out[:step.FrameAt]...), f...), out[step.FrameAt:]...)
		} else {
			got = append(got, out...)
		}
		r.m.ToClient = r.m.ToClient[:0]
		for _, fr := range frames0(got) {
			if fr[0] == 'Z' {
				status = fr[5]
			}
		}
		all.WriteString(types(got))
	}
	return all.String(), status, step
}

func frames0(b []byte) [][]byte { return frames(b) }

func wantStatus(t *testing.T, got, want byte) {
	t.Helper()
	if got != want {
		t.Fatalf("client ReadyForQuery %q, want %q", got, want)
	}
}

// TestCitus drives the Citus wrapper: every transaction of the client runs
// in a block with the context's SET LOCALs, and the client sees exactly
// PostgreSQL's answers to its own messages.
func TestCitus(t *testing.T) {
	t.Parallel()
	for _, pinned := range []bool{false, true} {
		for _, c := range citusCases {
			name := c.name
			if pinned {
				name = "pinned/" + name
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c.run(t, newCitusRig(t, pinned))
			})
		}
	}
}

var citusCases = []machineCase{
	{"a simple query runs in multigres' block, and the client sees one idle ReadyForQuery", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("SELECT * FROM t"))
		want(t, "to server", s, "BE"+"PBEPBE"+"QQ")
		if !bytes.Contains(r.lastSent, []byte("SET LOCAL app.current_list_id = E'list123'")) ||
			!bytes.Contains(r.lastSent, []byte("SET LOCAL app.current_user_id = E'user456'")) {
			t.Fatalf("SET LOCALs missing: %q", r.lastSent)
		}
		if !r.m.ServerAnswersAll() {
			t.Fatal("the wrapped query is not answered without more input")
		}
		got, status, step := r.answerStatus(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...),
			rowDesc(), dataRow(), cc("SELECT 1"), rfq('T'), cc("COMMIT"), rfq('I'))...)
		want(t, "to client", got, "TDCZ")
		wantStatus(t, status, 'I')
		if !step.Release || !step.Reusable || r.m.Status() != 'I' {
			t.Fatalf("step %+v status %q", step, r.m.Status())
		}
	}},
	{"a failed simple query: the COMMIT rolls back and the client sees the error and 'I'", nil, func(t *testing.T, r *rig) {
		r.client(q("INSERT INTO t VALUES ('globex')"))
		got, status, step := r.answerStatus(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...),
			errResp("42501"), rfq('E'), cc("ROLLBACK"), rfq('I'))...)
		want(t, "to client", got, "EZ")
		wantStatus(t, status, 'I')
		if !step.Release || !step.Reusable {
			t.Fatalf("step %+v", step)
		}
	}},
	{"a failing COMMIT reaches the client after the query's CommandComplete", nil, func(t *testing.T, r *rig) {
		r.client(q("INSERT INTO t VALUES (1)"))
		got, status, _ := r.answerStatus(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...),
			cc("INSERT 0 1"), rfq('T'), errResp("40001"), rfq('I'))...)
		want(t, "to client", got, "CEZ")
		wantStatus(t, status, 'I')
	}},
	{"an error in BEGIN or a SET LOCAL ends the client", nil, func(t *testing.T, r *rig) {
		r.client(q("SELECT 1"))
		r.answer(bindOK(), cc("BEGIN"), parseOK(), bindOK())
		if _, _, err := r.server(errResp("22023")); err == nil || !strings.Contains(err.Error(), "context switch failed") {
			t.Fatalf("error in SET LOCAL: %v", err)
		}
	}},
	{"the client's BEGIN goes first, the SET LOCALs follow with a Flush, and the block is the client's", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("BEGIN ISOLATION LEVEL SERIALIZABLE"), beginFx)
		want(t, "to server", s, "Q"+"PBEPBE"+"H")
		if !r.m.ServerAnswersAll() {
			t.Fatal("the SET LOCALs after BEGIN wait for more client input")
		}
		got, status, _ := r.answerStatus(cc("BEGIN"), rfq('T'))
		want(t, "BEGIN", got, "CZ")
		wantStatus(t, status, 'T')
		got, _, _ = r.answerStatus(setLocalAnswers(2)...)
		want(t, "SET LOCALs", got, "")
		s, _ = r.client(q("SELECT * FROM t"))
		want(t, "in the client's block", s, "Q")
		got, _, _ = r.answerStatus(rowDesc(), cc("SELECT 0"), rfq('T'))
		want(t, "select", got, "TCZ")
		s, _ = r.client(q("COMMIT"), commitFx)
		want(t, "commit", s, "Q")
		got, status, step := r.answerStatus(cc("COMMIT"), rfq('I'))
		want(t, "commit", got, "CZ")
		wantStatus(t, status, 'I')
		if !step.Release {
			t.Fatal("not released after COMMIT")
		}
	}},
	{"COMMIT outside a block goes as it is (PostgreSQL warns)", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("COMMIT"), commitFx)
		want(t, "to server", s, "Q")
		got, _, step := r.answerStatus(notice(), cc("COMMIT"), rfq('I'))
		want(t, "to client", got, "NCZ")
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"an extended batch runs in multigres' block, opened before its Execute and committed before its Sync", nil, func(t *testing.T, r *rig) {
		r.client(parse("", "SELECT * FROM t WHERE id = $1"))
		r.client(bind("", ""))
		s, _ := r.client(execute(""))
		want(t, "execute", s, "BE"+"PBEPBE"+"E")
		if !bytes.Contains(r.lastSent, []byte(czBeginPortal)) || !bytes.Contains(r.lastSent, []byte(czSetPortal+"1")) {
			t.Fatalf("multigres' portals are not named: %q", r.lastSent)
		}
		s, _ = r.client(syncMsg())
		want(t, "sync", s, "BES")
		got, status, step := r.answerStatus(append(append([][]byte{parseOK(), bindOK(), bindOK(), cc("BEGIN")}, setLocalAnswers(2)...),
			dataRow(), cc("SELECT 1"), bindOK(), cc("COMMIT"), rfq('I'))...)
		want(t, "to client", got, "12DCZ")
		wantStatus(t, status, 'I')
		if !step.Release || !step.Reusable {
			t.Fatalf("step %+v", step)
		}
		// The SET LOCALs replaced the unnamed statement: the client's is
		// parsed again where it binds it.
		s, _ = r.client(bind("", ""))
		want(t, "rebind", s, "PB")
	}},
	{"an extended batch that fails: the skipped COMMIT leaves 'E', multigres rolls back and the client sees 'I'", nil, func(t *testing.T, r *rig) {
		r.client(parse("", "INSERT INTO t VALUES ($1)"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(syncMsg())
		got, _, _ := r.answerStatus(append(append([][]byte{parseOK(), bindOK(), bindOK(), cc("BEGIN")}, setLocalAnswers(2)...),
			errResp("42501"))...)
		want(t, "error", got, "12E")
		got, status, step := r.answerStatus(rfq('E'))
		want(t, "the Sync's 'E' is swallowed", got, "")
		wantStatus(t, status, 0)
		s, _ := r.drain()
		want(t, "rollback sent", s, "Q")
		if !bytes.Contains(r.lastSent, []byte("ROLLBACK")) || step.Release {
			t.Fatalf("sent %q step %+v", r.lastSent, step)
		}
		got, status, step = r.answerStatus(cc("ROLLBACK"), rfq('I'))
		want(t, "rollback", got, "Z")
		wantStatus(t, status, 'I')
		if !step.Release || !step.Reusable {
			t.Fatalf("step %+v", step)
		}
	}},
	{"the client's BEGIN by Execute is followed by the SET LOCALs", nil, func(t *testing.T, r *rig) {
		r.client(parse("", "BEGIN"), beginFx)
		r.client(bind("", ""))
		s, _ := r.client(execute(""))
		want(t, "execute", s, "E"+"PBEPBE")
		s, _ = r.client(syncMsg())
		want(t, "sync", s, "S")
		got, status, step := r.answerStatus(append(append([][]byte{parseOK(), bindOK(), cc("BEGIN")}, setLocalAnswers(2)...), rfq('T'))...)
		want(t, "to client", got, "12CZ")
		wantStatus(t, status, 'T')
		if step.Release {
			t.Fatal("released inside the client's block")
		}
		s, _ = r.client(q("SELECT 1"))
		want(t, "next", s, "Q")
	}},
	{"BEGIN after other statements of a batch takes multigres' block over, without PostgreSQL's extra warning", nil, func(t *testing.T, r *rig) {
		np, na := r.named()
		s, _ := r.client(parse("a", "SELECT 1"))
		want(t, "parse", s, np)
		r.client(bind("", "a"))
		s, _ = r.client(execute(""))
		want(t, "execute", s, "BEPBEPBEE")
		r.client(parse("b", "BEGIN"), beginFx)
		r.client(bind("", "b"))
		s, _ = r.client(execute(""))
		want(t, "BEGIN", s, "E")
		s, _ = r.client(syncMsg())
		want(t, "no COMMIT: the block is the client's", s, "S")
		answers := append(append([][]byte{}, na...), bindOK(), bindOK(), cc("BEGIN"))
		answers = append(append(answers, setLocalAnswers(2)...), dataRow(), cc("SELECT 1"))
		answers = append(append(answers, na...), bindOK(), mustEncode(&pgproto3.NoticeResponse{
			Severity: "WARNING", Code: wire.CodeActiveSQLTransaction, Message: "there is already a transaction in progress"}),
			cc("BEGIN"), rfq('T'))
		got, status, step := r.answerStatus(answers...)
		want(t, "to client", got, "12DC12CZ")
		wantStatus(t, status, 'T')
		if step.Release {
			t.Fatal("released in the client's block")
		}
	}},
	{"COMMIT after other statements of a batch ends multigres' block with PostgreSQL's warning", nil, func(t *testing.T, r *rig) {
		_, na := r.named()
		r.client(parse("a", "SELECT 1"))
		r.client(bind("", "a"))
		r.client(execute(""))
		r.client(parse("c", "COMMIT"), commitFx)
		r.client(bind("", "c"))
		s, _ := r.client(execute(""))
		want(t, "COMMIT", s, "E")
		s, _ = r.client(syncMsg())
		want(t, "no second COMMIT", s, "S")
		answers := append(append([][]byte{}, na...), bindOK(), bindOK(), cc("BEGIN"))
		answers = append(append(answers, setLocalAnswers(2)...), dataRow(), cc("SELECT 1"))
		answers = append(append(answers, na...), bindOK(), cc("COMMIT"), rfq('I'))
		got, status, step := r.answerStatus(answers...)
		want(t, "to client", got, "12DC12NCZ")
		wantStatus(t, status, 'I')
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"COMMIT after other statements, skipped after an error: multigres' block is rolled back", nil, func(t *testing.T, r *rig) {
		r.client(parse("", "SELECT 1/0"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(parse("c", "COMMIT"), commitFx)
		r.client(bind("", "c"))
		r.client(execute(""))
		r.client(syncMsg())
		answers := append([][]byte{parseOK(), bindOK(), bindOK(), cc("BEGIN")}, setLocalAnswers(2)...)
		got, _, _ := r.answerStatus(append(answers, errResp("22012"))...)
		want(t, "error", got, "12E")
		got, status, _ := r.answerStatus(rfq('E'))
		want(t, "swallowed", got, "")
		wantStatus(t, status, 0)
		got, status, step := r.answerStatus(cc("ROLLBACK"), rfq('I'))
		want(t, "rollback", got, "Z")
		wantStatus(t, status, 'I')
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"a savepoint command in multigres' block fails as in PostgreSQL's implicit transaction", nil, func(t *testing.T, r *rig) {
		r.client(parse("a", "SELECT 1"))
		r.client(bind("", "a"))
		r.client(execute(""))
		r.client(parse("s", "ROLLBACK TO SAVEPOINT x"), rollbackTo)
		r.client(bind("", "s"))
		s, _ := r.client(execute(""))
		want(t, "refused in place", s, "P")
		if len(r.refused) != 1 || r.refused[0] != "ROLLBACK TO SAVEPOINT can only be used in transaction blocks" {
			t.Fatalf("refused %q", r.refused)
		}
	}},
	{"a savepoint query pipelined in multigres' block fails in its place, with one ReadyForQuery", nil, func(t *testing.T, r *rig) {
		r.client(parse("", "SELECT 1"))
		r.client(bind("", ""))
		r.client(execute(""))
		s, _ := r.client(q("SAVEPOINT a"), savepoint)
		want(t, "refused, then multigres' COMMIT", s, "PQ")
		if len(r.refused) != 1 || r.refused[0] != "SAVEPOINT can only be used in transaction blocks" {
			t.Fatalf("refused %q", r.refused)
		}
		answers := append([][]byte{parseOK(), bindOK(), bindOK(), cc("BEGIN")}, setLocalAnswers(2)...)
		got, status, step := r.answerStatus(append(answers, dataRow(), cc("SELECT 1"), errResp("25P01"), rfq('E'), cc("ROLLBACK"), rfq('I'))...)
		want(t, "to client", got, "12DCEZ")
		wantStatus(t, status, 'I')
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"a savepoint in the client's block goes as it is", nil, func(t *testing.T, r *rig) {
		r.client(q("BEGIN"), beginFx)
		r.answer(append([][]byte{cc("BEGIN"), rfq('T')}, setLocalAnswers(2)...)...)
		s, _ := r.client(q("SAVEPOINT a"), savepoint)
		want(t, "savepoint", s, "Q")
	}},
	{"a client in its own block failing and committing sees PostgreSQL's ROLLBACK", nil, func(t *testing.T, r *rig) {
		r.client(q("BEGIN"), beginFx)
		r.answer(append([][]byte{cc("BEGIN"), rfq('T')}, setLocalAnswers(2)...)...)
		r.client(q("SELECT 1/0"))
		got, status, _ := r.answerStatus(errResp("22012"), rfq('E'))
		want(t, "error", got, "EZ")
		wantStatus(t, status, 'E')
		s, _ := r.client(q("COMMIT"), commitFx)
		want(t, "commit", s, "Q")
		got, status, step := r.answerStatus(cc("ROLLBACK"), rfq('I'))
		want(t, "commit", got, "CZ")
		wantStatus(t, status, 'I')
		if !step.Release {
			t.Fatal("not released")
		}
	}},
	{"an error before the client's COMMIT in its block: the Sync's 'E' is the client's", nil, func(t *testing.T, r *rig) {
		r.client(q("BEGIN"), beginFx)
		r.answer(append([][]byte{cc("BEGIN"), rfq('T')}, setLocalAnswers(2)...)...)
		r.client(parse("", "SELECT 1/0"))
		r.client(bind("", ""))
		r.client(execute(""))
		r.client(parse("c", "COMMIT"), commitFx)
		r.client(bind("", "c"))
		r.client(execute(""))
		r.client(parse("", "SELECT 2"))
		r.client(bind("", ""))
		s, _ := r.client(execute(""))
		want(t, "after the client's COMMIT multigres opens a block", s, "BEPBEPBEE")
		_ = s
		s, _ = r.client(syncMsg())
		want(t, "sync", s, "BES")
		got, status, _ := r.answerStatus(parseOK(), bindOK(), errResp("22012"), rfq('E'))
		want(t, "to client", got, "12EZ")
		wantStatus(t, status, 'E')
	}},
	{"multigres' COMMIT prepared behind a failed statement is prepared again next time", nil, func(t *testing.T, r *rig) {
		delete(r.sv.Internal, "mg_commit") // as on a connection that never ran one
		r.client(parse("", "SELECT 1/0"))
		r.client(bind("", ""))
		r.client(execute(""))
		s, _ := r.client(syncMsg())
		want(t, "sync", s, "PBES")
		r.answer(append(append([][]byte{parseOK(), bindOK(), bindOK(), cc("BEGIN")}, setLocalAnswers(2)...), errResp("22012"), rfq('E'))...)
		r.answer(cc("ROLLBACK"), rfq('I'))
		r.client(q("SELECT 1"))
		r.answer(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...), cc("SELECT 1"), rfq('T'), cc("COMMIT"), rfq('I'))...)
		r.client(parse("", "SELECT 1"))
		r.client(bind("", ""))
		r.client(execute(""))
		s, _ = r.client(syncMsg())
		want(t, "the skipped Parse is sent again", s, "PBES")
	}},
	{"a multi-statement query runs in one block", nil, func(t *testing.T, r *rig) {
		s, _ := r.client(q("SELECT 1; SELECT 2"))
		want(t, "to server", s, "BEPBEPBEQQ")
		got, status, _ := r.answerStatus(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...),
			rowDesc(), dataRow(), cc("SELECT 1"), rowDesc(), dataRow(), cc("SELECT 1"), rfq('T'), cc("COMMIT"), rfq('I'))...)
		want(t, "to client", got, "TDCTDCZ")
		wantStatus(t, status, 'I')
	}},
	{"a tracked SET in a wrapped query counts once the block commits", nil, func(t *testing.T, r *rig) {
		r.client(q("SET search_path = s1"), setFx)
		r.answer(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...), cc("SET"), rfq('T'), cc("COMMIT"), rfq('I'))...)
		if r.m.Settings()["search_path"] != "s1" {
			t.Fatalf("settings %v", r.m.Settings())
		}
		if !r.m.cfg.Pinned && r.sv.Settings["search_path"] != "s1" {
			t.Fatalf("server settings %v", r.sv.Settings)
		}
	}},
	{"a tracked SET in a failed wrapped query does not count", nil, func(t *testing.T, r *rig) {
		r.client(q("SET search_path = s1"), setFx)
		r.answer(append(append([][]byte{bindOK(), cc("BEGIN")}, setLocalAnswers(2)...), errResp("22023"), rfq('E'), cc("ROLLBACK"), rfq('I'))...)
		if _, ok := r.m.Settings()["search_path"]; ok {
			t.Fatalf("settings %v", r.m.Settings())
		}
	}},
}
