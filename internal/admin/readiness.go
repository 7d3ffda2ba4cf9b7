package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/multigres-proxy/multigres/internal/wire"
)

// ReadyTimeout bounds one readiness probe of the upstream.
const ReadyTimeout = 2 * time.Second

// readyCacheFor keeps a probe's verdict, so that a burst of /readyz requests
// opens one upstream connection, not one each.
const readyCacheFor = time.Second

// readiness probes the upstream for /readyz.
type readiness struct {
	proxy  Health
	logger *slog.Logger

	mu      sync.Mutex // one probe at a time; others wait for its verdict
	at      time.Time
	lastErr error
}

func (r *readiness) serveHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.proxy.Draining() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "shutting down\n")
		return
	}
	if err := r.check(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "upstream unavailable\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

func (r *readiness) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < readyCacheFor {
		return r.lastErr
	}
	// Not the request's context: a client hanging up must not leave a
	// cached failure behind.
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	addr := r.proxy.Config().UpstreamAddr()
	err := ProbeUpstream(ctx, addr)
	if err != nil {
		r.logger.Warn("readiness probe failed", "upstream", addr, "err", err)
	}
	r.at, r.lastErr = time.Now(), err
	return err
}

// sslRequest is the 8-byte SSLRequest packet: length 8, code 80877103.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// ProbeUpstream checks that a PostgreSQL server answers at addr: it dials,
// sends an SSLRequest and expects 'S' or 'N'. After 'S' it completes the TLS
// handshake before closing, and after 'N' it closes at once; PostgreSQL
// logs neither (a connection that ends before its startup packet is not
// reported), so frequent probes do not fill the server log. No credentials
// are sent.
func ProbeUpstream(ctx context.Context, addr string) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("probe upstream: %w", err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(sslRequest); err != nil {
		return fmt.Errorf("probe upstream: send SSLRequest: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return fmt.Errorf("probe upstream: read answer: %w", err)
	}
	switch b[0] {
	case wire.SSLRefused:
		return nil
	case wire.SSLAccepted:
		return finishTLSProbe(ctx, nc, addr)
	default:
		return fmt.Errorf("probe upstream: unexpected answer %q to SSLRequest", b[0])
	}
}

// finishTLSProbe completes the TLS handshake the server agreed to and
// closes it cleanly.
func finishTLSProbe(ctx context.Context, nc net.Conn, addr string) error {
	host, _, _ := net.SplitHostPort(addr)
	// Only the handshake matters here, not who the server is.
	tc := tls.Client(nc, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("probe upstream: TLS handshake: %w", err)
	}
	// close_notify first: a TLS session cut without it is logged by
	// PostgreSQL as "could not receive data from client".
	_ = tc.Close()
	return nil
}
