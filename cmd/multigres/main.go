// Command multigres is a PostgreSQL proxy that puts the tenant in the
// username and lets row-level security isolate tenants. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/multigres-proxy/multigres/internal/admin"
	"github.com/multigres-proxy/multigres/internal/cli"
	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/metrics"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && args[0] != "serve" {
		os.Exit(cli.Run(context.Background(), args[0], args[1:], cli.IO{Out: os.Stdout, Err: os.Stderr, Environ: os.Environ()}))
	}
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	os.Exit(serve(args))
}

// serve: flags → config → Serve; SIGTERM/SIGINT → Shutdown; SIGHUP → reload.
func serve(args []string) int {
	cfg, err := config.Load(args, os.Environ())
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(os.Stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "multigres: %v\n", err)
		return 2
	}
	logger := cli.NewLogger(cfg, os.Stderr)
	if cfg.Workers > 0 {
		runtime.GOMAXPROCS(cfg.Workers)
	}
	srv, err := frontend.New(cfg, logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "multigres: %v\n", err)
		return 2
	}
	// Hooks go in before the first connection is accepted.
	var adminHTTP *admin.HTTPServer
	if cfg.AdminListen != "" {
		m := metrics.New(cfg.MetricsMaxTenants)
		m.Instrument(srv)
		if adminHTTP, err = admin.StartHTTP(cfg.AdminListen, m.Registry, srv, logger); err != nil {
			fmt.Fprintf(os.Stderr, "multigres: admin_listen: %v\n", err)
			return 2
		}
		logger.Info("admin server listening", "addr", adminHTTP.Addr(), "paths", "/metrics /healthz /readyz")
	}
	// The admin console's RELOAD and SHUTDOWN take the SIGHUP and SIGTERM
	// paths below.
	admin.Version = cli.Version
	consoleShutdown := make(chan struct{}, 1)
	srv.SetControl(func() error { return reload(srv, args) }, func() {
		select {
		case consoleShutdown <- struct{}{}:
		default:
		}
	})
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	logger.Info("multigres listening", "addr", cfg.ListenAddr(), "upstream", cfg.UpstreamAddr(), "version", cli.Version)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for {
		select {
		case err := <-served:
			logger.Error("serve failed", "err", err)
			return 1
		case <-consoleShutdown:
			logger.Info("shutting down", "by", "SHUTDOWN on the admin console", "timeout", srv.Config().ShutdownTimeout)
			return shutdown(srv, adminHTTP, logger)
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				_ = reload(srv, args)
				continue
			}
			logger.Info("shutting down", "signal", sig.String(), "timeout", srv.Config().ShutdownTimeout)
			return shutdown(srv, adminHTTP, logger)
		}
	}
}

// shutdown drains: SIGTERM and the console's SHUTDOWN.
func shutdown(srv *frontend.Server, adminHTTP *admin.HTTPServer, logger *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), srv.Config().ShutdownTimeout)
	// /readyz answers 503 while sessions drain; the admin server stops
	// last, so probes see the drain.
	err := srv.Shutdown(ctx)
	cancel()
	if err != nil {
		logger.Warn("shutdown timeout reached; closed remaining connections")
	}
	shutdownAdmin(adminHTTP, logger)
	return 0
}

func shutdownAdmin(adminHTTP *admin.HTTPServer, logger *slog.Logger) {
	if adminHTTP == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := adminHTTP.Shutdown(ctx); err != nil {
		logger.Warn("admin server shutdown", "err", err)
	}
}

// reload re-reads the configuration (SIGHUP, or RELOAD on the admin
// console, which shows the error to the administrator).
func reload(srv *frontend.Server, args []string) error {
	cfg, err := config.Load(args, os.Environ())
	if err != nil {
		srv.Logger.Error("reload: configuration rejected; keeping the old one", "err", err)
		return fmt.Errorf("configuration rejected, the old one stays: %w", err)
	}
	restart, err := srv.Reload(cfg)
	if err != nil {
		srv.Logger.Error("reload failed; keeping the old configuration", "err", err)
		return fmt.Errorf("reload failed, the old configuration stays: %w", err)
	}
	if len(restart) > 0 {
		srv.Logger.Warn("reload: these keys changed but need a restart", "keys", restart)
	}
	return nil
}
