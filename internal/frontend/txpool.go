package frontend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/tenant"
	"github.com/multigres-proxy/multigres/internal/wire"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// Transaction pooling (pool_mode = transaction), tenant connections only.
// A client holds a server connection from its first message after
// ReadyForQuery 'I' until the next ReadyForQuery 'I' with nothing in
// flight. What a client leaves in a server session is either tracked here
// and re-applied wherever it lands (tenant context, tracked settings,
// protocol-level prepared statements) or refused by the guard's
// transaction-mode rules (internal/sqlguard/session.go). docs/pooling.md
// lists both.

// txConn is a client's transaction-pooling state. mu guards everything
// the client pump and the server pump share: the attached server, the
// queue of owed responses, the status, statements and settings.
type txConn struct {
	pool *pool.Pool
	// relaying is set once the client is past login and relayTx runs (read
	// by Shutdown from another goroutine).
	relaying atomic.Bool

	mu     sync.Mutex
	server *pool.Conn
	q      []owed // responses the client is owed, oldest first
	status byte   // transaction status as the client last saw it
	skip   bool   // discarding client messages until Sync
	// serverSkipping: the server ignores messages until the client's next
	// Sync (an extended-protocol error with no Sync owed after it).
	serverSkipping bool
	gone           bool // the client is gone; the server pump cleans up
	// unconfirmed: a short context switch rides on a query whose
	// ReadyForQuery has not come yet (see queueSwitch).
	unconfirmed bool
	// copyIn: the server is reading COPY data and ignores Sync (see
	// enterCopyIn).
	copyIn bool
	// copySyncs counts the Syncs the client sent in a COPY IN's window
	// (see copyFailed); copyOpen: that COPY's outcome (CommandComplete or
	// ErrorResponse) has not come yet.
	copySyncs    int
	copyOpen     bool
	copyFailSent bool // the client ended the copy with CopyFail
	// attachedAt is the monoNow of the current attachment (see
	// unsynced_hold_timeout in txhold.go); closeServer makes abandonTx
	// close the server connection instead of rolling it back.
	attachedAt    int64
	copyWaitSince int64 // monoNow when the client pump began waiting for COPY data
	// blockIdleSince: monoNow when the client, idle in a block, was last
	// heard from (txhold.go).
	blockIdleSince int64
	closeServer    bool
	// out collects what the client pump sends the server for one message.
	out []byte
	// unread counts the bytes forwarded since someone last started
	// reading the server's answers (see driveServer).
	unread int
	// rowsForward: DataRows and CopyData for the head entry go to the
	// client (set at every unlock; read lock-free by the server pump).
	rowsForward atomic.Bool
	// pumpDone is closed when the current attachment's server pump ends;
	// nil when no server pump goroutine runs (none yet, or the client
	// pump reads the server inline).
	pumpDone chan struct{}
	// inline is the server the client pump is reading right now, for
	// kill to interrupt; interrupted records that it did.
	inlineMu    sync.Mutex
	inline      *pool.Conn
	interrupted bool
	// cancels counts CancelRequests in flight to the attached server; it
	// is released only after they are delivered, so a late cancel cannot
	// hit the next client's query.
	cancels sync.WaitGroup

	ctxKey   string            // identity of this client's tenant context
	salt     string            // statement salt: ctxKey and settings (serverName)
	ctx      backend.Context   // the context to apply (MACs computed per server)
	signKey  []byte            // context_signing key, nil when off
	settings map[string]string // tracked settings, by name
	stmts    map[string]*txStmt
	unnamed  *txStmt // the client's last unnamed Parse
	// portalFx are the effects of the statement bound to the unnamed
	// portal; batchFx those executed since the last Sync (server pump).
	portalFx *sqlguard.Effects
	batchFx  []*sqlguard.Effects
	// portalKnown: the unnamed portal holds the client's unnamed statement,
	// whose effects portalFx are (a named statement's are not tracked).
	portalKnown bool
	// batchTx: a statement that may control the transaction completed in
	// the current batch (server pump; see noteEffects).
	batchTx bool
}

// txStmt is a client's prepared statement: its server name and the Parse
// to send where it is not prepared yet.
type txStmt struct {
	srv   string
	parse []byte            // Parse frame carrying srv as its name
	id    uint64            // unnamed statements: identity for UnnamedOwner
	fx    *sqlguard.Effects // unnamed statements: the session SETs it makes
}

