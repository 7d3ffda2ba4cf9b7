package txstate

import (
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// action is what becomes of the server's answer to an entry.
type action uint8

const (
	forward action = iota // the client's own message: its answer goes to the client
	swallow               // multigres injected the message: its answer is dropped
	synth                 // the server is not asked: multigres answers with synthBytes
)

// entry is one answer owed, in the order owed. kind is the client message
// type the answer is for; an entry of kind CopyInDone marks where a pipelined COPY's data ends
// (see copyState.enter) and owes nothing.
type entry struct {
	kind       wire.ClientType
	action     action
	synthBytes []byte
	// Parse: the client statement (and server name) a failed Parse
	// removes; named: a client's named statement.
	stmt, srv string
	named     bool
	// Query (and Execute of the unnamed portal): the session effects
	// committed when it succeeds.
	fx     *sqlguard.Effects
	failed bool // a simple Query that got an ErrorResponse
	// injected: part of the context switch; any error is fatal.
	injected bool
	// unnamed: a Parse of the unnamed statement; skipped, the server keeps
	// whatever unnamed statement it had.
	unnamed bool
	// txc: an Execute that may control the transaction (its statement's
	// effects are unknown or include BEGIN/COMMIT/ROLLBACK/savepoints), so
	// SETs in the same batch may be undone or committed by it.
	txc bool
	// cz: what the Citus wrapper made of the entry (citus.go).
	cz czMark
	// flushed: a Flush follows the entry's message, so the server sends
	// its answers without more client input.
	flushed bool
	// internal: a Parse of multigres' own statement of this name
	// (Server.Internal), which a skip leaves unprepared.
	internal string
}

// endsRequest: after this entry's message the server answers everything
// up to a ReadyForQuery (or, flushed, up to this entry's answer) without
// waiting for more client input.
func (e *entry) endsRequest() bool { return e.kind == wire.Sync || e.kind == wire.Query || e.flushed }

// queue is the owed-response FIFO. Its zero value is empty and ready.
type queue struct {
	items []entry
}

func (q *queue) len() int { return len(q.items) }

func (q *queue) push(e ...entry) {
	if q.items == nil {
		q.items = make([]entry, 0, 8) // a switch and a short batch fit
	}
	q.items = append(q.items, e...)
}

// head is the oldest entry; the queue must not be empty.
func (q *queue) head() *entry { return &q.items[0] }

func (q *queue) last() *entry { return &q.items[len(q.items)-1] }

func (q *queue) pop() entry {
	e := q.items[0]
	q.items = q.items[1:]
	return e
}

// reset empties the queue and drops its storage (an idle client keeps
// none).
func (q *queue) reset() { q.items = nil }

// forwardsRows reports whether DataRows and CopyData answer a forwarded
// entry (read by the driver's lock-free row path).
func (q *queue) forwardsRows() bool { return len(q.items) > 0 && q.items[0].action == forward }

// statusPending reports whether a client Query or Sync is still owed: the
// transaction status the server will be in after it is not known yet.
func (q *queue) statusPending() bool {
	for i := range q.items {
		if k := q.items[i].kind; (k == wire.Query || k == wire.Sync) && !q.items[i].injected {
			return true
		}
	}
	return false
}
