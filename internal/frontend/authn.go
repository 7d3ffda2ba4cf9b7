package frontend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/auth"
	"github.com/multigres-proxy/multigres/internal/backend"
	"github.com/multigres-proxy/multigres/internal/wire"
)

// authenticator checks a client's password or SCRAM proof against the
// secret found in auth_file or by auth_query (a stage of the handshake).
type authenticator struct {
	c *clientConn
}

// authenticate runs the configured client authentication and returns the
// credentials for logging in upstream.
func (a *authenticator) authenticate(ctx context.Context) (backend.Credentials, error) {
	c := a.c
	cfg := c.lc.cfg
	role := c.ident.Role
	if cfg.AuthType == "trust" {
		c.writeMsg(&pgproto3.AuthenticationOk{})
		return backend.Credentials{Password: c.srv.secrets.serverPassword(c.route.cluster, c.database, role)}, nil
	}
	if cfg.AuthType == "password" && !c.tls && !cfg.AllowPlaintextPassword {
		c.srv.authFailure(AuthReasonPlaintext)
		return backend.Credentials{}, wire.Fatal(wire.CodeInvalidAuthorization,
			"password authentication over an unencrypted connection is not allowed").
			WithHint("Connect with sslmode=require, or set allow_plaintext_password = true.")
	}
	lctx, cancel := context.WithTimeout(ctx, c.lc.cfg.ServerConnectTimeout)
	secret, found, err := c.srv.secrets.lookup(lctx, c.route.cluster, c.lookupDatabase(), role)
	cancel()
	if c.ad.isAdmin {
		secret, found, err = a.adminSecret(role, secret, found, err)
	}
	if err != nil {
		c.logger().Error("credential lookup failed", "err", err)
		c.srv.authFailure(AuthReasonLookup)
		return backend.Credentials{}, a.lookupError(err)
	}
	var creds backend.Credentials
	switch cfg.AuthType {
	case "md5":
		creds, err = a.authMD5(secret, found)
	case "password":
		creds, err = a.authPassword(secret, found)
	default:
		creds, err = a.authSCRAM(secret, found)
	}
	if err != nil {
		return creds, a.authFailed(err)
	}
	if creds.Password == "" {
		creds.Password = c.srv.secrets.serverPassword(c.route.cluster, c.database, role)
	}
	if secret.Kind == auth.SecretMD5 {
		creds.MD5 = secret.MD5
	}
	c.writeMsg(&pgproto3.AuthenticationOk{})
	return creds, nil
}

// errBadPassword marks a failed verification, as opposed to a protocol
// error.
var errBadPassword = errors.New("password verification failed")

// authFailed turns a bad password into PostgreSQL's own message, after a
// constant delay, and with no hint of whether the user exists.
func (a *authenticator) authFailed(err error) error {
	c := a.c
	if !errors.Is(err, errBadPassword) {
		return err
	}
	c.srv.authFailure(AuthReasonPassword)
	c.logger().Info("password authentication failed")
	select {
	case <-time.After(c.lc.cfg.AuthFailureDelay):
	case <-c.srv.shutdown:
	}
	return wire.Fatal(wire.CodeInvalidPassword, "password authentication failed for user %q", c.ident.User)
}

func (a *authenticator) authSCRAM(secret auth.Secret, found bool) (backend.Credentials, error) {
	c := a.c
	var sv *auth.SCRAMServer
	if found && secret.Kind != auth.SecretMD5 {
		verifier := secret
		if secret.Kind == auth.SecretPlain {
			// A fixed verifier per entry: a fresh salt on every login
			// would tell a real user from a mock (whose salt is stable).
			verifier = c.srv.secrets.verifierFor(c.ident.Role, secret)
		}
		var err error
		if sv, err = auth.NewSCRAMServer(verifier); err != nil {
			return backend.Credentials{}, fmt.Errorf("scram server: %w", err)
		}
	} else {
		// Run the exchange to the end against a mock, as PostgreSQL does,
		// so an unknown user is indistinguishable from a wrong password.
		sv = auth.NewMockSCRAMServer(c.ident.Role, c.lc.mockKey)
	}
	c.writeMsg(&pgproto3.AuthenticationSASL{AuthMechanisms: sv.Mechanisms()})
	if err := c.flush(); err != nil {
		return backend.Credentials{}, errSilent
	}
	var first pgproto3.SASLInitialResponse
	if err := a.readAuthMessage(&first); err != nil {
		return backend.Credentials{}, err
	}
	serverFirst, err := sv.ClientFirst(first.AuthMechanism, first.Data)
	if err != nil {
		c.logger().Info("malformed SCRAM message", "err", err)
		c.srv.authFailure(AuthReasonProtocol)
		return backend.Credentials{}, wire.Fatal(wire.CodeProtocolViolation, "malformed SCRAM message")
	}
	c.writeMsg(&pgproto3.AuthenticationSASLContinue{Data: serverFirst})
	if err := c.flush(); err != nil {
		return backend.Credentials{}, errSilent
	}
	var final pgproto3.SASLResponse
	if err := a.readAuthMessage(&final); err != nil {
		return backend.Credentials{}, err
	}
	serverFinal, err := sv.ClientFinal(final.Data)
	if err != nil {
		return backend.Credentials{}, errBadPassword
	}
	c.writeMsg(&pgproto3.AuthenticationSASLFinal{Data: serverFinal})
	if secret.Kind == auth.SecretPlain {
		// The keys belong to a verifier made here with a random salt, so
		// upstream (which has its own salt) would reject a passthrough;
		// the plaintext password logs in instead.
		return backend.Credentials{Password: secret.Plain}, nil
	}
	return backend.Credentials{ClientKey: sv.ClientKey(), ServerKey: sv.ServerKey(), Salt: sv.Salt(), Iterations: sv.Iterations()}, nil
}

