package txstate

import (
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Config is what a Machine knows of its client from the login.
type Config struct {
	// Context is the client's tenant context: variables (resolved ones
	// and managed settings included), values, role, MAC names and how
	// many variables are signed. Its MACs are computed per server (MACs).
	Context setconfig.Context
	// Key identifies Context: two clients with equal keys share a
	// server's applied context.
	Key string
	// MACs returns the signed-context MACs for a server backend pid; nil
	// without context signing.
	MACs func(pid uint32) []string
	// Refuse replaces a client message multigres refuses by one the server
	// fails with err's message (see the frontend's refusal tokens), so the
	// transaction and skip-to-Sync semantics stay PostgreSQL's.
	Refuse func(typ wire.ClientType, frame []byte, err *wire.Error) []byte
	// Settings are the client's tracked settings from its startup
	// parameters (interned).
	Settings map[string]string
	// NewUnnamedID returns a process-unique identity for an unnamed Parse
	// (Server.UnnamedOwner); identities must never repeat across clients.
	NewUnnamedID func() uint64
	// Citus, when set, runs every transaction of the client in a block
	// multigres opens with the context's SET LOCALs (citus.go).
	Citus *Citus
	// Pinned: the client keeps its server connection for its whole life
	// (session mode, run through the Machine for Citus): its statement and
	// portal names go to the server as they are, and what it sets stays
	// its own. The driver re-attaches the same connection after every
	// release, and the context is never switched after the login.
	Pinned bool
}

// Machine is one transaction-mode client's state. See the package doc.
type Machine struct {
	cfg Config

	// ToServer and ToClient collect the bytes each call produces; the
	// driver writes and empties them (it may also lend ToServer a buffer
	// to append to, and take it back).
	ToServer []byte
	ToClient []byte

	sv       *Server // the attached server's model, nil when detached
	attached bool    // false once detached (Abandon, Lost) while sv still answers
	q        queue
	status   byte // transaction status as the client last saw it
	skip     bool // discarding client messages until Sync
	// serverSkipping: the server ignores messages until the client's next
	// Sync (an extended-protocol error with no Sync owed after it).
	serverSkipping bool
	gone           bool // the client is gone; answers are dropped
	// unconfirmed: a short context switch rides on a query whose
	// ReadyForQuery has not come yet (see queueSwitch).
	unconfirmed bool
	copy        copyState
	// readySent is the status of a ReadyForQuery multigres sent the client
	// itself in the last call (0: none); flush: the client must be
	// flushed now.
	readySent byte
	flush     bool
	// unflushed: answers went to ToClient that the client may wait for
	// (after a Flush, or at the end of its pipeline): the driver flushes
	// them once the client has nothing more buffered.
	unflushed bool

	settings map[string]string // tracked settings, by name
	salt     string            // statement salt: context key and settings
	st       statements
	// batchFx are the effects of the statements executed since the last
	// Sync.
	batchFx []*sqlguard.Effects
	// batchTx: a statement that may control the transaction completed in
	// the current batch (see noteEffects).
	batchTx bool
	// cz is the Citus wrapper (nil without Config.Citus).
	cz *citus
}

// copyState follows a COPY FROM STDIN (see enter and failed).
type copyState struct {
	// in: the server is reading COPY data and ignores Sync.
	in bool
	// open: that COPY's outcome (CommandComplete or ErrorResponse) has not
	// come yet; syncs counts the Syncs the client sent in its window.
	open     bool
	syncs    int
	failSent bool // the client ended the copy with CopyFail
}

// stmt is a client's prepared statement: its server name and the Parse
// to send where it is not prepared yet.
type stmt struct {
	srv   string
	parse []byte            // Parse frame carrying srv as its name
	id    uint64            // unnamed statements: identity for UnnamedOwner
	fx    *sqlguard.Effects // unnamed statements: the session SETs it makes
}

// New makes the Machine of a client that has just logged in (idle, no
// server attached).
func New(cfg Config) *Machine {
	m := &Machine{cfg: cfg, status: wire.TxIdle, settings: cfg.Settings}
	m.st.m = m
	if cfg.Citus != nil {
		m.cz = newCitus(m, cfg.Citus)
	}
	m.salt = stmtSalt(cfg.Key, m.settings)
	return m
}

// Status is the transaction status the client last saw.
func (m *Machine) Status() byte { return m.status }

// Attached reports whether the client holds a server connection.
func (m *Machine) Attached() bool { return m.attached }

// Owes reports whether answers are still owed to the client.
func (m *Machine) Owes() bool { return m.q.len() > 0 }

// CopyIn reports whether the server is reading the client's COPY data.
func (m *Machine) CopyIn() bool { return m.copy.in }

// Settings are the client's tracked settings (do not modify).
func (m *Machine) Settings() map[string]string { return m.settings }

// Config is what the Machine was made with.
func (m *Machine) Config() *Config { return &m.cfg }

// RowsForward reports whether DataRows and CopyData arriving now go to the
// client: the driver reads it after each call and forwards rows without
// calling the Machine.
func (m *Machine) RowsForward() bool { return !m.gone && m.q.forwardsRows() }

// ServerAnswersAll reports whether everything forwarded ends at a Sync or
// a simple Query, so the server answers it all without more client input
// (the driver may then read the answers on the client's goroutine).
func (m *Machine) ServerAnswersAll() bool {
	return !m.copy.in && !m.skip && m.q.len() > 0 && m.q.last().endsRequest()
}

// MoreAnswers reports whether answers are still owed outside COPY IN.
func (m *Machine) MoreAnswers() bool { return !m.copy.in && m.q.len() > 0 }

// TakeReady reports the status of a ReadyForQuery multigres sent the
// client itself during the last call, whether the client must be flushed
// now, and whether answers wait to be flushed once the client has nothing
// more buffered; all are then cleared.
func (m *Machine) TakeReady() (status byte, flush, unflushed bool) {
	status, flush, unflushed = m.readySent, m.flush, m.unflushed
	m.readySent, m.flush, m.unflushed = 0, false, false
	return status, flush, unflushed
}

// answerLocally sends the client an answer multigres gives itself, at
// once, and asks for a flush.
func (m *Machine) answerLocally(frame []byte) {
	m.ToClient = append(m.ToClient, frame...)
	if wire.ServerType(frame[0]) == wire.ReadyForQuery {
		m.readySent = frame[5]
	}
	m.flush = true
}

func (m *Machine) readyFrame() []byte {
	b, _ := (&pgproto3.ReadyForQuery{TxStatus: m.status}).Encode(nil)
	return b
}

// send queues frame for the attached server.
func (m *Machine) send(frame []byte) { m.ToServer = append(m.ToServer, frame...) }

// owe adds an entry; a synthesized answer with nothing owed before it goes
// to the client at once.
func (m *Machine) owe(e entry) {
	if e.action == synth && m.q.len() == 0 {
		m.ToClient = append(m.ToClient, e.synthBytes...)
		m.unflushed = true
		return
	}
	m.q.push(e)
}

// emitSynth writes the answers multigres gives itself that are now due,
// and drops CopyDone markers at the head.
func (m *Machine) emitSynth() {
	for m.q.len() > 0 && (m.q.head().action == synth || m.q.head().kind == wire.CopyInDone) {
		e := m.q.pop()
		if e.action == synth && !m.gone {
			m.ToClient = append(m.ToClient, e.synthBytes...)
		}
	}
}

// popHead removes the head entry and emits synthesized answers now due.
func (m *Machine) popHead() {
	m.q.pop()
	m.emitSynth()
}

var (
	parseComplete  = mustEncode(&pgproto3.ParseComplete{})
	closeComplete  = mustEncode(&pgproto3.CloseComplete{})
	executeUnnamed = mustEncode(&pgproto3.Execute{})
	rollbackQuery  = wire.Build(byte(wire.Query), []byte("ROLLBACK"), []byte{0})
)

// mustEncode encodes a fixed protocol message once, at start-up.
func mustEncode(m interface{ Encode([]byte) ([]byte, error) }) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}

// Gone reports whether the client has left (Abandon).
func (m *Machine) Gone() bool { return m.gone }
