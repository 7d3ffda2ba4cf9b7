package frontend

import (
	"bufio"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/tenant"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// The admin console on a client connection. Its login runs inside the
// connection's handshake (checkAdminStartup, lookupDatabase, adminReady);
// then the connection hands off to a consoleSession, which serves
// internal/admin's commands on the socket with no upstream connection.

// consoleSession is an admin console connection after its login.
type consoleSession struct {
	c *clientConn
	// cmdMu is held while a command runs, so that a shutdown closes the
	// console between commands, never in the middle of an answer.
	cmdMu sync.Mutex
	// cancelCmd cancels the command in progress (a CancelRequest with the
	// console connection's key, e.g. psql's Ctrl-C); nil between commands.
	cancelCmd atomic.Pointer[context.CancelFunc]
}

// checkAdminStartup accepts a startup for the admin database from a user
// in admin_users only.
func (h *handshake) checkAdminStartup(st *wire.Startup) error {
	c := h.c
	user := st.Params["user"]
	if err := checkAdminUser(c, user); err != nil {
		return err
	}
	c.ident = &tenant.Identity{User: user, Role: user, Bypass: true}
	c.database = admin.Database
	// Set before the cancel key exists, so a CancelRequest that finds the
	// connection also finds its session.
	c.ad.isAdmin, c.ad.console = true, &consoleSession{c: c}
	c.setLogUser(user, true)
	c.ad.info.Store(&connInfo{user: user, database: admin.Database, role: user, admin: true,
		tls: c.tls, appName: st.Params["application_name"]})
	return nil
}

// checkAdminUser refuses console logins while the console is off, by users
// outside admin_users, and without TLS where tenants need it.
func checkAdminUser(c *clientConn, user string) error {
	if len(c.lc.cfg.AdminUsers) == 0 {
		c.srv.authFailure(AuthReasonUsername)
		return wire.Fatal(wire.CodeInvalidAuthorization, "the admin console is off").
			WithHint("List admin users in admin_users to turn it on.")
	}
	if !slices.Contains(c.lc.cfg.AdminUsers, user) {
		c.srv.authFailure(AuthReasonUsername)
		return wire.Fatal(wire.CodeInvalidAuthorization, "user %q may not connect to the admin console", user).
			WithHint("Only users listed in admin_users may connect to database \"multigres\".")
	}
	if c.lc.cfg.ClientTLSMode == "require" && !c.tls {
		// The console can pause and kill: no weaker than tenant logins.
		c.srv.authFailure(AuthReasonTLSRequired)
		return wire.Fatal(wire.CodeInvalidAuthorization, "multigres requires TLS for admin console connections").
			WithHint("Connect with sslmode=require (client_tls_mode = require).")
	}
	return nil
}

// lookupDatabase is where auth_query looks up the client's secret: the
// admin database does not exist upstream, so admin users are looked up in
// auth_dbname, or "postgres" when it is empty.
func (c *clientConn) lookupDatabase() string {
	if !c.ad.isAdmin {
		return c.database
	}
	if db := c.lc.cfg.AuthDatabase; db != "" {
		return db
	}
	return "postgres"
}

// adminReady finishes an admin login without any upstream connection.
func (h *handshake) adminReady() error {
	c := h.c
	for _, p := range [][2]string{{"server_version", "16.0 (multigres " + admin.Version + ")"}, {"server_encoding", "UTF8"},
		{"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"}, {"standard_conforming_strings", "on"},
		{"integer_datetimes", "on"}, {"application_name", ""}} {
		c.writeMsg(&pgproto3.ParameterStatus{Name: p[0], Value: p[1]})
	}
	c.srv.cancels.register(c)
	c.keyed = true
	c.writeMsg(&pgproto3.BackendKeyData{ProcessID: c.key.pid, SecretKey: c.key.secret[:]})
	c.writeMsg(&pgproto3.ReadyForQuery{TxStatus: wire.TxIdle})
	c.setState(StateIdle)
	if err := c.flush(); err != nil {
		return fmt.Errorf("%w: %v", errSilent, err)
	}
	c.logger().Info("admin console login")
	return nil
}

// serve runs the console until the client leaves.
func (s *consoleSession) serve() {
	c := s.c
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.watch(ctx, cancel)
	con := &admin.Console{Proxy: c.srv, Command: s.command}
	// The console is rare: it gets a plain buffered writer of its own,
	// after whatever the login left buffered.
	if err := c.flush(); err != nil {
		return
	}
	if err := con.Serve(ctx, c.rd, bufio.NewWriter(c.nc)); err != nil && !isClosed(err) {
		c.logger().Info("admin console connection ended", "err", err)
	}
}

// watch ends the session from outside: a kill (KILL-style close) cancels
// the command in progress; a shutdown closes the console between commands,
// since an idle console would otherwise hold the drain until
// shutdown_timeout.
func (s *consoleSession) watch(ctx context.Context, cancel context.CancelFunc) {
	select {
	case <-s.c.ad.deadChan():
		cancel()
	case <-s.c.srv.shutdown:
		s.cmdMu.Lock()
		s.c.kill()
		s.cmdMu.Unlock()
	case <-ctx.Done():
	}
}

// command wraps each console Query message (admin.Console.Command): the
// console shows as active in SHOW CLIENTS while it runs, and the command's
// context is what a CancelRequest cancels.
func (s *consoleSession) command(ctx context.Context) (context.Context, func()) {
	s.cmdMu.Lock()
	s.c.setState(StateActive)
	cctx, cancel := context.WithCancel(ctx)
	s.cancelCmd.Store(&cancel)
	return cctx, func() {
		s.cancelCmd.Store(nil)
		cancel()
		s.c.setState(StateIdle)
		s.cmdMu.Unlock()
	}
}

// cancel cancels the console command in progress, if any.
func (s *consoleSession) cancel() {
	if cancel := s.cancelCmd.Load(); cancel != nil {
		(*cancel)()
	}
}
