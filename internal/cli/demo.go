package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/frontend"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// The demo's fixed credentials are the seed guide's.
const (
	demoDB           = "mydb"
	demoAppPassword  = "app_user_password"
	demoAuthPassword = "multigres_auth_demo"
)

type demoFlags struct {
	dir    string
	port   int
	pgPort int
	check  bool
}

func runDemo(ctx context.Context, args []string, io IO) error {
	var f demoFlags
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Err)
	fs.StringVar(&f.dir, "dir", ".multigres-demo", "directory of the demo PostgreSQL cluster (reused between runs)")
	fs.IntVar(&f.port, "port", 6432, "proxy port")
	fs.IntVar(&f.pgPort, "pg-port", 54329, "PostgreSQL port")
	fs.BoolVar(&f.check, "check", false, "set up in a temporary cluster on free ports, prove isolation, print the results and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.check {
		return demoCheck(ctx, io)
	}
	pg, err := pgtest.StartAt(f.dir, f.pgPort)
	if err != nil {
		return fmt.Errorf("start PostgreSQL in %s: %w", f.dir, err)
	}
	defer pg.Stop()
	if err := demoSetup(ctx, pg); err != nil {
		return err
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.port)))
	if err != nil {
		return fmt.Errorf("listen on port %d (is another multigres running?): %w", f.port, err)
	}
	srv, err := demoServer(pg, io)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	printDemo(io, pg, f.port, f.dir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-sig:
		fmt.Fprintln(io.Out, "\nstopping multigres and PostgreSQL ...")
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	return nil
}

// demoSetup creates mydb, applies the setup SQL and the seed's contacts
// table with rows for acme and globex. It is idempotent.
func demoSetup(ctx context.Context, pg *pgtest.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var exists bool
	admin, err := pgx.Connect(ctx, pg.SuperURL("postgres"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer admin.Close(context.Background())
	if err := admin.QueryRow(ctx, "SELECT true FROM pg_database WHERE datname = $1", demoDB).Scan(&exists); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check database: %w", err)
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+demoDB); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	conn, err := pgx.Connect(ctx, pg.SuperURL(demoDB))
	if err != nil {
		return fmt.Errorf("connect %s: %w", demoDB, err)
	}
	defer conn.Close(context.Background())
	if err := mgsql.Init(ctx, conn, mgsql.Options{AuthPassword: demoAuthPassword, Harden: true}); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `
		ALTER ROLE app_user PASSWORD 'app_user_password';
		CREATE TABLE IF NOT EXISTS contacts (
			id serial PRIMARY KEY, tenant_id varchar(255) NOT NULL, name text NOT NULL, email text);
		SELECT multigres_protect('contacts', 'tenant_id');
		INSERT INTO contacts (tenant_id, name, email)
			SELECT * FROM (VALUES ('acme', 'Alice', 'alice@acme.example'), ('acme', 'Bob', 'bob@acme.example'),
			                      ('globex', 'Gina', 'gina@globex.example')) v
			WHERE NOT EXISTS (SELECT 1 FROM contacts);`, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	return nil
}

func demoConfig(pg *pgtest.Server) *config.Config {
	cfg := config.Default()
	cfg.UpstreamHost, cfg.UpstreamPort = pg.Host, pg.Port
	cfg.AuthPassword = demoAuthPassword
	cfg.ServerTLSMode = "disable"
	return cfg
}

func demoServer(pg *pgtest.Server, io IO) (*frontend.Server, error) {
	cfg := demoConfig(pg)
	return frontend.New(cfg, NewLogger(cfg, io.Err))
}

func printDemo(io IO, pg *pgtest.Server, port int, dir string) {
	abs, _ := filepath.Abs(dir)
	url := func(user, pw string) string {
		return fmt.Sprintf("postgresql://%s:%s@127.0.0.1:%d/%s", user, pw, port, demoDB)
	}
	fmt.Fprintf(io.Out, `
multigres demo is running.
  proxy:      127.0.0.1:%d  (tenant in the username: app_user.<tenant>)
  PostgreSQL: 127.0.0.1:%d  (data in %s)

Try (each tenant sees only its own contacts):
  psql "%s" -c "SELECT * FROM contacts"
  psql "%s" -c "SELECT * FROM contacts"
  psql "%s" -c "DELETE FROM contacts WHERE tenant_id = 'globex'"   # DELETE 0
  psql "%s" -c "SELECT * FROM contacts"   # superuser_bypass: all tenants
  psql "%s" -c "SELECT 1"   # error: Username must contain context values separated by '.'

Ctrl-C stops the proxy and PostgreSQL.
`, port, pg.Port, abs, url("app_user.acme", demoAppPassword), url("app_user.globex", demoAppPassword),
		url("app_user.acme", demoAppPassword), url("postgres", pgtest.SuperPassword), url("app_user", demoAppPassword))
}
