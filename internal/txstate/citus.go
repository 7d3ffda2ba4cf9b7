package txstate

import (
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// The Citus wrapper. On a Citus coordinator a session-level setting never
// reaches the workers; a SET LOCAL inside a transaction block does (with
// citus.propagate_set_commands = 'local'), as the statement's own text.
// So every transaction a tenant runs executes inside a block that
// multigres opens, BEGIN then one SET LOCAL per context variable, and
// the client sees exactly what PostgreSQL would have shown for its
// request:
//
//   - A simple Query in an implicit transaction:
//     BEGIN; SET LOCAL…; the query; COMMIT (a simple Query of its own).
//     The query's ReadyForQuery ('T', or 'E' after an error) is
//     swallowed; the COMMIT's CommandComplete ("COMMIT", or "ROLLBACK"
//     when the query failed) is swallowed and its ReadyForQuery ('I')
//     goes to the client, with any error of the commit itself.
//   - The extended protocol: BEGIN and the SET LOCALs go in front of the
//     first Execute of a batch that is not in a block, and a COMMIT in
//     front of the client's Sync. After an error the server skips that
//     COMMIT and its Sync leaves the block aborted ('E'): multigres then
//     swallows that ReadyForQuery, sends ROLLBACK, and gives the client
//     the ROLLBACK's 'I', as PostgreSQL ends a failed implicit
//     transaction.
//   - The client's own BEGIN (either protocol): it goes first and the SET
//     LOCALs follow it (their answers swallowed, a Flush after a simple
//     Query so that they come back at once); the client's block is then
//     the client's, with nothing more added until it ends it.
//   - Transaction control inside a block multigres opened (BEGIN or
//     COMMIT pipelined after other statements of the same batch): the
//     client takes the block over (BEGIN) or ends it (COMMIT), as
//     PostgreSQL does with an implicit transaction; the warnings differ
//     from PostgreSQL's and are made to match (a 25001 "already in
//     progress" swallowed, a 25P01 "no transaction in progress"
//     added). A savepoint command there fails with PostgreSQL's own
//     error, since the statement would not be in a block in PostgreSQL.
//
// Which block the server is in when a ReadyForQuery comes is known from
// the answers (owner): the CommandComplete of BEGIN makes the block
// multigres' or the client's, that of COMMIT or ROLLBACK ends it, and an
// error leaves it (aborted) to its owner. Everything multigres sends is
// in the same write as the client's message it goes with; any error in
// BEGIN or a SET LOCAL ends the client (ErrSwitchFailed), so no client
// statement runs without the context.

// Citus is what a Machine needs to run a client's transactions on a Citus
// coordinator.
type Citus struct {
	// SetLocal are the statements that set the context for one
	// transaction (setconfig.SetLocal), in order.
	SetLocal []string
}

// block is who owns the server's transaction block.
type block uint8

const (
	blockNone   block = iota // no block: idle, or an implicit transaction
	blockOurs                // multigres opened it for an implicit transaction
	blockClient              // the client's BEGIN opened it (or took over multigres')
)

// czMark tells the wrapper what an owed entry is (entry.cz).
type czMark uint8

const (
	czNone czMark = iota
	// czBegin: multigres' BEGIN; its CommandComplete makes the block
	// multigres'.
	czBegin
	// czClientBegin: the client's BEGIN; its CommandComplete makes the
	// block the client's. czTakeOver: the same inside multigres' block,
	// whose 25001 warning PostgreSQL would not have sent.
	czClientBegin
	czTakeOver
	// czClientEnd: the client's COMMIT or ROLLBACK of its block.
	// czEndOurs: the same of multigres' block, where PostgreSQL warns
	// 25P01 (an implicit transaction is not a block).
	czClientEnd
	czEndOurs
	// czWrapped: the client's simple Query in multigres' block; its
	// ReadyForQuery is swallowed.
	czWrapped
	// czCommit: the COMMIT (a simple Query, or Bind/Execute before a
	// Sync) that ends multigres' block: completions swallowed, errors
	// and notices forwarded, and (a Query) its ReadyForQuery is the
	// client's.
	czCommit
	// czWrapSync: the client's Sync of a batch in which multigres opened
	// a block.
	czWrapSync
	// czRollback: the ROLLBACK of multigres' aborted block after such a
	// Sync; its ReadyForQuery is the client's.
	czRollback
)

// citus is a Machine's Citus wrapper state.
type citus struct {
	m      *Machine
	parses [][]byte // unnamed Parse of each SET LOCAL
	// sent is the block the server will be in after everything sent so
	// far (assuming no error); owner is the block the server is in after
	// everything answered so far.
	sent, owner block
	// opened: multigres opened a block since the client's last Sync.
	opened bool
	// stmts and portals hold the client statements (by client name) and
	// portals that are transaction control, with their kind; plain ones
	// are absent.
	stmts, portals map[string]sqlguard.Block
}

func newCitus(m *Machine, cfg *Citus) *citus {
	cz := &citus{m: m}
	for _, sql := range cfg.SetLocal {
		cz.parses = append(cz.parses, wire.Build(byte(wire.Parse), []byte{0}, []byte(sql), []byte{0}, []byte{0, 0}))
	}
	return cz
}

// attached: a new attachment starts outside any block.
func (cz *citus) attached() {
	cz.sent, cz.owner, cz.opened = blockNone, blockNone, false
}

// Portal names of multigres' own statements: named, so that an Execute
// the client bound just before keeps its unnamed portal.
const (
	czBeginPortal = "mg_cz_b"
	czSetPortal   = "mg_cz_s"
)

// openBlock queues BEGIN and the SET LOCALs (multigres' block).
func (cz *citus) openBlock() {
	cz.injectPortal("mg_cbegin", "BEGIN", czBeginPortal, czBegin)
	cz.setLocals()
	cz.sent, cz.opened = blockOurs, true
}

// setLocals queues the SET LOCALs, each an unnamed Parse bound to a named
// portal (the client's unnamed statement is re-parsed where it needs it).
func (cz *citus) setLocals() {
	m := cz.m
	m.sv.UnnamedOwner = 0
	for i, p := range cz.parses {
		portal := czSetPortal + strconv.Itoa(i)
		m.send(p)
		m.ToServer, _ = (&pgproto3.Bind{DestinationPortal: portal}).Encode(m.ToServer)
		m.ToServer, _ = (&pgproto3.Execute{Portal: portal}).Encode(m.ToServer)
		m.q.push(entry{kind: wire.Parse, action: swallow, injected: true, unnamed: true},
			entry{kind: wire.Bind, action: swallow, injected: true}, entry{kind: wire.Execute, action: swallow, injected: true})
	}
}

// injectPortal queues Bind/Execute of one of multigres' own statements to
// a named portal (preparing it first where needed); answers swallowed,
// errors fatal.
func (cz *citus) injectPortal(name, sql, portal string, mark czMark) {
	m := cz.m
	m.st.prepareInternal(name, sql)
	m.ToServer, _ = (&pgproto3.Bind{DestinationPortal: portal, PreparedStatement: name}).Encode(m.ToServer)
	m.ToServer, _ = (&pgproto3.Execute{Portal: portal}).Encode(m.ToServer)
	m.q.push(entry{kind: wire.Bind, action: swallow, injected: true}, entry{kind: wire.Execute, action: swallow, injected: true, cz: mark})
}

var (
	commitQuery  = wire.Build(byte(wire.Query), []byte("COMMIT"), []byte{0})
	flushMessage = wire.Build(byte(wire.Flush))
	// noTransactionWarning is PostgreSQL's warning for COMMIT or ROLLBACK
	// outside a block (here: ending multigres' block, which in PostgreSQL
	// would have been an implicit transaction).
	noTransactionWarning = mustEncode(&pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING",
		Code: wire.CodeNoActiveSQLTransaction, Message: "there is no transaction in progress"})
)