func (a *authenticator) authMD5(secret auth.Secret, found bool) (backend.Credentials, error) {
	c := a.c
	var salt [4]byte
	copy(salt[:], randomBytes(4))
	c.writeMsg(&pgproto3.AuthenticationMD5Password{Salt: salt})
	if err := c.flush(); err != nil {
		return backend.Credentials{}, errSilent
	}
	var pw pgproto3.PasswordMessage
	if err := a.readAuthMessage(&pw); err != nil {
		return backend.Credentials{}, err
	}
	// The client hashes with the username it sent (app_user.acme), so only
	// a plaintext secret, or an md5 hash of a bypass user, can match.
	if !found || !auth.VerifyMD5(secret, c.ident.User, salt, pw.Password) {
		return backend.Credentials{}, errBadPassword
	}
	if secret.Kind == auth.SecretPlain {
		return backend.Credentials{Password: secret.Plain}, nil
	}
	return backend.Credentials{}, nil
}

func (a *authenticator) authPassword(secret auth.Secret, found bool) (backend.Credentials, error) {
	c := a.c
	c.writeMsg(&pgproto3.AuthenticationCleartextPassword{})
	if err := c.flush(); err != nil {
		return backend.Credentials{}, errSilent
	}
	var pw pgproto3.PasswordMessage
	if err := a.readAuthMessage(&pw); err != nil {
		return backend.Credentials{}, err
	}
	if !found || !auth.VerifyPassword(secret, c.ident.Role, pw.Password) {
		return backend.Credentials{}, errBadPassword
	}
	return backend.Credentials{Password: pw.Password}, nil
}

// authMaxLen caps password-phase messages: no legitimate one is near it.
const authMaxLen = 16 << 10

// readAuthMessage reads one 'p' message and decodes it into m.
func (a *authenticator) readAuthMessage(m pgproto3.FrontendMessage) error {
	c := a.c
	fr := wire.NewFrameReader(c.rd, authMaxLen)
	typ, frame, err := fr.Next()
	if err != nil {
		var tl *wire.TooLargeError
		if errors.As(err, &tl) {
			return wire.Fatal(wire.CodeProtocolViolation, "authentication message too large")
		}
		return fmt.Errorf("%w: %v", errSilent, err)
	}
	if wire.ClientType(typ) != wire.PasswordMessage {
		if wire.ClientType(typ) == wire.Terminate {
			return errSilent
		}
		return wire.Fatal(wire.CodeProtocolViolation, "expected password response, got message type %q", typ)
	}
	if err := m.Decode(frame[5:]); err != nil {
		return wire.Fatal(wire.CodeProtocolViolation, "invalid password packet: %v", err)
	}
	return nil
}

// lookupError is what a client sees when its credentials could not be
// looked up: that the database is unreachable, slow or starting when that
// is the cause, and otherwise a pointer to the auth_query settings.
func (a *authenticator) lookupError(err error) *wire.Error {
	c := a.c
	cfg := c.lc.cfg
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Fatal(wire.CodeConnectionFailure,
			"the database server did not answer the credential lookup within server_connect_timeout (%s)", cfg.ServerConnectTimeout).
			WithHint("Check that PostgreSQL at the upstream address is running and not overloaded; retry later.")
	case errors.As(err, &pe) && (pe.Code == "57P03" || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "53300"):
		return wire.Fatal(pe.Code, "the database server cannot accept connections now: %s", pe.Message).
			WithHint("Retry later.")
	case errors.As(err, &pe):
		return wire.Fatal(wire.CodeConnectionFailure, "multigres could not look up the credentials for this user").
			WithHint("Check auth_user, auth_password and auth_query (see multigres init); the multigres log has the cause.")
	}
	return wire.Fatal(wire.CodeConnectionFailure, "the database server is unreachable, so multigres could not look up the credentials for this user").
		WithHint(fmt.Sprintf("Check that PostgreSQL is running at %s (cluster %s); retry later.", c.route.cluster.addr, c.route.cluster.name))
}

// adminSecret keeps the console reachable when the database is not, which
// is when an operator needs SHOW POOLS: an admin user whose lookup failed
// authenticates against the secret of its last successful lookup (users in
// auth_file need no lookup at all). A password changed meanwhile takes
// effect once the database answers again.
func (a *authenticator) adminSecret(role string, sec auth.Secret, found bool, err error) (auth.Secret, bool, error) {
	c := a.c
	if err == nil {
		if found {
			c.srv.secrets.rememberAdmin(role, sec)
		}
		return sec, found, nil
	}
	if cached, ok := c.srv.secrets.cachedAdmin(role); ok {
		c.logger().Warn("credential lookup failed; the admin user authenticates with its cached verifier", "err", err)
		return cached, true, nil
	}
	return sec, found, err
}
