package escape

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestSnoopingAndKillingAnotherTenant: globex runs a query carrying a
// secret; acme, through the proxy, tries to read it from pg_stat_activity
// and to terminate globex's backend, by every spelling it has.
func TestSnoopingAndKillingAnotherTenant(t *testing.T) {
	t.Parallel()
	for _, pm := range poolModes {
		t.Run(pm, func(t *testing.T) {
			t.Parallel()
			snoopingAndKillingAnotherTenant(t, pm)
		})
	}
}

func snoopingAndKillingAnotherTenant(t *testing.T, pm string) {
	w := getWorld(t)
	ctx := testCtx(t)
	victim := w.connectMode(t, pm, "app_user.globex")
	const marker = "globex-secret-7f3a"
	var serverPid int
	if err := victim.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&serverPid); err != nil {
		t.Fatal(err)
	}
	// Leave the marker as the victim's last query text.
	if _, err := victim.Exec(ctx, "SELECT '"+marker+"'"); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		attacker := w.connectMode(t, pm, "app_user."+w.tenant())
		for _, q := range []string{
			"SELECT coalesce(string_agg(query, ' '), '') FROM pg_stat_activity",
			"SELECT coalesce(string_agg(query, ' '), '') FROM pg_catalog.pg_stat_get_activity(NULL)",
		} {
			var seen string
			err := attacker.QueryRow(ctx, q, mode).Scan(&seen)
			if err == nil && strings.Contains(seen, marker) {
				t.Fatalf("ESCAPE: %s shows the victim's query", q)
			}
		}
		for _, q := range []string{
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
			"SELECT pg_cancel_backend(pid) FROM pg_stat_activity",
		} {
			_, _ = attacker.Exec(ctx, q, mode)
		}
		_, _ = attacker.Exec(ctx, "SELECT pg_terminate_backend($1)", mode, serverPid)
		_, _ = attacker.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend("+itoa(serverPid)+")", mode)
	}
	var one int
	if err := victim.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("ESCAPE: victim's backend was terminated: %v", err)
	}
}

// TestLargeObjectOfAnotherTenant: a large object written for globex (large
// objects are not covered by RLS) cannot be read by acme.
func TestLargeObjectOfAnotherTenant(t *testing.T) {
	t.Parallel()
	for _, pm := range poolModes {
		t.Run(pm, func(t *testing.T) {
			t.Parallel()
			largeObjectOfAnotherTenant(t, pm)
		})
	}
}

func largeObjectOfAnotherTenant(t *testing.T, pm string) {
	w := getWorld(t)
	ctx := testCtx(t)
	admin := w.pg.Connect(t, w.db)
	var oid uint32
	if err := admin.QueryRow(ctx, "SELECT lo_from_bytea(0, 'globex-lo-secret'::bytea)").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		attacker := w.connectMode(t, pm, "app_user."+w.tenant())
		for _, q := range []string{
			"SELECT encode(lo_get(" + itoa(int(oid)) + "), 'escape')",
			"SELECT encode(data, 'escape') FROM pg_largeobject",
			"SELECT encode(loread(lo_open(" + itoa(int(oid)) + ", 262144), 100), 'escape')",
		} {
			var got string
			if err := attacker.QueryRow(ctx, q, mode).Scan(&got); err == nil && strings.Contains(got, "globex") {
				t.Fatalf("ESCAPE: %s read %q", q, got)
			}
		}
		// pgx's large-object API uses the functions over the extended protocol.
		tx, err := attacker.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		los := tx.LargeObjects()
		lo, err := los.Open(ctx, oid, pgx.LargeObjectModeRead)
		if err == nil {
			buf := make([]byte, 64)
			n, _ := lo.Read(buf)
			if strings.Contains(string(buf[:n]), "globex") {
				t.Fatal("ESCAPE: read another tenant's large object")
			}
		}
		_ = tx.Rollback(ctx)
	}
}

// TestCrossTenantNotify: globex listens (as the bypass user would have to,
// since tenants may not); acme's NOTIFY, in every form, never arrives.
func TestCrossTenantNotify(t *testing.T) {
	t.Parallel()
	for _, pm := range poolModes {
		t.Run(pm, func(t *testing.T) {
			t.Parallel()
			crossTenantNotify(t, pm)
		})
	}
}

