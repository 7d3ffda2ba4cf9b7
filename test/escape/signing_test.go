package escape

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
	mgsql "github.com/multigres-proxy/multigres/sql"
)

// TestSigningHoldsWithoutGuard switches the SQL guard off and context
// signing on: every attack that changes the context must now leave the
// tenant with zero rows, never another tenant's rows, and unable to write
// them. Each layer must hold on its own.
func TestSigningHoldsWithoutGuard(t *testing.T) {
	t.Parallel()
	for _, reader := range []string{"native", "plpgsql"} {
		t.Run(reader, func(t *testing.T) {
			t.Parallel()
			if reader == "native" && pgtest.NativeLibrary() == "" {
				t.Skip("native context reader not built: run scripts/build-native.sh (make test does)")
			}
			pg, db := signedDB(t, fmt.Sprintf(`
				SELECT multigres.install_context_readers(true, %t);
				CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id varchar(255) NOT NULL, name text NOT NULL);
				SELECT multigres_protect('contacts', 'tenant_id');
				INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'a1'), ('globex', 'globex-1'), ('globex', 'globex-2');`, reader == "native"))
			check := pg.Connect(t, db)
			form, err := mgsql.ContextReader(testCtx(t), check)
			if err != nil || form != reader {
				t.Fatalf("context reader %q (%v), want %q", form, err, reader)
			}
			attempts := 0
			for _, poolMode := range poolModes {
				p := signedProxy(t, pg, poolMode, false)
				attempts += signedAttacks(t, proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db), poolMode, reader)
			}
			var globex int
			if err := check.QueryRow(testCtx(t), "SELECT count(*) FROM contacts WHERE tenant_id = 'globex' AND name LIKE 'globex-%'").Scan(&globex); err != nil || globex != 2 {
				t.Fatalf("ESCAPE: globex rows now %d (%v)", globex, err)
			}
			t.Logf("%d attempts with the guard off and signing on (%s reader)", attempts, reader)
		})
	}
}

// signedAttacks runs every attack against url (guard off, signing on) and
// returns the number of attempts.
func signedAttacks(t *testing.T, url, poolMode, reader string) int {
	t.Helper()
	ctx := testCtx(t)
	attempts := 0
	// Signing on: the tenant's own rows are there.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n); err != nil || n != 1 {
		t.Fatalf("acme sees %d rows with signing on: %v", n, err)
	}
	// The proxy primed the context: the portable reader has its
	// per-session fingerprint (sql/setup.sql, multigres.context_prime) and
	// needs no HMAC per statement. (The native reader keeps the value in
	// backend memory instead; sql's TestNativeContextReader proves that.)
	if reader == "plpgsql" {
		var fp string
		if err := conn.QueryRow(ctx, "SELECT current_setting('multigres_fp.app.current_tenant_id', true)").Scan(&fp); err != nil || len(fp) != 32 {
			t.Fatalf("%s mode: no signed-context fingerprint after login (%q, %v)", poolMode, fp, err)
		}
	}
	conn.Close(ctx)

	for _, a := range attacks {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			if mode == pgx.QueryExecModeSimpleProtocol && a.HasArgs() {
				continue
			}
			attempts++
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range a.Steps {
				_, _ = conn.Exec(ctx, st.SQL, append([]any{mode}, st.Args...)...)
			}
			_, _ = conn.Exec(ctx, "ROLLBACK", pgx.QueryExecModeSimpleProtocol)
			_, _ = conn.Exec(ctx, "RESET row_security", pgx.QueryExecModeSimpleProtocol)
			rows, err := conn.Query(ctx, "SELECT DISTINCT tenant_id FROM contacts", mode)
			if err == nil {
				seen, _ := pgx.CollectRows(rows, pgx.RowTo[string])
				for _, s := range seen {
					if s != "acme" {
						t.Fatalf("ESCAPE (%s, guard off, signing on, %s reader, %s mode): sees %q rows", a.Name, reader, poolMode, s)
					}
				}
			}
			var user string
			if err := conn.QueryRow(ctx, "SELECT current_user", mode).Scan(&user); err == nil && user != "app_user" {
				t.Fatalf("ESCAPE (%s): current_user %q", a.Name, user)
			}
			conn.Close(ctx)
		}
	}
	return attempts
}

