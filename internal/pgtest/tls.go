package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertPair is a PEM certificate and key.
type CertPair struct{ CertPEM, KeyPEM []byte }

// NewCA makes a throwaway certificate authority and a server certificate it
// signs for 127.0.0.1 and localhost. It returns the CA certificate (PEM)
// and the server pair.
func NewCA() (caPEM []byte, server CertPair, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, server, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pgtest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, server, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, server, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, server, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, server, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPair{pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}, nil
}

// EnableTLS turns on ssl in a running cluster (PostgreSQL reloads it
// without a restart) with a certificate from a fresh CA, and returns the
// CA certificate in PEM form for clients that verify.
func (s *Server) EnableTLS(ctx context.Context) ([]byte, error) {
	if s.dir == "" {
		return nil, errors.New("EnableTLS needs a cluster started by pgtest")
	}
	caPEM, pair, err := NewCA()
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	data := filepath.Join(s.dir, "data")
	for name, b := range map[string][]byte{"server.crt": pair.CertPEM, "server.key": pair.KeyPEM} {
		if err := os.WriteFile(filepath.Join(data, name), b, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := asPostgresUser(nil, data); err != nil {
		return nil, err
	}
	if err := s.Exec(ctx, "postgres", "ALTER SYSTEM SET ssl = on"); err != nil {
		return nil, err
	}
	if err := s.Exec(ctx, "postgres", "SELECT pg_reload_conf()"); err != nil {
		return nil, err
	}
	return caPEM, s.waitSSL(ctx)
}

// waitSSL polls (bounded by ctx) until new sessions report ssl = on.
func (s *Server) waitSSL(ctx context.Context) error {
	for {
		conn, err := s.connectSuper(ctx)
		if err == nil {
			var on string
			err = conn.QueryRow(ctx, "SHOW ssl").Scan(&on)
			conn.Close(context.Background())
			if err == nil && on == "on" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ssl not on: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
