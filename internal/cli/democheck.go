package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pgtest"
)

// demoCheck runs the demo setup in a throwaway cluster and proves the
// isolation the README promises, printing each result.
func demoCheck(ctx context.Context, io IO) error {
	pg, err := pgtest.Start()
	if err != nil {
		return err
	}
	defer pg.Stop()
	if err := demoSetup(ctx, pg); err != nil {
		return err
	}
	srv, err := demoServer(pg, io)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutCtx)
	}()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	url := func(user, pw string) string {
		return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, pw, l.Addr(), demoDB)
	}
	checks := []struct {
		name, user, pw, sql string
		want                int64
	}{
		{"acme sees its 2 contacts", "app_user.acme", demoAppPassword, "SELECT count(*) FROM contacts WHERE tenant_id = 'acme'", 2},
		{"acme sees no other tenant", "app_user.acme", demoAppPassword, "SELECT count(*) FROM contacts WHERE tenant_id <> 'acme'", 0},
		{"globex sees its 1 contact", "app_user.globex", demoAppPassword, "SELECT count(*) FROM contacts", 1},
		{"acme cannot delete globex rows", "app_user.acme", demoAppPassword, "WITH d AS (DELETE FROM contacts WHERE tenant_id = 'globex' RETURNING 1) SELECT count(*) FROM d", 0},
		{"unknown tenant sees zero rows", "app_user.initech", demoAppPassword, "SELECT count(*) FROM contacts", 0},
		{"bypass user sees all 3", "postgres", pgtest.SuperPassword, "SELECT count(*) FROM contacts", 3},
	}
	failed := 0
	for _, c := range checks {
		got, err := countAs(ctx, url(c.user, c.pw), c.sql)
		ok := err == nil && got == c.want
		fmt.Fprintf(io.Out, "%-4s %-34s %-16s %d (want %d)%s\n", mark(ok), c.name, c.user, got, c.want, errSuffix(err))
		if !ok {
			failed++
		}
	}
	_, err = countAs(ctx, url("app_user", demoAppPassword), "SELECT 1")
	var pe *pgconn.PgError
	ok := errors.As(err, &pe) && pe.Code == "28000" && pe.Message == "Username must contain context values separated by '.'"
	fmt.Fprintf(io.Out, "%-4s %-34s %-16s %v\n", mark(ok), "missing tenant is refused", "app_user", err)
	if !ok {
		failed++
	}
	if failed > 0 {
		return fmt.Errorf("%d demo check(s) failed", failed)
	}
	fmt.Fprintln(io.Out, "demo check passed: tenants are isolated by the database")
	return nil
}

func countAs(ctx context.Context, url, sql string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1, err
	}
	defer conn.Close(context.Background())
	var n int64
	err = conn.QueryRow(ctx, sql).Scan(&n)
	return n, err
}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " error: " + err.Error()
}