func crossTenantNotify(t *testing.T, pm string) {
	w := getWorld(t)
	ctx := testCtx(t)
	listener, err := pgx.Connect(ctx, w.pg.SuperURL(w.db))
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "LISTEN orders"); err != nil {
		t.Fatal(err)
	}
	// Tenants cannot listen either.
	victim := w.connectMode(t, pm, "app_user.globex")
	_, err = victim.Exec(ctx, "LISTEN orders")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("tenant LISTEN: %v", err)
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		attacker := w.connectMode(t, pm, "app_user."+w.tenant())
		_, _ = attacker.Exec(ctx, "NOTIFY orders, 'from-acme'", mode)
		_, _ = attacker.Exec(ctx, "SELECT pg_notify('orders', 'from-acme')", mode)
		_, _ = attacker.Exec(ctx, "SELECT pg_catalog.pg_notify('orders', 'from-acme')", mode)
	}
	// A notification sent after the attacks proves delivery works; nothing
	// may arrive before it.
	if _, err := w.pg.Connect(t, w.db).Exec(ctx, "NOTIFY orders, 'sentinel'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Payload != "sentinel" {
		t.Fatalf("ESCAPE: tenant notification delivered: %q", n.Payload)
	}
}

// TestStartupCannotSetContext: the context and role cannot be chosen at
// startup, through options or as startup parameters.
func TestStartupCannotSetContext(t *testing.T) {
	t.Parallel()
	for _, pm := range poolModes {
		t.Run(pm, func(t *testing.T) {
			t.Parallel()
			startupCannotSetContext(t, pm)
		})
	}
}

func startupCannotSetContext(t *testing.T, pm string) {
	w := getWorld(t)
	ctx := testCtx(t)
	params := []map[string]string{
		{"options": "-c app.current_tenant_id=globex"},
		{"options": "-capp.current_tenant_id=globex"},
		{"options": "--app.current-tenant-id=globex"},
		{"options": "-c search_path=public -c role=postgres"},
		{"options": "-c session_authorization=postgres"},
		{"app.current_tenant_id": "globex"},
		{"role": "postgres"},
		{"options": "-ec app.current_tenant_id=globex"},
		{"options": "-Fc role=postgres"},
		{"options": "-c standard_conforming_strings=off"},
		{"standard_conforming_strings": "off"},
		{"options": "-c client_encoding=BIG5"},
		{"client_encoding": "SJIS"},
	}
	for _, p := range params {
		cfg, err := pgx.ParseConfig(proxytest.URL(w.proxyFor(pm).Addr, "app_user.acme", proxytest.AppUserPassword, w.db))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range p {
			cfg.RuntimeParams[k] = v
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("ESCAPE: startup %v accepted", p)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" {
			t.Fatalf("startup %v: %v", p, err)
		}
	}
}

// TestHostileUsernames: quotes, semicolons, backslashes, NUL-like bytes
// and huge values never reach SQL and never hang.
func TestHostileUsernames(t *testing.T) {
	t.Parallel()
	for _, pm := range poolModes {
		t.Run(pm, func(t *testing.T) {
			t.Parallel()
			hostileUsernames(t, pm)
		})
	}
}

func hostileUsernames(t *testing.T, pm string) {
	w := getWorld(t)
	ctx := testCtx(t)
	for _, user := range []string{
		"app_user.globex'; SET app.current_tenant_id = 'globex",
		`app_user.acme\'`, "app_user.acme;RESET ALL", "app_user.\"globex\"",
		"app_user.globex\u200b", "app_user." + strings.Repeat("g", 5000), "app_user.acme:globex",
	} {
		cfg, err := pgx.ParseConfig(proxytest.URL(w.proxyFor(pm).Addr, "x", proxytest.AppUserPassword, w.db))
		if err != nil {
			t.Fatal(err)
		}
		cfg.User = user
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			conn.Close(ctx)
			t.Fatalf("ESCAPE: username %q accepted", user[:min(len(user), 40)])
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28000" {
			t.Fatalf("username %q: %v", user[:min(len(user), 40)], err)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
