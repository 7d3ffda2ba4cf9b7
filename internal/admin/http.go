package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTPServer is the admin HTTP server on admin_listen: /metrics, /healthz
// and /readyz.
type HTTPServer struct {
	http *http.Server
	ln   net.Listener
	done chan struct{}
}

// HTTPHandler serves /metrics from metrics (the registry internal/metrics
// fills), /healthz (200 while the process serves) and /readyz (200 when the
// upstream answers a protocol probe within ReadyTimeout and p is not
// shutting down, else 503).
func HTTPHandler(metrics prometheus.Gatherer, p Health, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn), Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	probe := &readiness{proxy: p, logger: logger}
	mux.HandleFunc("GET /readyz", probe.serveHTTP)
	return mux
}

// StartHTTP listens on addr and serves HTTPHandler in the background until
// Shutdown. An addr with port 0 picks a free port; see Addr.
func StartHTTP(addr string, metrics prometheus.Gatherer, p Health, logger *slog.Logger) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listen: %w", err)
	}
	s := &HTTPServer{ln: ln, done: make(chan struct{}), http: &http.Server{
		Handler: HTTPHandler(metrics, p, logger),
		// Bounded everywhere: the admin port must not be a way to pin
		// goroutines or memory.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin server failed", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the admin HTTP server listens on.
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// Shutdown stops the admin HTTP server, letting requests in flight finish
// until ctx is done.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
	}
	<-s.done
	if err != nil {
		return fmt.Errorf("admin shutdown: %w", err)
	}
	return nil
}
