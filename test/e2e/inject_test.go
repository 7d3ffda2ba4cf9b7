package e2e

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestEarlyClientBytesWaitForInjection: a client that pipelines its first
// query behind the StartupMessage, in the same write, must see the query
// run in its tenant context: the bytes wait until injection is done.
func TestEarlyClientBytesWaitForInjection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, trust)
	r := rawDial(t, e.proxy.Addr)
	r.write(encode(t, startupMsg("app_user.acme", e.db),
		&pgproto3.Query{String: "SELECT current_setting('app.current_tenant_id'), current_user, (SELECT count(*) FROM contacts)"}))
	var ready int
	var row []string
	for ready < 2 {
		switch m := r.receive().(type) {
		case *pgproto3.ReadyForQuery:
			ready++
		case *pgproto3.DataRow:
			if ready != 1 {
				t.Fatalf("row before the startup's ReadyForQuery")
			}
			for _, v := range m.Values {
				row = append(row, string(v))
			}
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s %s", m.Code, m.Message)
		}
	}
	if strings.Join(row, ",") != "acme,app_user,2" {
		t.Fatalf("early query saw %v, want acme,app_user,2", row)
	}
}

// TestFailedInjectionIsFailClosed: when the context cannot be applied the
// client gets FATAL and the connection closes; a query it pipelined early
// never runs.
func TestFailedInjectionIsFailClosed(t *testing.T) {
	t.Parallel()
	role := uniqueName("no_such_role")
	e := newEnv(t, func(c *config.Config) {
		trust(c)
		c.SetRole = role
	})
	want := `multigres could not set the tenant context: role "` + role + `" does not exist`

	r := rawDial(t, e.proxy.Addr)
	r.write(encode(t, startupMsg("app_user.acme", e.db),
		&pgproto3.Query{String: "INSERT INTO contacts (tenant_id, name) VALUES ('acme', 'Early')"}))
	for {
		m := r.receive()
		if er, ok := m.(*pgproto3.ErrorResponse); ok {
			if er.Severity != "FATAL" || er.Code != "08006" || er.Message != want {
				t.Fatalf("got %s %s %q", er.Severity, er.Code, er.Message)
			}
			break
		}
		switch m.(type) {
		case *pgproto3.AuthenticationOk:
		default:
			t.Fatalf("got %T before the FATAL", m)
		}
	}
	r.wantClosed()
	var n int
	if err := e.super(t).QueryRow(testCtx(t), "SELECT count(*) FROM contacts WHERE name = 'Early'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("early insert ran: %d rows, %v", n, err)
	}

	// The same through pgx: the connection attempt itself fails.
	_, err := e.tryConnect(t, "app_user.acme", proxytest.AppUserPassword)
	pe := wantPgError(t, err, "08006", want)
	if pe.Severity != "FATAL" {
		t.Fatalf("severity %q", pe.Severity)
	}
}

// TestContextVariableRejectedByServer: a variable name the server refuses
// (a prefix reserved by a loaded module) fails the injection, closed.
func TestContextVariableRejectedByServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.ContextVariables = []string{"plpgsql.tenant"} })
	// Loading plpgsql at session start reserves its prefix (PostgreSQL 15+).
	e.exec(t, "ALTER DATABASE "+e.db+" SET session_preload_libraries = 'plpgsql'")
	_, err := e.tryConnect(t, "app_user.acme", proxytest.AppUserPassword)
	pe := wantPgError(t, err, "08006", `multigres could not set the tenant context: invalid configuration parameter name "plpgsql.tenant"`)
	if pe.Severity != "FATAL" {
		t.Fatalf("severity %q", pe.Severity)
	}
}
