package txstate

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// A rig drives one Machine as the relay would, with a server model to
// attach, and renders what each call produced as strings of message
// types, so that a case reads as the protocol exchange it is.
type rig struct {
	t       *testing.T
	m       *Machine
	sv      *Server
	refused []string // messages of the errors Refuse was asked to raise
	ids     uint64
	// lastSent is the last ToServer drained.
	lastSent []byte
}

func newRig(t *testing.T, settings map[string]string) *rig {
	return newRigFor(t, "acme", settings)
}

func newRigFor(t *testing.T, tenant string, settings map[string]string) *rig {
	t.Helper()
	r := &rig{t: t, sv: NewServer(42, 4, nil)}
	r.m = New(Config{
		Context:  setconfig.Context{Variables: []string{"app.current_tenant_id"}, Values: []string{tenant}, Role: "app_user"},
		Key:      "app_user\x00" + tenant,
		Settings: settings,
		Refuse: func(typ wire.ClientType, frame []byte, err *wire.Error) []byte {
			r.refused = append(r.refused, err.Message)
			return wire.Build(byte(wire.Parse), []byte{0}, []byte(RefusalPrefix+"tok"), []byte{0}, []byte{0, 0})
		},
		NewUnnamedID: func() uint64 { r.ids++; return r.ids },
	})
	return r
}

// client hands the Machine a client message (attaching r.sv when it asks
// for a server) and returns the types sent to the server and to the
// client.
func (r *rig) client(frame []byte, fx ...*sqlguard.Effects) (toServer, toClient string) {
	r.t.Helper()
	if err := r.clientErr(frame, fx...); err != nil {
		r.t.Fatalf("client %q: %v", frame[0], err)
	}
	return r.drain()
}

func (r *rig) clientErr(frame []byte, fx ...*sqlguard.Effects) error {
	var f *sqlguard.Effects
	if len(fx) > 0 {
		f = fx[0]
	}
	typ := wire.ClientType(frame[0])
	step, err := r.m.ClientMessage(typ, frame, f)
	if err == nil && step == NeedServer {
		err = r.m.Attach(r.sv, typ, frame, f)
	}
	return err
}

func (r *rig) drain() (string, string) {
	s, c := types(r.m.ToServer), types(r.m.ToClient)
	r.lastSent = append([]byte(nil), r.m.ToServer...)
	r.m.ToServer, r.m.ToClient = r.m.ToServer[:0], r.m.ToClient[:0]
	return s, c
}

// server hands the Machine a server message and returns its step and
// what the client receives, the server's frame included where it goes.
func (r *rig) server(frame []byte) (ServerStep, string, error) {
	r.t.Helper()
	step, err := r.m.ServerMessage(wire.ServerType(frame[0]), frame)
	out := r.m.ToClient
	var got []byte
	if step.FrameAt >= 0 {
		got = append(append(append(got, out[:step.FrameAt]...), frame...), out[step.FrameAt:]...)
	} else {
		got = append(got, out...)
	}
	r.m.ToClient = r.m.ToClient[:0]
	return step, types(got), err
}

// answer feeds server messages that must all succeed and returns the
// types the client received over all of them, and the last step.
func (r *rig) answer(frames ...[]byte) (string, ServerStep) {
	r.t.Helper()
	var all strings.Builder
	var step ServerStep
	for _, f := range frames {
		var got string
		var err error
		step, got, err = r.server(f)
		if err != nil {
			r.t.Fatalf("server %q: %v", f[0], err)
		}
		all.WriteString(got)
	}
	return all.String(), step
}

// types lists the message types in a run of frames.
func types(b []byte) string {
	var s strings.Builder
	for len(b) >= 5 {
		s.WriteByte(b[0])
		n := int(binary.BigEndian.Uint32(b[1:5]))
		b = b[1+n:]
	}
	return s.String()
}

// frames splits a run of frames.
func frames(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b[1:5]))
		out = append(out, b[:1+n])
		b = b[1+n:]
	}
	return out
}

// Client messages.
func q(sql string) []byte { return wire.Build('Q', []byte(sql), []byte{0}) }
func parse(name, sql string) []byte {
	return wire.Build('P', []byte(name), []byte{0}, []byte(sql), []byte{0}, []byte{0, 0})
}
func bind(portal, stmt string) []byte {
	return wire.Build('B', []byte(portal), []byte{0}, []byte(stmt), []byte{0}, []byte{0, 0, 0, 0, 0, 0})
}
func execute(portal string) []byte {
	return wire.Build('E', []byte(portal), []byte{0}, []byte{0, 0, 0, 0})
}
func describe(kind byte, name string) []byte {
	return wire.Build('D', []byte{kind}, []byte(name), []byte{0})
}
func closeMsg(kind byte, name string) []byte {
	return wire.Build('C', []byte{kind}, []byte(name), []byte{0})
}
func syncMsg() []byte  { return wire.Build('S') }
func flushMsg() []byte { return wire.Build('H') }
func copyData() []byte { return wire.Build('d', []byte("1\n")) }
func copyDone() []byte { return wire.Build('c') }
func copyFail() []byte { return wire.Build('f', []byte("stop"), []byte{0}) }

// Server messages.
func rfq(status byte) []byte { return wire.Build('Z', []byte{status}) }
func cc(tag string) []byte   { return wire.Build('C', []byte(tag), []byte{0}) }
func parseOK() []byte        { return wire.Build('1') }
func bindOK() []byte         { return wire.Build('2') }
func closeOK() []byte        { return wire.Build('3') }
func noData() []byte         { return wire.Build('n') }
func rowDesc() []byte        { return wire.Build('T', []byte{0, 0}) }
func emptyQuery() []byte     { return wire.Build('I') }
func suspended() []byte      { return wire.Build('s') }
func copyInResponse() []byte { return mustEncode(&pgproto3.CopyInResponse{}) }
func paramStatus(n, v string) []byte {
	return mustEncode(&pgproto3.ParameterStatus{Name: n, Value: v})
}
func notice() []byte {
	return mustEncode(&pgproto3.NoticeResponse{Severity: "WARNING", Code: "01000", Message: "w"})
}
func errResp(code string) []byte {
	return mustEncode(&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: "failed: " + code})
}

// switchAnswers are the server's answers to a switch of n statements
// (each Bind/Execute), the first parses of which are prepared first.
func switchAnswers(parses, n int) [][]byte {
	var out [][]byte
	for i := range n {
		if i < parses {
			out = append(out, parseOK())
		}
		out = append(out, bindOK(), cc("SELECT 1"))
	}
	return out
}

// settle attaches the rig's server with a first query and answers it, so
// that the server carries the client's context (the switch is prepared:
// the next switch of the same shape sends no Parse).
func (r *rig) settle() {
	r.t.Helper()
	switched := r.sv.Context != r.m.cfg.Key
	s, _ := r.client(q("SELECT 1"))
	answers := [][]byte{rowDesc(), cc("SELECT 1"), rfq('I')}
	switch {
	case switched && s == "PBEQ":
		answers = append(switchAnswers(1, 1), answers...)
	case switched || s != "Q":
		r.t.Fatalf("settling query sent %q", s)
	}
	_, step := r.answer(answers...)
	if !step.Release || !step.Reusable {
		r.t.Fatalf("settling query: step %+v, want a reusable release", step)
	}
}

var setFx = &sqlguard.Effects{Settings: []sqlguard.Setting{{Name: "search_path", Value: "s1"}}}
