package e2e

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestProtocol32ClientNegotiatesDown: a client asking for protocol 3.2
// (pgx max_protocol_version) is answered with NegotiateProtocolVersion and
// works at 3.0, cancel included.
func TestProtocol32ClientNegotiatesDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	conn, err := e.connectWith(t, "app_user.acme", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
		c.MinProtocolVersion, c.MaxProtocolVersion = "3.0", "3.2"
	})
	if err != nil {
		t.Fatalf("connect asking for 3.2: %v", err)
	}
	if got := names(t, conn, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme sees %v", got)
	}
	if n := len(conn.PgConn().SecretKey()); n != 4 {
		t.Fatalf("secret key of %d bytes at protocol 3.0", n)
	}
}

// TestEncryptionNegotiation: GSSENCRequest is answered N and the startup
// goes on; bytes pipelined behind an SSLRequest are refused (CVE-2021-23214).
func TestEncryptionNegotiation(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSigned(t)
	e := newEnv(t, func(c *config.Config) { c.TLSCert, c.TLSKey, c.ClientTLSMode = certFile, keyFile, "allow" })

	r := rawDial(t, e.proxy.Addr)
	r.write(encode(t, &pgproto3.GSSEncRequest{}))
	var b [1]byte
	if _, err := r.nc.Read(b[:]); err != nil || b[0] != 'N' {
		t.Fatalf("GSSENCRequest answer %q, %v", b[0], err)
	}
	r.write(encode(t, startupMsg("app_user.acme", e.db)))
	if _, ok := r.receive().(*pgproto3.AuthenticationSASL); !ok {
		t.Fatal("no SASL challenge after GSSENCRequest")
	}

	r = rawDial(t, e.proxy.Addr)
	r.write(encode(t, &pgproto3.SSLRequest{}, startupMsg("app_user.acme", e.db)))
	r.wantFatal("08P01", "received unencrypted data after SSL request")
}

// TestMaxMessageSize: a message over max_message_size ends the session
// with a clear error instead of being buffered.
func TestMaxMessageSize(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.MaxMessageSize = 4096 })
	conn := e.connect(t, "app_user.acme")
	_, err := conn.Exec(testCtx(t), "SELECT '"+strings.Repeat("x", 5000)+"'")
	pe := wantPgError(t, err, "08P01", "")
	if !strings.HasPrefix(pe.Message, "message too large") {
		t.Fatalf("message %q", pe.Message)
	}
	if !conn.IsClosed() {
		if _, err := conn.Exec(testCtx(t), "SELECT 1"); err == nil {
			t.Fatal("session survived an oversized message")
		}
	}
}

// TestPasswordAuthType: auth_type = password is refused without TLS unless
// allow_plaintext_password is set.
func TestPasswordAuthType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.AuthType = "password" })
	_, err := e.tryConnect(t, "app_user.acme", proxytest.AppUserPassword)
	wantPgError(t, err, "28000", "password authentication over an unencrypted connection is not allowed")

	e2 := &env{pg: e.pg, db: e.db, proxy: proxytest.StartProxy(t, e.pg, func(c *config.Config) {
		c.AuthType, c.AllowPlaintextPassword = "password", true
	})}
	conn := e2.connect(t, "app_user.acme")
	if got := names(t, conn, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme sees %v", got)
	}
	_, err = e2.tryConnect(t, "app_user.acme", "wrong")
	wantPgError(t, err, "28P01", `password authentication failed for user "app_user.acme"`)
}
