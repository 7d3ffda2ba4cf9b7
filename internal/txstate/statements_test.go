package txstate

import (
	"bytes"
	"strings"
	"testing"
)

// serverNames are the statement names of the Parse, Bind, Describe and
// Close messages in b, in order.
func serverNames(b []byte) []string {
	var out []string
	for _, f := range frames(b) {
		body := f[5:]
		switch f[0] {
		case 'P':
			out = append(out, string(body[:bytes.IndexByte(body, 0)]))
		case 'B':
			rest := body[bytes.IndexByte(body, 0)+1:]
			out = append(out, string(rest[:bytes.IndexByte(rest, 0)]))
		case 'D', 'C':
			out = append(out, string(body[1:bytes.IndexByte(body, 0)]))
		}
	}
	return out
}

// prepare settles the rig, then prepares name on its server in a batch
// of its own and answers it.
func (r *rig) prepare(name, sql string) {
	r.t.Helper()
	r.settle()
	r.client(parse(name, sql))
	r.client(syncMsg())
	got, step := r.answer(closeOK(), parseOK(), rfq('I'))
	if got != "1Z" || !step.Release {
		r.t.Fatalf("prepare answered %q, step %+v", got, step)
	}
}

// Statement renaming and prepare-on-demand.
var statementCases = []machineCase{
	{"a named statement is renamed, closed first and prepared", nil, func(t *testing.T, r *rig) {
		r.settle()
		s, _ := r.client(parse("s1", "SELECT 1"))
		want(t, "to server", s, "CP")
		names := serverNames(r.sentLast())
		if names[0] != names[1] || !strings.HasPrefix(names[0], "mg_") {
			t.Fatalf("names %v", names)
		}
	}},
	{"a statement the server has is answered by multigres", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(closeMsg('S', "s1"))
		s, c := r.client(parse("s1", "SELECT 1"))
		want(t, "to server", s, "")
		want(t, "to client", c, "1")
	}},
	{"in an aborted block a known statement's Parse still goes to the server", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(closeMsg('S', "s1"))
		r.m.status = 'E'
		s, _ := r.client(parse("s1", "SELECT 1"))
		want(t, "to server", s, "CP")
	}},
	{"a statement is prepared on demand on another server", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.sv = NewServer(43, 4, nil)
		s, _ := r.client(bind("", "s1"))
		want(t, "to server", s, "PBEPBECPB")
		got, _ := r.answer(append(switchAnswers(2, 2), closeOK(), parseOK(), bindOK())...)
		want(t, "to client", got, "2")
	}},
	{"a Bind to an unknown statement is refused through the server", nil, func(t *testing.T, r *rig) {
		r.settle()
		s, _ := r.client(bind("", "nope"))
		want(t, "to server", s, "P")
		if len(r.refused) != 1 || !strings.Contains(r.refused[0], `"nope" does not exist`) {
			t.Fatalf("refused %v", r.refused)
		}
	}},
	{"a duplicate named Parse is refused", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(parse("s1", "SELECT 2"))
		if len(r.refused) != 1 || !strings.Contains(r.refused[0], "already exists") {
			t.Fatalf("refused %v", r.refused)
		}
	}},
	{"Describe of a statement uses its server name", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.client(describe('S', "s1"))
		if n := serverNames(r.sentLast()); len(n) != 1 || !strings.HasPrefix(n[0], "mg_") {
			t.Fatalf("names %v", n)
		}
	}},
	{"Describe of a portal passes unchanged", nil, func(t *testing.T, r *rig) {
		r.settle()
		s, _ := r.client(describe('P', "p"))
		want(t, "to server", s, "D")
	}},
	{"closing a named statement keeps it on the server for others", nil, func(t *testing.T, r *rig) {
		r.prepare("s1", "SELECT 1")
		r.settle()
		s, c := r.client(closeMsg('S', "s1"))
		want(t, "to server", s, "")
		want(t, "to client", c, "3")
		if r.sv.Prepared.Len() != 1 {
			t.Fatal("the server statement was dropped")
		}
	}},
	{"closing the unnamed statement forgets its owner", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		r.client(closeMsg('S', ""))
		if r.sv.UnnamedOwner != 0 || r.m.st.unnamed != nil {
			t.Fatal("unnamed statement still owned")
		}
	}},
	{"the unnamed statement is re-parsed where another client replaced it", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		r.sv.UnnamedOwner = 999 // another client's Parse
		s, _ := r.client(bind("", ""))
		want(t, "to server", s, "PB")
	}},
	{"a simple query drops the unnamed statement, the client's too", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		r.client(q("SELECT 2"))
		s, _ := r.client(bind("", ""))
		want(t, "to server (a refusal)", s, "P")
		if len(r.refused) != 1 || !strings.Contains(r.refused[0], "unnamed prepared statement does not exist") {
			t.Fatalf("refused %v", r.refused)
		}
	}},
	{"a health check drops the unnamed statement", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SELECT 1"))
		r.sv.OwnQueryRan()
		s, _ := r.client(bind("", ""))
		want(t, "to server", s, "PB")
	}},
	{"a Bind to a missing unnamed statement is refused", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(bind("", ""))
		if len(r.refused) != 1 || !strings.Contains(r.refused[0], "unnamed prepared statement") {
			t.Fatalf("refused %v", r.refused)
		}
	}},
	{"the LRU's eviction closes the evicted statement", nil, func(t *testing.T, r *rig) {
		r.settle()
		for i, sql := range []string{"SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4"} {
			r.client(parse("s"+string(rune('a'+i)), sql))
		}
		s, _ := r.client(parse("se", "SELECT 5"))
		want(t, "to server", s, "CCP")
	}},
	{"tenants never share a server statement", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("s1", "SELECT 1"))
		mine := serverNames(r.sentLast())[1]
		other := newRigFor(t, "globex", nil)
		if serverName(other.m.salt, parse("s1", "SELECT 1")[8:]) == mine {
			t.Fatal("another tenant's statement has the same server name")
		}
	}},
	{"clients of one tenant and settings share a server statement", nil, func(t *testing.T, r *rig) {
		twin := newRig(t, nil)
		if r.m.salt != twin.m.salt {
			t.Fatal("salts differ")
		}
		r.m.settings = map[string]string{"datestyle": "SQL, DMY"}
		r.m.salt = stmtSalt(r.m.cfg.Key, r.m.settings)
		if r.m.salt == twin.m.salt {
			t.Fatal("a client with another DateStyle shares statements")
		}
	}},
	{"a refusal Parse registers nothing", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("s1", RefusalPrefix+"x"))
		if len(r.m.st.byName) != 0 || !bytes.Contains(r.sentLast(), []byte{'P', 0, 0, 0}) {
			t.Fatalf("statements %v", r.m.st.byName)
		}
	}},
	{"a SET through a named portal is refused", nil, func(t *testing.T, r *rig) {
		r.settle()
		r.client(parse("", "SET search_path = s1"), setFx)
		r.client(bind("p", ""))
		if len(r.refused) != 1 || !strings.Contains(r.refused[0], "unnamed portal") {
			t.Fatalf("refused %v", r.refused)
		}
	}},
}
