package frontend

import (
	"errors"
	"strings"
	"sync/atomic"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/txstate"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// Citus databases (citus_databases; docs/scaling.md). A tenant's context
// must reach every node a transaction touches, and Citus carries only SET
// LOCAL there (with citus.propagate_set_commands = 'local'), so every
// tenant transaction runs in a block multigres opens: the state machine's
// Citus wrapper (internal/txstate/citus.go) does it in both pool modes.
// In transaction mode that is the pooled relay with the wrapper on; in
// session mode the client's own server connection is driven by the same
// relay, pinned: the Machine re-attaches the same connection after every
// transaction and never switches its context, and names pass through.
// The session is logged in as in session mode (the context applied with
// set_config at session level, which the coordinator itself reads), plus
// citus.propagate_set_commands, which the guard protects.

// propagateSetting makes Citus send a transaction's SET LOCALs to the
// workers it reaches.
const propagateSetting = "citus.propagate_set_commands"

// citus reports whether the connection is a tenant's on a Citus database.
func (h *handshake) citus() bool {
	c := h.c
	return c.ident != nil && !c.ident.Bypass && c.lc.cfg.CitusFor(c.database)
}

// citusSettings adds citus.propagate_set_commands = 'local' to the
// settings applied with the context, on a Citus database.
func (h *handshake) citusSettings(names, values []string) ([]string, []string) {
	if !h.citus() {
		return names, values
	}
	return append(names, propagateSetting), append(values, "local")
}

// citusMachine turns the Citus wrapper on in a Machine's configuration:
// the SET LOCAL of every context variable and resolved variable (what RLS
// policies read).
func (h *handshake) citusMachine(mc *txstate.Config) error {
	c := h.c
	if !h.citus() {
		return nil
	}
	names := append(append([]string(nil), c.lc.cfg.ContextVariables...), c.resolvedNames...)
	values := append(append([]string(nil), c.ident.Values...), c.resolvedValues...)
	cz := &txstate.Citus{}
	for i, name := range names {
		sql, err := setconfig.SetLocal(name, values[i])
		if err != nil {
			return wire.Fatal(wire.CodeInvalidParameterValue, "multigres cannot set the tenant context on Citus: %v", err)
		}
		cz.SetLocal = append(cz.SetLocal, sql)
	}
	mc.Citus = cz
	return nil
}

// pinCitus hands a session-mode tenant's server connection, its context
// applied, to the transaction relay, pinned (see above).
func (h *handshake) pinCitus(server *backend.Conn) error {
	c := h.c
	r := &c.tx
	role := c.lc.cfg.SetRole
	if role == "" {
		role = c.ident.Role
	}
	vars := append(append([]string(nil), c.lc.cfg.ContextVariables...), c.resolvedNames...)
	values := append(append([]string(nil), c.ident.Values...), c.resolvedValues...)
	mc := txstate.Config{
		Context: setconfig.Context{Variables: vars, Values: values, Role: role},
		Key:     role + "\x00" + strings.Join(vars, "\x00") + "\x00\x00" + strings.Join(values, "\x00"),
		Refuse: func(typ wire.ClientType, frame []byte, err *wire.Error) []byte {
			return c.refuse(byte(typ), frame, err)
		},
		NewUnnamedID: func() uint64 { return unnamedIDs.Add(1) },
		Pinned:       true,
	}
	if err := h.citusMachine(&mc); err != nil {
		return err
	}
	r.m = txstate.New(mc)
	sc := &pool.Conn{Conn: server}
	sc.Holder.Store(c.id)
	r.pinned.p.Store(sc)
	r.m.LoggedIn(r.model(sc))
	return nil
}

// errPinnedLost: the pinned server connection is gone (the client is
// ended with it).
var errPinnedLost = errors.New("the session's server connection is closed")

// pinnedConn is a pinned client's own server connection; nil once closed.
type pinnedConn struct {
	p atomic.Pointer[pool.Conn]
}

// take is the attachment of a pinned client: always its own connection.
func (pc *pinnedConn) take() (*pool.Conn, error) {
	if sc := pc.p.Load(); sc != nil {
		return sc, nil
	}
	return nil, errPinnedLost
}

// release ends an attachment of a pinned client: the connection stays the
// client's, unless it may not be reused (the client or the server is
// gone), when it is closed.
func (pc *pinnedConn) release(sc *pool.Conn, reusable bool) {
	if !reusable {
		pc.p.Store(nil)
		sc.Close()
	}
}

// close closes the connection (the client left: the server rolls back
// whatever it was doing, as when a session-mode client leaves).
func (pc *pinnedConn) close() {
	if sc := pc.p.Swap(nil); sc != nil {
		sc.Close()
	}
}

// guardFor is the guard of a relay's client: on a Citus database the Citus
// guards (the session rules when pinned), else the transaction-mode guard.
func (lc *liveConfig) guardFor(pinned, citus bool) *sqlGuard {
	switch {
	case pinned && lc.citusGuard != nil:
		return lc.citusGuard
	case citus && lc.citusTxGuard != nil:
		return lc.citusTxGuard
	}
	return lc.txGuard
}

// citusGuards are the guards of tenant connections to Citus databases:
// the session rules (none with guard = off) and the transaction-mode
// rules, each with the Citus rules (sqlguard.Config.Citus). nil without
// Citus databases.
func citusGuards(cfg *config.Config) (session, tx *sqlGuard) {
	if len(cfg.CitusDatabases) == 0 {
		return nil, nil
	}
	base := sqlguard.Config{
		ContextVariables: guardProtected(cfg),
		DeniedFunctions:  cfg.GuardDeniedFunctions,
		PoolingOnly:      !cfg.Guard,
		Citus:            true,
	}
	txCfg := base
	txCfg.TransactionMode = true
	return &sqlGuard{g: sqlguard.New(base)}, &sqlGuard{g: sqlguard.New(txCfg)}
}
