package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	mgsql "github.com/multigres-proxy/multigres/sql"
)

// dbFlags are the flags shared by the commands that talk to a database.
type dbFlags struct {
	url         string
	tenantRoles string
	authUser    string
	authPass    string
	noHarden    bool
	signing     bool
	noSigning   bool
}

func newDBFlagSet(name string, io IO, f *dbFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Err)
	fs.StringVar(&f.url, "database-url", envOr(io.Environ, "DATABASE_URL", ""), "superuser connection URL (env DATABASE_URL)")
	fs.StringVar(&f.tenantRoles, "tenant-roles", "app_user", "comma-separated tenant login roles")
	fs.StringVar(&f.authUser, "auth-user", "multigres_auth", "role that runs auth_query")
	fs.StringVar(&f.authPass, "auth-password", envOr(io.Environ, "MULTIGRES_AUTH_PASSWORD", ""), "password to set for the auth user (env MULTIGRES_AUTH_PASSWORD)")
	fs.BoolVar(&f.noHarden, "no-harden", false, "skip the database hardening (see docs/security.md)")
	fs.BoolVar(&f.signing, "context-signing", false, "init: turn signed context on in this database (pair with context_signing = on)")
	fs.BoolVar(&f.noSigning, "disable-context-signing", false, "init: turn signed context off again")
	return fs
}

func (f *dbFlags) connect(ctx context.Context) (*pgx.Conn, error) {
	if f.url == "" {
		return nil, errors.New("--database-url (or DATABASE_URL) is required")
	}
	conn, err := pgx.Connect(ctx, f.url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return conn, nil
}

func runInit(ctx context.Context, args []string, io IO) error {
	var f dbFlags
	if err := newDBFlagSet("init", io, &f).Parse(args); err != nil {
		return err
	}
	conn, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	opts := mgsql.Options{TenantRoles: splitList(f.tenantRoles), AuthUser: f.authUser, AuthPassword: f.authPass, Harden: !f.noHarden,
		ContextSigning: f.signing, DisableContextSigning: f.noSigning}
	if err := mgsql.Init(ctx, conn, opts); err != nil {
		return err
	}
	reader, err := mgsql.ContextReader(ctx, conn)
	if err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "multigres setup applied (tenant roles: %s, auth user: %s, hardening: %v, context signing: %s, context reader: %s)\n",
		strings.Join(opts.TenantRoles, ", "), f.authUser, opts.Harden, signingWord(f), reader)
	return nil
}

func runProtect(ctx context.Context, args []string, io IO, protect bool) error {
	var f dbFlags
	name := map[bool]string{true: "protect", false: "unprotect"}[protect]
	fs := newDBFlagSet(name, io, &f)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 || (!protect && fs.NArg() != 1) {
		return fmt.Errorf("usage: multigres %s [--database-url URL] TABLE%s", name, map[bool]string{true: " [COLUMN]", false: ""}[protect])
	}
	conn, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	table := fs.Arg(0)
	if !protect {
		if err := mgsql.Unprotect(ctx, conn, table); err != nil {
			return err
		}
		fmt.Fprintf(io.Out, "%s: tenant policy removed\n", table)
		return nil
	}
	column := "tenant_id"
	if fs.NArg() == 2 {
		column = fs.Arg(1)
	}
	if err := mgsql.Protect(ctx, conn, table, column); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "%s: protected on column %s\n", table, column)
	return nil
}

func runStatus(ctx context.Context, args []string, io IO) error {
	var f dbFlags
	if err := newDBFlagSet("status", io, &f).Parse(args); err != nil {
		return err
	}
	conn, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tables, err := mgsql.Status(ctx, conn)
	if err != nil {
		return err
	}
	items, err := mgsql.HardeningStatus(ctx, conn, splitList(f.tenantRoles))
	if err != nil {
		return err
	}
	printStatus(io.Out, tables, items)
	for _, it := range items {
		// Advisory items are ones init cannot fix (e.g. other databases
		// tenants could connect to); they are printed, not fatal.
		if !it.OK && !it.Advisory {
			return errors.New("hardening items missing; run multigres init")
		}
	}
	return nil
}

func printStatus(w io.Writer, tables []mgsql.TableStatus, items []mgsql.HardeningItem) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The CITUS column (distributed, reference, local) appears when Citus
	// knows any of the tables.
	citus := slices.ContainsFunc(tables, func(t mgsql.TableStatus) bool { return t.Citus != "" })
	header := "TABLE\tRLS\tFORCED\tPOLICIES\tPROTECTED"
	if citus {
		header += "\tCITUS"
	}
	fmt.Fprintln(tw, header)
	for _, t := range tables {
		fmt.Fprintf(tw, "%s.%s\t%v\t%v\t%d\t%v", t.Schema, t.Table, t.RLSEnabled, t.RLSForced, t.Policies, t.Protected)
		if citus {
			kind := t.Citus
			if kind == "" {
				kind = "-"
			}
			fmt.Fprintf(tw, "\t%s", kind)
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "\nHARDENING\tSTATUS\tDETAIL")
	for _, it := range items {
		status := "ok"
		switch {
		case !it.OK && it.Advisory:
			status = "advisory"
		case !it.OK:
			status = "missing"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Item, status, it.Detail)
	}
	tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func signingWord(f dbFlags) string {
	switch {
	case f.signing:
		return "on"
	case f.noSigning:
		return "off"
	}
	return "unchanged"
}