// owed is one response the client is owed, in the order it is owed.
type owed struct {
	kind   byte // client message type (P B D C E S Q)
	action byte // owedForward, owedSwallow or owedSynth
	synth  []byte
	// P: the client statement (and server name) a failed Parse removes.
	stmt, srv string
	named     bool
	// Q: the session effects committed when it succeeds.
	fx     *sqlguard.Effects
	failed bool
	// injected: part of the context switch; any error is fatal.
	injected bool
	// unnamed: a Parse of the unnamed statement; skipped, the server keeps
	// whatever unnamed statement it had.
	unnamed bool
	// txc: an Execute that may control the transaction (its statement's
	// effects are unknown or include BEGIN/COMMIT/ROLLBACK/savepoints), so
	// SETs in the same batch may be undone or committed by it.
	txc bool
}

const (
	owedForward = iota
	owedSwallow
	owedSynth
)

// txMode reports whether this connection uses transaction pooling: tenant
// connections to a database whose pool mode is transaction. Bypass users
// always get session mode (and so pools of their own).
func (c *clientConn) txMode() bool {
	return !c.ident.Bypass && c.lc.cfg.PoolModeFor(c.database) == "transaction"
}

// txParams splits the startup parameters of a transaction-mode client into
// tracked settings; anything else cannot follow the client from server to
// server and is refused.
func (c *clientConn) txParams() (map[string]string, error) {
	settings := map[string]string{}
	for _, p := range c.params {
		switch {
		case p.Name == "user" || p.Name == "database":
		case p.Name == "options":
			for _, set := range tenant.OptionSettings(p.Value) {
				if !sqlguard.IsTracked(set.Name) {
					return nil, unsupportedStartupParam(set.Name)
				}
				settings[strings.ToLower(set.Name)] = set.Value
			}
		case sqlguard.IsTracked(p.Name):
			settings[strings.ToLower(p.Name)] = p.Value
		default:
			return nil, unsupportedStartupParam(p.Name)
		}
	}
	return internSettings(settings), nil
}

func unsupportedStartupParam(name string) *wire.Error {
	return wire.Fatal(wire.CodeFeatureNotSupported, "startup parameter %q is not supported in transaction pooling", name).
		WithDetail("Server connections are shared, so only the parameters multigres tracks per client can be set at startup.").
		WithHint("Drop the parameter, set it with SET LOCAL in each transaction, or use a session-mode database (pool_mode_databases); see docs/pooling.md.")
}

// loginTx is the end of the handshake in transaction mode: borrow a server
// connection from the pool, apply this client's context and settings on it
// (a failure is FATAL, as in session mode), report its parameters, and
// give it back.
func (c *clientConn) loginTx(ctx context.Context, creds backend.Credentials) error {
	settings, err := c.txParams()
	if err != nil {
		return err
	}
	t := &c.tx
	t.settings, t.status = settings, 'I'
	if err := c.buildTxContext(ctx); err != nil {
		return err
	}
	t.salt = stmtSalt(t.ctxKey, settings)
	t.pool = c.srv.pools().Get(c.database, c.ident.Role, c.txDialer(creds), c.poolLimits())
	actx, cancel := loginWaitCtx(ctx)
	defer cancel()
	var sc *pool.Conn
	for sc == nil {
		if sc, err = t.pool.Acquire(actx); err != nil {
			return c.acquireError(err, true)
		}
		if !c.preReset(sc, true) {
			sc = nil
		}
	}
	// The login's Apply waits for the server no longer than the login.
	if dl, ok := actx.Deadline(); ok {
		_ = sc.SetDeadline(dl)
	}
	sc.Holder.Store(c.id)
	// No Session.Connected: in transaction mode the client holds no server
	// connection; the pools are observed through Server.PoolStats.
	c.setState(StateInjecting)
	bctx := t.ctx
	bctx.MACs = c.macs(sc.PID)
	bctx.Variables = append(slices.Clone(bctx.Variables), slices.Sorted(maps.Keys(settings))...)
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		bctx.Values = append(bctx.Values, settings[name])
	}
	bctx.Resets = resetsFor(sc.Settings, settings)
	bctx.PreResets = preResets(settings)
	checkKey := bctx.Role + "\x00" + c.database
	bctx.CheckRole = !c.srv.roleChecked(checkKey)
	applyErr := sc.Apply(bctx)
	_ = sc.SetDeadline(time.Time{})
	if err := c.applyErr(applyErr, bctx.Role); err != nil {
		c.releaseServer(sc, false)
		return err
	}
	if bctx.CheckRole {
		c.srv.markRoleChecked(checkKey)
	}
	sc.Context, sc.Settings = t.ctxKey, settings
	sc.UnnamedOwner = 0
	err = c.sendReady(sc.Conn)
	c.releaseServer(sc, sc.TxStatus == 'I')
	return err
}

