package frontend

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/multigres-proxy/multigres/internal/config"
)

// clientTLSConfig loads tls_cert/tls_key. The files are read at startup
// and on every reload, so a rotated certificate applies to new connections.
func clientTLSConfig(cfg *config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" || cfg.ClientTLSMode == "disable" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// serverTLSConfig builds the upstream TLS config of a cluster (mode,
// CA file and host name). As in libpq, require encrypts without
// verifying; verify-full checks the chain (server_tls_ca, or the system
// roots) and the host name.
func serverTLSConfig(cl config.ClusterConfig) (*tls.Config, error) {
	switch cl.ServerTLSMode {
	case "", "disable":
		return nil, nil
	case "verify-full":
		tc := &tls.Config{ServerName: cl.Host, MinVersion: tls.VersionTLS12}
		if cl.ServerTLSCA != "" {
			pem, err := os.ReadFile(cl.ServerTLSCA)
			if err != nil {
				return nil, fmt.Errorf("server_tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("server_tls_ca: no certificates in %s", cl.ServerTLSCA)
			}
			tc.RootCAs = pool
		}
		return tc, nil
	default:
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil //nolint:gosec // libpq "require" semantics
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return b
}