// TestControlWithoutLayers is the negative control: with the guard off and
// signing off, the same one-line attack does escape. It proves the suite
// can see an escape, and that the layers above are what stop it.
func TestControlWithoutLayers(t *testing.T) {
	t.Parallel()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.Setup(t, pg, db)
	ctx := testCtx(t)
	if err := pg.Exec(ctx, db, `
		CREATE TABLE contacts (id serial PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL);
		SELECT multigres_protect('contacts', 'tenant_id');
		INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'a1'), ('globex', 'g1');`); err != nil {
		t.Fatal(err)
	}
	p := proxytest.StartProxy(t, pg, func(c *config.Config) { c.Guard = false })
	conn, err := pgx.Connect(ctx, proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT set_config('app.current_tenant_id', 'globex', false)"); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conn.QueryRow(ctx, "SELECT name FROM contacts").Scan(&name); err != nil || name != "g1" {
		t.Fatalf("control: expected the unguarded, unsigned escape to reach globex's row, got %q %v", name, err)
	}
}

// TestSigningOlderSetupHint: a database whose setup SQL predates
// multigres.context_prime (set up by an older multigres) fails tenant
// logins with a hint to run multigres init again, in both pool modes.
func TestSigningOlderSetupHint(t *testing.T) {
	t.Parallel()
	pg, db := signedDB(t, "DROP FUNCTION multigres.context_prime(text)")
	ctx := testCtx(t)
	for _, poolMode := range poolModes {
		conn, err := signedLogin(t, pg, db, poolMode)
		if err == nil {
			// Transaction mode switches the context with the first query.
			_, err = conn.Exec(ctx, "SELECT 1")
			conn.Close(ctx)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "08006" || !strings.Contains(pgErr.Hint, "run multigres init") {
			t.Fatalf("%s mode: %v (%+v), want 08006 with a hint to run multigres init", poolMode, err, pgErr)
		}
	}
}

// signedDB is a fresh database set up with context signing on, then sql
// run in it.
func signedDB(t *testing.T, sql string) (*pgtest.Server, string) {
	t.Helper()
	pg := pgtest.Shared()
	db := pg.CreateDB(t)
	proxytest.SetupWith(t, pg, db, func(o *mgsql.Options) { o.ContextSigning = true })
	if err := pg.Exec(testCtx(t), db, sql); err != nil {
		t.Fatal(err)
	}
	return pg, db
}

// signedProxy starts multigres with context signing on, in poolMode (2
// server connections per pool), with the SQL guard on or off.
func signedProxy(t *testing.T, pg *pgtest.Server, poolMode string, guard bool) *proxytest.Proxy {
	t.Helper()
	return proxytest.StartProxy(t, pg, func(c *config.Config) {
		c.Guard, c.ContextSigning = guard, true
		c.PoolMode, c.DefaultPoolSize = poolMode, 2
	})
}

// signedLogin starts a signedProxy with the guard on in poolMode and logs
// in through it as app_user.acme to db.
func signedLogin(t *testing.T, pg *pgtest.Server, db, poolMode string) (*pgx.Conn, error) {
	t.Helper()
	p := signedProxy(t, pg, poolMode, true)
	return pgx.Connect(testCtx(t), proxytest.URL(p.Addr, "app_user.acme", proxytest.AppUserPassword, db))
}

// TestDiscardSequencesRefusedWithSigning: with context signing on, a
// tenant's DISCARD SEQUENCES (which would drop the signed reader's seed)
// is refused with 42501 and a message saying why, over both protocols and
// in both pool modes, and the connection stays usable.
func TestDiscardSequencesRefusedWithSigning(t *testing.T) {
	t.Parallel()
	pg, db := signedDB(t, "CREATE TABLE t (tenant_id text NOT NULL DEFAULT current_tenant_id()); SELECT multigres_protect('t', 'tenant_id')")
	ctx := testCtx(t)
	for _, poolMode := range poolModes {
		conn, err := signedLogin(t, pg, db, poolMode)
		if err != nil {
			t.Fatal(err)
		}
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			_, err := conn.Exec(ctx, "DISCARD SEQUENCES", mode)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "DISCARD SEQUENCES is not allowed") {
				t.Fatalf("%s mode, %v: %v, want 42501 refusing DISCARD SEQUENCES", poolMode, mode, err)
			}
			var tenant string
			if err := conn.QueryRow(ctx, "SELECT current_tenant_id()", mode).Scan(&tenant); err != nil || tenant != "acme" {
				t.Fatalf("%s mode, %v: after the refusal current_tenant_id() = %q, %v", poolMode, mode, tenant, err)
			}
		}
		conn.Close(ctx)
	}
}
