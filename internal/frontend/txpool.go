package frontend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pool"
	"github.com/multigres-proxy/multigres/internal/setconfig"
	"github.com/multigres-proxy/multigres/internal/sqlguard"
	"github.com/multigres-proxy/multigres/internal/tenant"
	"github.com/multigres-proxy/multigres/internal/txstate"
	"github.com/multigres-proxy/multigres/internal/wire"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// txMode reports whether this connection uses transaction pooling: tenant
// connections to a database whose pool mode is transaction. Bypass users
// always get session mode (and so pools of their own).
func (h *handshake) txMode() bool {
	c := h.c
	return !c.ident.Bypass && c.lc.cfg.PoolModeFor(c.database) == "transaction"
}

// txParams splits the startup parameters of a transaction-mode client into
// tracked settings; anything else cannot follow the client from server to
// server and is refused.
func (h *handshake) txParams() (map[string]string, error) {
	c := h.c
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
	return txstate.Intern(settings), nil
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
func (h *handshake) loginTx(ctx context.Context, creds backend.Credentials) error {
	c := h.c
	settings, err := h.txParams()
	if err != nil {
		return err
	}
	r := &c.tx
	cfg, err := h.machineConfig(ctx, settings)
	if err != nil {
		return err
	}
	r.m = txstate.New(cfg)
	r.pool = c.srv.pools().Get(pool.Key{Cluster: c.route.cluster.name, Database: c.database, Role: c.ident.Role},
		txDialer(c, c.route.cluster, creds), poolLimits(c.lc.cfg))
	r.rt.creds = creds
	actx, cancel := loginWaitCtx(ctx)
	defer cancel()
	var sc *pool.Conn
	for sc == nil {
		if sc, err = r.pool.Acquire(actx); err != nil {
			return c.acquireError(err, true)
		}
		if !r.preReset(sc, true) {
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
	sv := r.model(sc)
	bctx := r.m.LoginContext(sv)
	checkKey := roleCheckKey(c.route.cluster, bctx.Role, c.database)
	bctx.CheckRole = !c.srv.roleChecked(checkKey)
	applyErr := sc.Apply(bctx)
	_ = sc.SetDeadline(time.Time{})
	sv.TxStatus = sc.TxStatus
	if err := h.applyErr(applyErr, bctx.Role); err != nil {
		r.releaseServer(sc, false)
		return err
	}
	if bctx.CheckRole {
		c.srv.markRoleChecked(checkKey)
	}
	r.m.LoggedIn(sv)
	err = h.sendReady(sc.Conn)
	r.releaseServer(sc, sc.TxStatus == wire.TxIdle)
	return err
}

// model is multigres' model of sc's session, made when sc is first used.
func (r *txRelay) model(sc *pool.Conn) *txstate.Server {
	if sv, ok := sc.Session.(*txstate.Server); ok {
		return sv
	}
	sv := txstate.NewServer(sc.PID, r.c.lc.cfg.MaxPreparedStatements, sc.Param)
	sc.Session = sv
	return sv
}

// machineConfig computes the client's context once: variables, resolved
// variables, managed settings and the role, its identity key, and how its
// MACs are made.
func (h *handshake) machineConfig(ctx context.Context, settings map[string]string) (txstate.Config, error) {
	c := h.c
	cfg := c.lc.cfg
	role := cfg.SetRole
	if role == "" {
		role = c.ident.Role
	}
	vars := append(append([]string(nil), cfg.ContextVariables...), c.resolvedNames...)
	values := append(append([]string(nil), c.ident.Values...), c.resolvedValues...)
	vars, values = c.tenantSettings(vars, values)
	vars, values = h.citusSettings(vars, values)
	mc := txstate.Config{
		Context:  setconfig.Context{Variables: vars, Values: values, Role: role},
		Key:      role + "\x00" + strings.Join(vars, "\x00") + "\x00\x00" + strings.Join(values, "\x00"),
		Settings: settings,
		Refuse: func(typ wire.ClientType, frame []byte, err *wire.Error) []byte {
			return c.refuse(byte(typ), frame, err)
		},
		NewUnnamedID: func() uint64 { return unnamedIDs.Add(1) },
	}
	if err := h.citusMachine(&mc); err != nil {
		return mc, err
	}
	if cfg.ContextSigning {
		key, err := h.signingKey(ctx)
		if err != nil {
			return mc, err
		}
		mc.Context.Primed = len(cfg.ContextVariables)
		for _, v := range cfg.ContextVariables {
			mc.Context.MACNames = append(mc.Context.MACNames, mgsql.ContextMACName(v))
		}
		names, values := cfg.ContextVariables, c.ident.Values
		// The key is the cluster's: txRoute replaces it when the client
		// follows its tenant to another cluster.
		keyRef := &c.tx.rt.key
		keyRef.Store(&key)
		mc.MACs = func(pid uint32) []string {
			key := *keyRef.Load()
			out := make([]string, len(names))
			for i, v := range names {
				out[i] = mgsql.ContextMAC(key, v, pid, values[i])
			}
			return out
		}
	}
	return mc, nil
}

// unnamedIDs gives every unnamed Parse a process-unique identity (see
// txstate.Server.UnnamedOwner).
var unnamedIDs atomic.Uint64

// signingKey is the database's context signing key; without one the
// client is refused.
func (h *handshake) signingKey(ctx context.Context) ([]byte, error) {
	c := h.c
	key, err := c.srv.secrets.signingKey(ctx, c.route.cluster, c.database)
	if err != nil || key == nil {
		c.logger().Warn("context signing key unavailable; closing", "err", err, "cluster", c.route.cluster.name)
		return nil, wire.Fatal(wire.CodeConnectionFailure, "context_signing is on but multigres has no signing key for database %q on cluster %q", c.database, c.route.cluster.name).
			WithHint("Run multigres init --context-signing on this database, and check auth_user and auth_password.")
	}
	return key, nil
}

// txDialer opens pool connections to cluster up as the client's login
// role, with the credentials of the latest client to log in (SCRAM
// passthrough keys or a configured password).
func txDialer(c *clientConn, up *upstream, creds backend.Credentials) pool.Dialer {
	maxBody := c.lc.cfg.MaxMessageSize
	params := []backend.Param{{Name: "user", Value: c.ident.Role}, {Name: "database", Value: c.database}}
	return func(ctx context.Context) (*backend.Conn, error) {
		return backend.Dial(ctx, backend.DialOptions{
			Addr: up.addr, TLSMode: up.tlsMode, TLSConfig: up.tls,
			Params: params, Credentials: creds, MaxBodyLen: maxBody,
		})
	}
}

func poolLimits(cfg *config.Config) pool.Limits {
	return pool.Limits{Size: cfg.DefaultPoolSize, MinSize: cfg.MinPoolSize, ReserveSize: cfg.ReservePoolSize,
		ReserveTimeout: cfg.ReservePoolTimeout, WaitTimeout: cfg.QueryWaitTimeout,
		IdleTimeout: cfg.ServerIdleTimeout, Lifetime: cfg.ServerLifetime, CheckDelay: cfg.ServerCheckDelay,
		ConnectTimeout: cfg.ServerConnectTimeout}
}

// acquireError is what a client sees when no server connection could be
// had: FATAL at login, an ordinary error later.
func (c *clientConn) acquireError(err error, login bool) *wire.Error {
	sev := wire.SeverityError
	if login {
		sev = wire.SeverityFatal
	}
	var fatal *wire.Error
	if errors.As(err, &fatal) && fatal.Severity == wire.SeverityFatal {
		return fatal // ends the client (a refused reroute, routing.go)
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
func (h *handshake) applyErr(err error, role string) error {
	c := h.c
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
