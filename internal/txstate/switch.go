package txstate

import (
	"bytes"
	"maps"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// queueSwitch writes the context switch in front of the client's message,
// without a Sync, and owes the client nothing for it:
//
//	Bind/Execute mg_switch_N  SELECT set_config($1,$2,false), … (role too)
//	Bind/Execute mg_commit    COMMIT          (not in the short form)
//
// Both statements are prepared once per server connection (a Parse goes
// first the first time). Because no Sync follows, an error anywhere makes
// the server skip every client message up to the client's Sync (a simple
// Query too), so no client statement can run under the previous context;
// the error is fatal for the client (ErrSwitchFailed). The COMMIT ends the
// implicit transaction the SELECT opened, so the switch is durable before
// the client's statements run (their rollback cannot undo it) and the
// client starts a fresh transaction (BEGIN ISOLATION LEVEL still works).
// The COMMIT outside a block draws a WARNING, swallowed with the rest.
//
// The short form, for a simple Query with no transaction control in its
// text, leaves the SELECT in the query's implicit transaction: if the
// query fails, the switch rolls back with it and none of the query's
// later statements run; the connection's context is then unknown (see
// noteEffects), and any further command from the client before that
// query's ReadyForQuery gets the full form first (unconfirmed).
func (m *Machine) queueSwitch(short bool) {
	sv := m.sv
	ctx := m.contextFor(sv)
	params := setconfig.Params(ctx, true)
	n := strconv.Itoa(len(params) / 2)
	if ctx.Primed > 0 {
		n += "p" + strconv.Itoa(ctx.Primed)
	}
	name, suffix := "mg_switch_"+n, ""
	if !short {
		name, suffix = "mg_switchq_"+n, quietCommit
	}
	var sql string
	if !sv.Internal[name] { // the text is needed only where it is prepared: once per connection
		sql = setconfig.SQL(len(params)/2, ctx.Primed) + suffix
	}
	m.unconfirmed = short
	if !short && shapesTransactions(sv.Settings) {
		m.injectPrepared("mg_begin", switchBegin, nil)
	}
	m.injectPrepared(name, sql, params)
	if !short {
		m.injectPrepared("mg_commit", "COMMIT", nil)
	}
	sv.Context, sv.Settings, sv.UnnamedOwner = m.cfg.Key, m.settings, 0
}

// contextFor is the client's context as applied to sv: its variables and
// tracked settings (sorted), the MACs for sv's backend, and the resets of
// what sv has that the client does not.
func (m *Machine) contextFor(sv *Server) setconfig.Context {
	ctx := m.cfg.Context
	if m.cfg.MACs != nil {
		ctx.MACs = m.cfg.MACs(sv.PID)
	}
	names := slices.Sorted(maps.Keys(m.settings))
	ctx.Variables = append(slices.Clone(ctx.Variables), names...)
	ctx.Values = slices.Clone(ctx.Values)
	for _, n := range names {
		ctx.Values = append(ctx.Values, m.settings[n])
	}
	ctx.Resets = resetsFor(sv.Settings, m.settings)
	ctx.PreResets = preResets(m.settings)
	return ctx
}

// LoginContext is what the login applies on sv in its own round trip
// (with SET ROLE): the client's context and settings.
func (m *Machine) LoginContext(sv *Server) setconfig.Context { return m.contextFor(sv) }

// LoggedIn records that LoginContext was applied on sv.
func (m *Machine) LoggedIn(sv *Server) {
	sv.Context, sv.Settings, sv.UnnamedOwner = m.cfg.Key, m.settings, 0
}

// switchBegin opens the full switch's transaction with the defaults'
// values spelled out, when the connection's previous client may have set
// them: a read-only default would fail a signed switch, and a serializable
// deferrable one could make it wait for a safe snapshot.
const switchBegin = "BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE, NOT DEFERRABLE"

// quietCommit keeps the full switch's COMMIT from sending its WARNING
// ("there is no transaction in progress"): PostgreSQL flushes every notice
// at once, which costs the server a write and the proxy a read on every
// switch (measured: about a third of the TPS of a one-row lookup). The
// setting is local to the switch's own transaction, which the COMMIT ends,
// so the client never runs under it; the short form, which shares the
// client's transaction, must not use it.
const quietCommit = ", pg_catalog.set_config('client_min_messages', 'error', true)"

// injectPrepared queues Bind/Execute of one of multigres' own statements,
// preparing it first on a connection that lacks it; every answer is
// swallowed and any error is fatal.
func (m *Machine) injectPrepared(name, sql string, params [][]byte) {
	m.st.prepareInternal(name, sql)
	m.ToServer, _ = (&pgproto3.Bind{PreparedStatement: name, Parameters: params}).Encode(m.ToServer)
	m.send(executeUnnamed)
	m.q.push(entry{kind: wire.Bind, action: swallow, injected: true}, entry{kind: wire.Execute, action: swallow, injected: true})
}

// txControlWords are the keywords without which a simple query cannot
// end, roll back or reshape its transaction (a procedure or DO block can
// COMMIT or ROLLBACK), nor run a command that refuses to run in a pipeline
// (which the short switch's uncommitted Execute makes it). Keywords cannot
// be quoted or escaped, so looking for them as words in the text (inside
// strings and comments too) over-approximates, which only costs the full
// switch.
var txControlWords = []string{"begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release",
	"prepare", "call", "do", "transaction", "lock", "vacuum", "analyze", "analyse", "concurrently", "database",
	"system", "tablespace", "subscription", "reindex", "cluster", "replication", "discard"}

// mayControlTransaction reports whether a Query's text may contain one of
// txControlWords.
func mayControlTransaction(frame []byte) bool {
	sql := bytes.ToLower(frame[5:])
	for _, w := range txControlWords {
		for i := 0; ; {
			j := bytes.Index(sql[i:], []byte(w))
			if j < 0 {
				break
			}
			start, end := i+j, i+j+len(w)
			if (start == 0 || !identStart(sql[start-1])) && (end == len(sql) || !identChar(sql[end])) {
				return true
			}
			i = start + 1
		}
	}
	return false
}

// identStart: a byte that, before a keyword, would make it part of an
// identifier instead (a digit would not: 1begin lexes as 1 and begin).
func identStart(b byte) bool { return b >= 'a' && b <= 'z' || b == '_' || b >= 0x80 }

func identChar(b byte) bool { return identStart(b) || b >= '0' && b <= '9' || b == '$' }
