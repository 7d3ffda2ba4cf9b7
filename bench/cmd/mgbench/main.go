// Command mgbench benchmarks multigres side by side with direct PostgreSQL
// and PgBouncer, interleaved in one run on this machine (`make bench`).
//
// It starts a throwaway PostgreSQL cluster, PgBouncer and multigres
// instances on free 127.0.0.1 ports, loads `pgbench -i`, puts
// pgbench_accounts under a multigres tenant policy (row level security
// really on), checks that every path sees what it should, and runs the
// suites: every round runs every test against each of its targets in a
// rotating order. The citus suite (named only) starts a Citus cluster of
// its own instead (citus.go). It writes the results as one JSON file under
// bench/results/ and prints them as Markdown tables. docs/benchmarks.md
// describes the method; `mgbench docs` renders the latest results into it.
//
//	mgbench [run] [flags]   run the suites (mgbench -help lists the flags)
//	mgbench show [FILE]     print a results file as Markdown (default: the newest)
//	mgbench docs            render the newest results of each suite into docs/benchmarks.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/multigres-proxy/multigres/bench/internal/results"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root, err := findRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mgbench:", err)
		return 2
	}
	cmd := "run"
	if len(args) > 0 && (args[0] == "run" || args[0] == "show" || args[0] == "docs") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "show":
		err = show(root, args)
	case "docs":
		err = docs(root, args)
	default:
		err = runBench(root, args)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "mgbench: interrupted")
		return 130
	default:
		fmt.Fprintln(os.Stderr, "mgbench:", err)
		return 1
	}
}

func usage(fs *flag.FlagSet) {
	out := fs.Output()
	fmt.Fprint(out, `mgbench: multigres against direct PostgreSQL and PgBouncer, interleaved on this machine.

Usage:
  mgbench [run] [flags]          run the suites; write bench/results/<UTC time>-<commit>.json; print the tables
  mgbench show [-out DIR] [FILE] print a results file as Markdown (default: the newest full run in DIR)
  mgbench docs [-out DIR] [-doc FILE]
                                 render the newest results of each suite into docs/benchmarks.md,
                                 between `+results.BeginMarker+` and `+results.EndMarker+`

Suites: transaction (pgbench -S and -S -C, many clients over a small pool: multigres and PgBouncer in
transaction mode, PgBouncer with the application setting the tenant in each transaction, direct),
switching (bench/tenantload: many tenants rotating vs one), memory (proxy VmRSS per idle connection,
bench/idleconns), session (pgbench against direct, PgBouncer and multigres in session mode: guard on and
off, signed context with the native and the PL/pgSQL reader), citus (only when named, make bench-citus: a
Citus coordinator and two workers straight as the superuser and as a tenant opening its own SET LOCAL block,
against multigres in session and transaction mode). "all" is every suite but citus. See docs/benchmarks.md.

Flags of run (each falls back to the environment variable named; a flag given wins):
`)
	fs.PrintDefaults()
}

func subUsage(fs *flag.FlagSet, synopsis, what string) {
	fmt.Fprintf(fs.Output(), "Usage: mgbench %s\n  %s\n", synopsis, what)
	fs.PrintDefaults()
}

func runBench(root string, args []string) error {
	cfg, err := parseConfig(args, os.LookupEnv, root)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	h := newHarness(cfg)
	defer h.cleanup()
	r, err := h.run(ctx)
	if err != nil {
		return err
	}
	path, err := results.Save(cfg.Out, r)
	if err != nil {
		return fmt.Errorf("saving the results: %w", err)
	}
	fmt.Println(results.RenderRun(r, 2))
	logf("results written to %s", rel(root, path))
	return nil
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

func show(root string, args []string) error {
	fs := flag.NewFlagSet("mgbench show", flag.ContinueOnError)
	out := fs.String("out", filepath.Join(root, "bench/results"), "directory of the results files")
	fs.Usage = func() {
		subUsage(fs, "show [-out DIR] [FILE]", "print a results file as Markdown (default: the newest full run in DIR)")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var r *results.Run
	var err error
	if fs.NArg() > 0 {
		r, err = results.Load(fs.Arg(0))
	} else {
		r, err = newest(*out)
	}
	if err != nil {
		return err
	}
	fmt.Println(results.RenderRun(r, 2))
	return nil
}

func newest(dir string) (*results.Run, error) {
	runs, err := results.LoadDir(dir, false)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("no results in %s", dir)
	}
	return runs[len(runs)-1], nil
}

func docs(root string, args []string) error {
	fs := flag.NewFlagSet("mgbench docs", flag.ContinueOnError)
	out := fs.String("out", filepath.Join(root, "bench/results"), "directory of the results files")
	doc := fs.String("doc", filepath.Join(root, "docs/benchmarks.md"), "the document to update")
	fs.Usage = func() {
		subUsage(fs, "docs [-out DIR] [-doc FILE]", "render the newest results of each suite (quick runs left out) into the document, between "+
			results.BeginMarker+" and "+results.EndMarker)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	runs, err := results.LoadDir(*out, false)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		return fmt.Errorf("no results in %s", *out)
	}
	text, err := os.ReadFile(*doc)
	if err != nil {
		return err
	}
	updated, err := results.ReplaceResults(string(text), results.LatestPerSuite(runs, 3))
	if err != nil {
		return fmt.Errorf("%s: %w", *doc, err)
	}
	if err := os.WriteFile(*doc, []byte(updated), 0o644); err != nil {
		return err
	}
	logf("rendered the newest results of each suite into %s", rel(root, *doc))
	return nil
}
