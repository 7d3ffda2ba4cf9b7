package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into a temp dir and returns their paths.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "multigres test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// connectSSL connects through the proxy as user with a libpq sslmode and
// extra URL parameters.
func (e *env) connectSSL(t *testing.T, user, password, sslmode, extra string) (*pgx.Conn, error) {
	t.Helper()
	url := strings.Replace(e.url("placeholder", password), "sslmode=disable", "sslmode="+sslmode+extra, 1)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	cfg.User = user
	conn, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	return conn, nil
}

func isTLS(conn *pgx.Conn) bool {
	_, ok := conn.PgConn().Conn().(*tls.Conn)
	return ok
}

func TestTLSRequired(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSigned(t)
	e := newEnv(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey, c.ClientTLSMode = certFile, keyFile, "require"
	})
	conn, err := e.connectSSL(t, "app_user.acme", proxytest.AppUserPassword, "require", "")
	if err != nil {
		t.Fatalf("sslmode=require: %v", err)
	}
	if !isTLS(conn) {
		t.Fatalf("sslmode=require connection is %T, not TLS", conn.PgConn().Conn())
	}
	if got := names(t, conn, "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme over TLS sees %v", got)
	}
	// The certificate is the one configured: full verification against it
	// as the root succeeds.
	conn, err = e.connectSSL(t, "app_user.acme", proxytest.AppUserPassword, "verify-full", "&sslrootcert="+certFile)
	if err != nil || !isTLS(conn) {
		t.Fatalf("sslmode=verify-full: %v", err)
	}
	_, err = e.connectSSL(t, "app_user.acme", proxytest.AppUserPassword, "disable", "")
	pe := wantPgError(t, err, "28000", "multigres requires TLS for tenant connections")
	if pe.Severity != "FATAL" {
		t.Fatalf("severity %q", pe.Severity)
	}
	// The bypass user is not a tenant connection.
	if _, err := e.connectSSL(t, "postgres", pgtest.SuperPassword, "require", ""); err != nil {
		t.Fatalf("bypass over TLS: %v", err)
	}
}

func TestTLSAllowed(t *testing.T) {
	t.Parallel()
	certFile, keyFile := selfSigned(t)
	e := newEnv(t, func(c *config.Config) {
		c.TLSCert, c.TLSKey, c.ClientTLSMode = certFile, keyFile, "allow"
	})
	for _, tc := range []struct {
		sslmode string
		tls     bool
	}{{"require", true}, {"disable", false}, {"prefer", true}} {
		conn, err := e.connectSSL(t, "app_user.acme", proxytest.AppUserPassword, tc.sslmode, "")
		if err != nil {
			t.Fatalf("sslmode=%s: %v", tc.sslmode, err)
		}
		if isTLS(conn) != tc.tls {
			t.Fatalf("sslmode=%s: TLS %v, want %v", tc.sslmode, isTLS(conn), tc.tls)
		}
		if got := names(t, conn, "SELECT current_tenant_id()"); !eq(got, []string{"acme"}) {
			t.Fatalf("sslmode=%s: tenant %v", tc.sslmode, got)
		}
	}
}

// TestNoTLSConfigured: without a certificate the proxy answers N, so
// sslmode=require fails and sslmode=prefer falls back to plaintext.
func TestNoTLSConfigured(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	if _, err := e.connectSSL(t, "app_user.acme", proxytest.AppUserPassword, "require", ""); err == nil {
		t.Fatal("sslmode=require succeeded without a certificate")
	}
	conn, err := e.connectSSL(t, "app_user.acme", proxytest.AppUserPassword, "prefer", "")
	if err != nil || isTLS(conn) {
		t.Fatalf("sslmode=prefer: %v", err)
	}
}
