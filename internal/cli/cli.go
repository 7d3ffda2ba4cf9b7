// Package cli implements the multigres subcommands other than serving:
// init, protect, unprotect, status, check-config, version and demo. Each
// is a function from arguments to an exit code, so tests can run them
// in-process.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/multigres-proxy/multigres/internal/config"
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "0.1.0-dev"

// IO bundles the streams a command writes to.
type IO struct {
	Out, Err io.Writer
	Environ  []string
}

// Commands lists the subcommands with a one-line description.
var Commands = []struct{ Name, Help string }{
	{"serve", "run the proxy (the default when no subcommand is given)"},
	{"init", "apply the setup SQL to a database (idempotent)"},
	{"protect", "protect TABLE [COLUMN]: enable tenant RLS on a table"},
	{"unprotect", "unprotect TABLE: remove the tenant policy"},
	{"status", "show protected tables and hardening items"},
	{"check-config", "validate the configuration and print it, without secrets"},
	{"demo", "start a throwaway PostgreSQL and the proxy on 127.0.0.1:6432 (--check: prove isolation and exit)"},
	{"version", "print the version"},
}

// Run dispatches a subcommand. It returns the process exit code.
func Run(ctx context.Context, name string, args []string, io IO) int {
	var err error
	switch name {
	case "init":
		err = runInit(ctx, args, io)
	case "protect":
		err = runProtect(ctx, args, io, true)
	case "unprotect":
		err = runProtect(ctx, args, io, false)
	case "status":
		err = runStatus(ctx, args, io)
	case "check-config":
		err = runCheckConfig(args, io)
	case "demo":
		err = runDemo(ctx, args, io)
	case "version":
		fmt.Fprintf(io.Out, "multigres %s\n", Version)
	case "help", "-h", "--help":
		usage(io.Out)
	default:
		fmt.Fprintf(io.Err, "multigres: unknown command %q\n", name)
		usage(io.Err)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(io.Err, "multigres %s: %v\n", name, err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: multigres [command] [--config FILE] [--key value ...]")
	for _, c := range Commands {
		fmt.Fprintf(w, "  %-13s %s\n", c.Name, c.Help)
	}
	fmt.Fprintln(w, "Run `multigres serve --help` for every configuration flag.")
}

func runCheckConfig(args []string, io IO) error {
	cfg, err := config.Load(args, io.Environ)
	if err != nil {
		return err
	}
	_, err = cfg.WriteTo(io.Out)
	return err
}

// NewLogger builds the slog logger that log_level and log_format describe.
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func envOr(environ []string, key, def string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return def
}