// query wraps a client's simple Query (fx: its guard effects).
func (cz *citus) query(frame []byte, fx *sqlguard.Effects) {
	m := cz.m
	kind := blockOf(fx)
	switch {
	case kind == sqlguard.BlockBegin && cz.sent == blockNone:
		m.q.push(entry{kind: wire.Query, fx: fx, cz: czClientBegin})
		m.send(frame)
		cz.setLocals()
		m.q.last().flushed = true
		m.send(flushMessage)
		cz.sent = blockClient
		return
	case kind == sqlguard.BlockBegin && cz.sent == blockOurs:
		m.q.push(entry{kind: wire.Query, fx: fx, cz: czTakeOver})
		m.send(frame)
		cz.sent = blockClient
		return
	case kind == sqlguard.BlockEnd && cz.sent != blockNone:
		mark := czClientEnd
		if cz.sent == blockOurs {
			mark = czEndOurs
		}
		m.q.push(entry{kind: wire.Query, fx: fx, cz: mark})
		m.send(frame)
		cz.sent = blockNone
		return
	case kind >= sqlguard.BlockSavepoint && cz.sent == blockOurs:
		// Refused in its place, and multigres' block ended after it as
		// after any wrapped query.
		m.q.push(entry{kind: wire.Query, cz: czWrapped})
		m.send(m.cfg.Refuse(wire.Query, frame, savepointOutsideBlock(kind)))
		cz.commit(nil)
		return
	case kind != sqlguard.BlockPlain || cz.sent == blockClient:
		m.q.push(entry{kind: wire.Query, fx: fx})
		m.send(frame)
		return
	}
	if cz.sent == blockNone {
		cz.openBlock()
	}
	// The query's effects count when the COMMIT's ReadyForQuery says the
	// block committed.
	m.q.push(entry{kind: wire.Query, cz: czWrapped})
	m.send(frame)
	cz.commit(fx)
}