// buildTxContext computes the client's context once: variables, resolved
// variables, managed settings and the role, and its identity key.
func (c *clientConn) buildTxContext(ctx context.Context) error {
	cfg := c.lc.cfg
	role := cfg.SetRole
	if role == "" {
		role = c.ident.Role
	}
	vars := append(append([]string(nil), cfg.ContextVariables...), c.resolvedNames...)
	values := append(append([]string(nil), c.ident.Values...), c.resolvedValues...)
	vars, values = c.tenantSettings(vars, values)
	t := &c.tx
	t.ctx = backend.Context{Variables: vars, Values: values, Role: role}
	t.ctxKey = role + "\x00" + strings.Join(vars, "\x00") + "\x00\x00" + strings.Join(values, "\x00")
	if cfg.ContextSigning {
		key, err := c.signingKey(ctx)
		if err != nil {
			return err
		}
		t.signKey = key
		t.ctx.Primed = len(cfg.ContextVariables)
		for _, v := range cfg.ContextVariables {
			t.ctx.MACNames = append(t.ctx.MACNames, mgsql.ContextMACName(v))
		}
	}
	return nil
}

// signingKey is the database's context signing key; without one the
// client is refused.
func (c *clientConn) signingKey(ctx context.Context) ([]byte, error) {
	key, err := c.srv.secrets.signingKey(ctx, c.database)
	if err != nil || key == nil {
		c.logger().Warn("context signing key unavailable; closing", "err", err)
		return nil, wire.Fatal(wire.CodeConnectionFailure, "context_signing is on but multigres has no signing key for database %q", c.database).
			WithHint("Run multigres init --context-signing on this database, and check auth_user and auth_password.")
	}
	return key, nil
}

// macs are the signed-context MACs for a server backend pid.
func (c *clientConn) macs(pid uint32) []string {
	if c.tx.signKey == nil {
		return nil
	}
	out := make([]string, len(c.lc.cfg.ContextVariables))
	for i, v := range c.lc.cfg.ContextVariables {
		out[i] = mgsql.ContextMAC(c.tx.signKey, v, pid, c.ident.Values[i])
	}
	return out
}

