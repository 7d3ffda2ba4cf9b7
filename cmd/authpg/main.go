// Command authpg migrates the authpg schemas and runs their maintenance.
//
//	authpg migrate up     [-modules auth,booking,...]
//	authpg migrate status [-modules ...]
//	authpg cleanup
//
// cleanup deletes, across every tenant, expired sessions, expired
// unaccepted invitations and stale failed-attempt counters; run it from a
// scheduled job whose role bypasses row-level security (a superuser or a
// BYPASSRLS role), which it checks.
//
// The database is DATABASE_URL (or -database-url). Modules default to all
// of auth, content, booking, giftcert and intake; "business" names the
// composite of the last four. Dependencies are migrated first.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/multigres-proxy/multigres/authpg"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authpg:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage: authpg migrate up|status [-modules m1,m2] [-database-url URL] | authpg cleanup [-database-url URL]")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cleanup := len(args) >= 1 && args[0] == "cleanup"
	if !cleanup && (len(args) < 2 || args[0] != "migrate" || (args[1] != "up" && args[1] != "status")) {
		return errUsage
	}
	name, rest := "cleanup", args[1:]
	if !cleanup {
		name, rest = "migrate "+args[1], args[2:]
	}
	fs := flag.NewFlagSet("authpg "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var modules *string
	if !cleanup {
		modules = fs.String("modules", "", "comma-separated modules (default: all)")
	}
	url := fs.String("database-url", "", "connection string (default: $DATABASE_URL)")
	if err := fs.Parse(rest); err != nil {
		return errUsage
	}
	if fs.NArg() != 0 {
		return errUsage
	}
	if *url == "" {
		*url = getenv("DATABASE_URL")
	}
	if *url == "" {
		return errors.New("DATABASE_URL is not set (or pass -database-url)")
	}
	if cleanup {
		return runCleanup(ctx, *url, stdout)
	}
	var mods []authpg.Module
	for _, m := range strings.Split(*modules, ",") {
		if m = strings.TrimSpace(m); m != "" {
			mods = append(mods, authpg.Module(m))
		}
	}
	switch args[1] {
	case "up":
		res, err := authpg.MigrateURL(ctx, *url, mods...)
		for _, r := range res {
			fmt.Fprintf(stdout, "applied %s %d %s\n", r.Module, r.Version, r.Name)
		}
		if err != nil {
			return err
		}
		if len(res) == 0 {
			fmt.Fprintln(stdout, "up to date")
		}
	case "status":
		st, err := authpg.StatusURL(ctx, *url, mods...)
		if err != nil {
			return err
		}
		for _, m := range st {
			state := "up to date"
			if m.Current < m.Latest {
				state = "pending"
			}
			fmt.Fprintf(stdout, "%-9s version %d of %d  %s\n", m.Module, m.Current, m.Latest, state)
		}
	}
	return nil
}

func runCleanup(ctx context.Context, url string, stdout io.Writer) error {
	// The Store signs no session here; it needs a secret all the same, so
	// give it a throwaway one.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	store, err := authpg.Open(ctx, url, authpg.Options{SessionSecret: secret})
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	defer store.Close()
	r, err := store.CleanupAllTenants(ctx)
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	fmt.Fprintf(stdout, "deleted %d expired sessions, %d expired invitations, %d stale attempt counters\n",
		r.Sessions, r.Invitations, r.Attempts)
	return nil
}