// commit queues the simple-Query COMMIT that ends multigres' block after
// a wrapped query.
func (cz *citus) commit(fx *sqlguard.Effects) {
	m := cz.m
	m.q.push(entry{kind: wire.Query, fx: fx, cz: czCommit})
	m.send(commitQuery)
	cz.sent = blockNone
}

// execute decides for the client's Execute of portal what goes in front
// of it (multigres' block), how its entry is marked, and whether the SET
// LOCALs follow it (after the client's own BEGIN); a savepoint command
// in multigres' block is refused in its place.
func (cz *citus) execute(portal string) (mark czMark, setAfter, refused bool) {
	kind := cz.portals[portal]
	switch {
	case kind == sqlguard.BlockBegin && cz.sent == blockNone:
		cz.sent = blockClient
		return czClientBegin, true, false
	case kind == sqlguard.BlockBegin && cz.sent == blockOurs:
		cz.sent = blockClient
		return czTakeOver, false, false
	case kind == sqlguard.BlockEnd && cz.sent == blockOurs:
		cz.sent = blockNone
		return czEndOurs, false, false
	case kind == sqlguard.BlockEnd && cz.sent == blockClient:
		cz.sent = blockNone
		return czClientEnd, false, false
	case kind >= sqlguard.BlockSavepoint && cz.sent == blockOurs:
		cz.m.st.refuse(wire.Execute, savepointOutsideBlock(kind))
		return czNone, false, true
	case kind == sqlguard.BlockPlain && cz.sent == blockNone:
		cz.openBlock()
	}
	return czNone, false, false
}

// parsed records the kind of a client's statement (Parse).
func (cz *citus) parsed(name string, fx *sqlguard.Effects) {
	if kind := blockOf(fx); kind != sqlguard.BlockPlain {
		if cz.stmts == nil {
			cz.stmts = map[string]sqlguard.Block{}
		}
		cz.stmts[name] = kind
		return
	}
	delete(cz.stmts, name)
}

// bound records the kind of a portal (Bind of stmt to portal).
func (cz *citus) bound(portal, stmt string) {
	if kind, ok := cz.stmts[stmt]; ok {
		if cz.portals == nil {
			cz.portals = map[string]sqlguard.Block{}
		}
		cz.portals[portal] = kind
		return
	}
	delete(cz.portals, portal)
}

