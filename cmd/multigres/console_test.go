package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestConsoleReloadShutdown runs the real binary: RELOAD on the admin
// console re-reads the config file as SIGHUP does (and reports a rejected
// one), SHUTDOWN exits like SIGTERM.
func TestConsoleReloadShutdown(t *testing.T) {
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	bin := buildBinary(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "multigres.conf")
	// app_user is a real login role, so it can be a console user too.
	base := []string{
		fmt.Sprintf("port = %d", port), fmt.Sprintf("upstream_port = %d", pg.Port), "server_tls_mode = disable",
		"auth_password = " + proxytest.AuthPassword, "shutdown_timeout = 2s", "admin_users = app_user", "auth_dbname = " + db,
	}
	writeConf(t, conf, base...)
	p := startProc(t, bin, conf)
	stderr, exited := p.stderr, p.exited
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitListening(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(proxytest.URL(addr, "app_user", proxytest.AppUserPassword, "multigres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	con, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("console: %v\n%s", err, stderr.String())
	}
	defer con.Close(ctx)
	var version string
	if err := con.QueryRow(ctx, "SHOW VERSION").Scan(&version); err != nil || !strings.HasPrefix(version, "multigres ") {
		t.Fatalf("SHOW VERSION: %q %v", version, err)
	}

	writeConf(t, conf, append(base, "tenant_value_pattern = ^[a-z]{1,3}$")...)
	if _, err := con.Exec(ctx, "RELOAD"); err != nil {
		t.Fatalf("RELOAD: %v", err)
	}
	var pattern string
	rows, err := con.Query(ctx, "SHOW CONFIG")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var key, value, def, ch string
		if err := rows.Scan(&key, &value, &def, &ch); err != nil {
			t.Fatal(err)
		}
		if key == "tenant_value_pattern" {
			pattern = value
		}
	}
	if pattern != "^[a-z]{1,3}$" {
		t.Errorf("after RELOAD tenant_value_pattern = %q", pattern)
	}
	if _, err := pgx.Connect(ctx, proxytest.URL(addr, "app_user.acme", proxytest.AppUserPassword, db)); err == nil {
		t.Error("RELOAD did not apply: app_user.acme (4 letters) logged in")
	}

	writeConf(t, conf, append(base, "port = banana")...)
	var pe *pgconn.PgError
	if _, err := con.Exec(ctx, "RELOAD"); !errors.As(err, &pe) || !strings.Contains(pe.Message, "configuration rejected") {
		t.Errorf("RELOAD of a bad config: %v", err)
	}

	if _, err := con.Exec(ctx, "SHUTDOWN"); err != nil {
		t.Fatalf("SHUTDOWN: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SHUTDOWN: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SHUTDOWN\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "SHUTDOWN on the admin console") {
		t.Errorf("log does not name the console: %s", stderr.String())
	}
}