// resetsFor lists the settings in effect on a server that the client does
// not have, sorted.
func resetsFor(server, client map[string]string) []string {
	var out []string
	for name := range server {
		if _, ok := client[name]; !ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// txDialer opens pool connections as the client's login role, with the
// credentials of the latest client to log in (SCRAM passthrough keys or a
// configured password).
func (c *clientConn) txDialer(creds backend.Credentials) pool.Dialer {
	cfg, serverTLS := c.lc.cfg, c.lc.serverTLS
	params := []backend.Param{{Name: "user", Value: c.ident.Role}, {Name: "database", Value: c.database}}
	return func(ctx context.Context) (*backend.Conn, error) {
		return backend.Dial(ctx, backend.DialOptions{
			Addr: cfg.UpstreamAddr(), TLSMode: cfg.ServerTLSMode, TLSConfig: serverTLS,
			Params: params, Credentials: creds, MaxBodyLen: cfg.MaxMessageSize,
		})
	}
}

func (c *clientConn) poolLimits() pool.Limits {
	cfg := c.lc.cfg
	return pool.Limits{Size: cfg.DefaultPoolSize, MinSize: cfg.MinPoolSize, ReserveSize: cfg.ReservePoolSize,
		ReserveTimeout: cfg.ReservePoolTimeout, WaitTimeout: cfg.QueryWaitTimeout,
		IdleTimeout: cfg.ServerIdleTimeout, Lifetime: cfg.ServerLifetime, CheckDelay: cfg.ServerCheckDelay,
		ConnectTimeout: cfg.ServerConnectTimeout, MaxPrepared: cfg.MaxPreparedStatements}
}

// acquireError is what a client sees when no server connection could be
// had: FATAL at login, an ordinary error later.
func (c *clientConn) acquireError(err error, login bool) *wire.Error {
	sev := wire.SeverityError
	if login {
		sev = wire.SeverityFatal
	}
	switch {
	case errors.Is(err, pool.ErrWaitTimeout):
		return &wire.Error{Severity: sev, Code: wire.CodeTooManyConnections,
			Message: fmt.Sprintf("no server connection became free within query_wait_timeout (%s)", c.lc.cfg.QueryWaitTimeout),
			Hint:    "Retry later; or raise default_pool_size (and max_db_connections), or shorten your transactions."}
	case errors.Is(err, pool.ErrQuotaWait):
		cfg := c.srv.live.Load().cfg
		return &wire.Error{Severity: sev, Code: wire.CodeTooManyConnections,
			Message: fmt.Sprintf("tenant %q already holds max_tenant_server_connections (%d) server connections of pool %s/%s, and none was released within query_wait_timeout (%s)",
				c.tl.name, cfg.MaxTenantServerConnections, c.database, c.ident.Role, cfg.QueryWaitTimeout),
			Hint: "Retry later; shorten this tenant's transactions, or raise max_tenant_server_connections."}
	case login && errors.Is(err, context.DeadlineExceeded):
		return &wire.Error{Severity: sev, Code: wire.CodeTooManyConnections,
			Message: fmt.Sprintf("no server connection became free before the login timed out (handshake_timeout = %s)", c.lc.cfg.HandshakeTimeout),
			Hint:    "Retry later; or raise default_pool_size, or shorten your transactions."}
	case errors.Is(err, pool.ErrClosed), errors.Is(err, context.Canceled) && c.srv.inShut.Load():
		// A wait that Shutdown cut short ends like a refused one.
		return errShuttingDown
	}
	c.logger().Warn("opening a pooled server connection failed", "err", err)
	we := wire.ToClient(fmt.Errorf("connect upstream as %s: %w", c.ident.Role, err))
	we.Severity = sev
	if we.Code == "" || we.Code == wire.CodeInternalError {
		we.Code = wire.CodeConnectionFailure
	}
	return we
}

// applyErr maps a failed login-time Apply to the client's FATAL error.
func (c *clientConn) applyErr(err error, role string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, backend.ErrRoleBypassesRLS):
		return wire.Fatal(wire.CodeInvalidAuthorization,
			"role %q can bypass row-level security, so multigres refuses tenant connections for it", role).
			WithHint(fmt.Sprintf("Run ALTER ROLE %s NOSUPERUSER NOBYPASSRLS, or connect as a superuser_bypass user.", backend.QuoteIdent(role)))
	case errors.Is(err, backend.ErrDatabaseNotHardened):
		return wire.Fatal(wire.CodeInvalidAuthorization,
			"database %q is not set up for tenant connections", c.database).
			WithDetail(fmt.Sprintf("Role %s may create temporary objects there, which would let SQL run unseen by multigres.", backend.QuoteIdent(role))).
			WithHint("Run multigres init (with hardening) on this database, or connect to a database where it ran.")
	}
	c.logger().Warn("setting the tenant context failed; closing", "err", err)
	msg := pgMessage(err)
	return wire.Fatal(wire.CodeConnectionFailure, "multigres could not set the tenant context: %s", msg).
		WithHint(contextHint(msg, "Check the context_variables and set_role settings and the role's grants."))
}

// contextHint is the hint for a failed context statement whose server
// message is msg: when a multigres.* function of sql/setup.sql is missing
// (multigres.context_prime with context_signing on, since 2026-11-22),
// the database was set up by an older multigres; otherwise fallback.
func contextHint(msg, fallback string) string {
	if strings.Contains(msg, "function multigres.") && strings.Contains(msg, "does not exist") {
		return "The database was set up by an older multigres: run multigres init on it again (it is idempotent)."
	}
	return fallback
}

// serverName is the server-side name of a client's statement: a hash of
// its text and parameter types and of the client's statement salt, so
// clients share a server statement exactly when they prepared the same
// thing under the same tenant context and settings, and names never
// collide.
//
// Why the salt: PostgreSQL converts a statement's typed literals ('01/02/
// 2024'::date, timestamptz, intervals) with the DateStyle, TimeZone and
// IntervalStyle of whoever prepared it, and never again; and whether a
// Parse is answered from the cache would tell a tenant which SQL another
// tenant ran. A statement is shared only with clients that would have
// parsed it to the same thing and may know it exists.
func serverName(salt string, parseBody []byte) string {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write(parseBody)
	return "mg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// stmtSalt is the statement salt of a client with tenant context key
// ctxKey and tracked settings: both in full, NUL-separated.
func stmtSalt(ctxKey string, settings map[string]string) string {
	return ctxKey + "\x00\x00\x00" + settingsKey(settings)
}

// preResets are the client's settings that must be reset right before
// they are applied (backend.Context.PreResets): DateStyle, whose value may
// name only one of its two halves.
func preResets(settings map[string]string) []string {
	if _, ok := settings["datestyle"]; ok {
		return datestyleOnly
	}
	return nil
}

var datestyleOnly = []string{"datestyle"}