// sync wraps a client's Sync: the COMMIT of multigres' block goes in
// front of it, and a Sync after a block multigres opened is marked.
func (cz *citus) sync() czMark {
	m := cz.m
	if cz.sent == blockOurs {
		m.st.prepareInternal("mg_commit", "COMMIT")
		m.ToServer, _ = (&pgproto3.Bind{PreparedStatement: "mg_commit"}).Encode(m.ToServer)
		m.send(executeUnnamed)
		m.q.push(entry{kind: wire.Bind, cz: czCommit}, entry{kind: wire.Execute, cz: czCommit})
		cz.sent = blockNone
	}
	if !cz.opened {
		return czNone
	}
	cz.opened = false
	return czWrapSync
}

func blockOf(fx *sqlguard.Effects) sqlguard.Block {
	if fx == nil {
		return sqlguard.BlockPlain
	}
	return fx.Block
}

// savepointOutsideBlock is PostgreSQL's error for a savepoint command
// outside a transaction block.
func savepointOutsideBlock(kind sqlguard.Block) *wire.Error {
	what := map[sqlguard.Block]string{sqlguard.BlockSavepoint: "SAVEPOINT", sqlguard.BlockRelease: "RELEASE SAVEPOINT",
		sqlguard.BlockRollbackTo: "ROLLBACK TO SAVEPOINT"}[kind]
	return &wire.Error{Severity: wire.SeverityError, Code: wire.CodeNoActiveSQLTransaction, Message: what + " can only be used in transaction blocks"}
}

// answer handles a server message other than ReadyForQuery for an entry
// the wrapper marked, and returns whether the frame goes to the client.
func (cz *citus) answer(typ wire.ServerType, frame []byte, head *entry, fwd bool) bool {
	m := cz.m
	switch typ {
	case wire.NoticeResponse:
		if head.cz == czTakeOver && noticeCode(frame) == wire.CodeActiveSQLTransaction {
			return false // PostgreSQL turns the implicit transaction into the block silently
		}
	case wire.ParseComplete, wire.BindComplete:
		if head.cz == czCommit {
			return false
		}
	case wire.CommandComplete:
		switch head.cz {
		case czBegin:
			cz.owner = blockOurs
		case czClientBegin, czTakeOver:
			cz.owner = blockClient
		case czEndOurs:
			cz.owner = blockNone
			if fwd {
				m.ToClient = append(m.ToClient, noTransactionWarning...)
			}
		case czClientEnd:
			cz.owner = blockNone
		case czCommit, czRollback:
			cz.owner = blockNone
			return false
		}
	}
	return fwd
}

// ready handles a ReadyForQuery for a marked entry (head); done reports
// that it did everything (the ReadyForQuery is swallowed).
func (cz *citus) ready(frame []byte) (step ServerStep, done bool) {
	m := cz.m
	head := m.q.head()
	status := frame[5]
	if status == wire.TxIdle {
		cz.owner = blockNone
	}
	switch {
	case head.cz == czWrapped:
		// The wrapped query's end: its block is still open (or aborted)
		// until the COMMIT that follows.
		e := m.q.pop()
		m.sv.TxStatus = status
		m.noteEffects(e, status)
		if e.failed && m.q.len() > 0 && m.q.head().cz == czCommit {
			m.q.head().failed = true
		}
		m.emitSynth()
		return ServerStep{FrameAt: -1}, true
	case head.cz == czWrapSync && status != wire.TxIdle && cz.owner == blockOurs:
		// An error aborted multigres' block and the server skipped its
		// COMMIT: end the block as PostgreSQL ends a failed implicit
		// transaction, and give the client that ReadyForQuery.
		e := m.q.pop()
		m.sv.TxStatus = status
		m.noteEffects(e, status)
		m.sv.UnnamedOwner = 0
		m.q.push(entry{kind: wire.Query, cz: czRollback})
		m.send(rollbackQuery)
		return ServerStep{FrameAt: -1}, true
	}
	return ServerStep{}, false
}

func noticeCode(frame []byte) string {
	var n pgproto3.NoticeResponse
	if n.Decode(frame[5:]) != nil {
		return ""
	}
	return n.Code
}
