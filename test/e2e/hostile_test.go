package e2e

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/multigres-proxy/multigres/internal/config"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// hostileTimeout is the handshake_timeout of the proxies under attack.
// It must leave room for a real login (auth_query, SCRAM) on a loaded
// machine, while keeping the slowloris cases quick.
const hostileTimeout = 2 * time.Second

func shortHandshake(c *config.Config) { c.HandshakeTimeout = hostileTimeout }

// startupPacket builds a startup packet with any version and raw params.
func startupPacket(version uint32, params ...string) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b[4:], version)
	for _, p := range params {
		b = append(b, p...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

// rawHostileCases are protocol-level attacks. Each must end in an error (or
// silence, for a stall) and a close within the handshake timeout.
func rawHostileCases(e *env) []struct {
	name string
	run  func(t *testing.T)
} {
	addr, db := e.proxy.Addr, e.db
	return []struct {
		name string
		run  func(t *testing.T)
	}{
		{"startup packet body over 10000 bytes", func(t *testing.T) {
			r := rawDial(t, addr)
			var hdr [8]byte
			binary.BigEndian.PutUint32(hdr[:], 4+10001) // the length word counts itself
			binary.BigEndian.PutUint32(hdr[4:], pgproto3.ProtocolVersionNumber)
			r.write(hdr[:])
			r.wantFatal("08P01", "invalid length of startup packet")
		}},
		{"garbage", func(t *testing.T) {
			r := rawDial(t, addr)
			r.write([]byte("GET / HTTP/1.1\r\n\r\n"))
			r.wantFatal("08P01", "invalid length of startup packet")
		}},
		{"malformed startup layout", func(t *testing.T) {
			r := rawDial(t, addr)
			p := startupPacket(pgproto3.ProtocolVersionNumber, "user", "app_user.acme", "dangling")
			r.write(p)
			r.wantFatal("08P01", "")
		}},
		{"slowloris startup", func(t *testing.T) {
			r := rawDial(t, addr)
			start := time.Now()
			r.write([]byte{0, 0, 0})
			r.wantClosed()
			if d := time.Since(start); d > hostileTimeout+3*time.Second || d < hostileTimeout/2 {
				t.Fatalf("closed after %v, handshake_timeout is %v", d, hostileTimeout)
			}
		}},
		{"slowloris during SCRAM", func(t *testing.T) {
			r := rawDial(t, addr)
			start := time.Now()
			r.write(encode(t, startupMsg("app_user.acme", db)))
			if _, ok := r.receive().(*pgproto3.AuthenticationSASL); !ok {
				t.Fatal("no SASL challenge")
			}
			r.wantClosed()
			if d := time.Since(start); d > hostileTimeout+3*time.Second {
				t.Fatalf("closed after %v", d)
			}
		}},
		{"protocol 2.0", func(t *testing.T) {
			r := rawDial(t, addr)
			r.write(startupPacket(2<<16, "user", "app_user.acme", "database", db))
			r.wantFatal("0A000", "unsupported frontend protocol 2.0: server supports 3.0 to 3.0")
		}},
		{"protocol 3.1 negotiates down", func(t *testing.T) {
			r := rawDial(t, addr)
			r.write(startupPacket(3<<16|1, "user", "app_user.acme", "database", db, "_pq_.fancy", "on"))
			nv, ok := r.receive().(*pgproto3.NegotiateProtocolVersion)
			if !ok || nv.NewestMinorProtocol != 0 || strings.Join(nv.UnrecognizedOptions, ",") != "_pq_.fancy" {
				t.Fatalf("want NegotiateProtocolVersion 3.0 [_pq_.fancy], got %#v", nv)
			}
			// Authentication proceeds.
			if _, ok := r.receive().(*pgproto3.AuthenticationSASL); !ok {
				t.Fatal("no SASL challenge after NegotiateProtocolVersion")
			}
		}},
		{"client vanishes mid-SCRAM", func(t *testing.T) {
			r := rawDial(t, addr)
			r.write(encode(t, startupMsg("app_user.acme", db)))
			r.receive()
			r.write(encode(t, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abc")}))
			r.nc.Close()
		}},
		{"bogus SCRAM message", func(t *testing.T) {
			r := rawDial(t, addr)
			r.write(encode(t, startupMsg("app_user.acme", db)))
			r.receive()
			r.write(encode(t, &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("garbage")}))
			r.wantFatal("08P01", "malformed SCRAM message")
		}},
		{"cancel request with unknown key", func(t *testing.T) {
			r := rawDial(t, addr)
			var p [16]byte
			binary.BigEndian.PutUint32(p[0:], 16)
			binary.BigEndian.PutUint32(p[4:], 80877102)
			r.write(p[:])
			r.wantClosed()
		}},
	}
}

// refusedParams are startup parameters a tenant may not send: each would
// choose its own context or role.
var refusedParams = []struct {
	params  map[string]string
	message string
}{
	{map[string]string{"options": "-c app.current_tenant_id=globex"}, `options may not set "app.current_tenant_id" on tenant connections`},
	{map[string]string{"options": "-capp.current_tenant_id=globex"}, `options may not set "app.current_tenant_id" on tenant connections`},
	{map[string]string{"options": "--app.current_tenant_id=globex"}, `options may not set "app.current_tenant_id" on tenant connections`},
	{map[string]string{"options": "-c search_path=public -c APP.Current-Tenant_Id=globex"}, `options may not set "APP.Current-Tenant_Id" on tenant connections`},
	{map[string]string{"options": "-c role=postgres"}, `options may not set "role" on tenant connections`},
	{map[string]string{"options": "-c session_authorization=postgres"}, `options may not set "session_authorization" on tenant connections`},
	{map[string]string{"options": "--session-authorization=postgres"}, `options may not set "session-authorization" on tenant connections`},
	{map[string]string{"options": "-c\tROLE=postgres"}, `options may not set "ROLE" on tenant connections`},
	{map[string]string{"options": `-c application_name=a\ b -c role=postgres`}, `options may not set "role" on tenant connections`},
	{map[string]string{"App.Current_Tenant_Id": "globex"}, `startup parameter "App.Current_Tenant_Id" is not allowed on tenant connections`},
	{map[string]string{"session_authorization": "postgres"}, `startup parameter "session_authorization" is not allowed on tenant connections`},
	{map[string]string{"app.current_tenant_id": "globex"}, `startup parameter "app.current_tenant_id" is not allowed on tenant connections`},
	{map[string]string{"role": "postgres"}, `startup parameter "role" is not allowed on tenant connections`},
}

// hostileUsernames all fail the default tenant_value_pattern.
var hostileUsernames = []string{
	`app_user.a'b`, `app_user.a''; DROP TABLE contacts; --`, `app_user.a\b`, `app_user.a\'`, `app_user.a;b`,
	`app_user.a"b`, "app_user.ácmé", "app_user.a\nb", "app_user.a b", "app_user.$$x$$",
	"app_user." + strings.Repeat("a", 9*1024),
}

// pgxRefusals runs the refused parameters and usernames through pgx; each
// must fail fast with FATAL 28000.
func pgxRefusals(t *testing.T, e *env) {
	t.Helper()
	for _, tc := range refusedParams {
		start := time.Now()
		_, err := e.connectWith(t, "app_user.acme", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
			for k, v := range tc.params {
				c.RuntimeParams[k] = v
			}
		})
		pe := wantPgError(t, err, "28000", tc.message)
		if pe.Severity != "FATAL" || time.Since(start) > 5*time.Second {
			t.Fatalf("%v: severity %q after %v", tc.params, pe.Severity, time.Since(start))
		}
	}
	for _, user := range hostileUsernames {
		start := time.Now()
		_, err := e.connectWith(t, user, proxytest.AppUserPassword, nil)
		pe := wantPgError(t, err, "28000", "context value 1 (app.current_tenant_id) does not match tenant_value_pattern")
		if pe.Severity != "FATAL" || time.Since(start) > 5*time.Second {
			t.Fatalf("%.40q: severity %q after %v", user, pe.Severity, time.Since(start))
		}
		if strings.Contains(pe.Message+pe.Detail+pe.Hint, user[len("app_user."):]) {
			t.Fatalf("%.40q: the error echoes the value", user)
		}
	}
	// A huge parameter overflows the startup packet: an error, no hang.
	start := time.Now()
	_, err := e.connectWith(t, "app_user.acme", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
		c.RuntimeParams["application_name"] = strings.Repeat("x", 12000)
	})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("oversized startup through pgx: %v after %v", err, time.Since(start))
	}
}

func TestHostileInputs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, shortHandshake)
	for _, tc := range rawHostileCases(e) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t)
		})
	}
	t.Run("refused startup parameters and usernames", func(t *testing.T) {
		t.Parallel()
		pgxRefusals(t, e)
	})
	t.Run("bypass user may set options", func(t *testing.T) {
		t.Parallel()
		conn, err := e.connectWith(t, "postgres", "postgres_password", func(c *pgx.ConnConfig) {
			c.RuntimeParams["options"] = "-c app.current_tenant_id=globex"
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(t, conn, "SELECT current_setting('app.current_tenant_id')"); !eq(got, []string{"globex"}) {
			t.Fatalf("bypass options: %v", got)
		}
	})
	t.Run("allowed startup parameters pass through", func(t *testing.T) {
		t.Parallel()
		conn, err := e.connectWith(t, "app_user.acme", proxytest.AppUserPassword, func(c *pgx.ConnConfig) {
			c.RuntimeParams["application_name"] = "e2e-app"
			c.RuntimeParams["options"] = "-c statement_timeout=1234"
			c.RuntimeParams["search_path"] = "public"
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(t, conn, "SELECT current_setting('application_name') || ',' || current_setting('statement_timeout') || ',' || current_tenant_id()"); !eq(got, []string{"e2e-app,1234ms,acme"}) {
			t.Fatalf("params: %v", got)
		}
	})
}

// TestProtocol31CompletesWithTrust: after NegotiateProtocolVersion the
// session is fully usable.
func TestProtocol31Completes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, trust)
	r := rawDial(t, e.proxy.Addr)
	r.write(startupPacket(3<<16|1, "user", "app_user.acme", "database", e.db))
	if _, ok := r.receive().(*pgproto3.NegotiateProtocolVersion); !ok {
		t.Fatal("no NegotiateProtocolVersion")
	}
	for {
		if _, ok := r.receive().(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	r.write(encode(t, &pgproto3.Query{String: "SELECT current_tenant_id()"}))
	for {
		switch m := r.receive().(type) {
		case *pgproto3.DataRow:
			if string(m.Values[0]) != "acme" {
				t.Fatalf("tenant %q", m.Values[0])
			}
			return
		case *pgproto3.ErrorResponse:
			t.Fatalf("%s %s", m.Code, m.Message)
		}
	}
}

// TestHostileValuesStoredLiterally: with a permissive tenant_value_pattern,
// quotes, backslashes, semicolons, unicode and long values reach the
// setting byte for byte, never as SQL.
func TestHostileValuesStoredLiterally(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.TenantValuePattern = `^[^\x00]+$` })
	for _, v := range []string{`a'; DROP TABLE contacts; --\`, `x"); SELECT 1; --`, `$$;RESET ROLE;$$`, "ácmé ☃", `\\'\`, strings.Repeat("é", 3000)} {
		conn := e.connect(t, "app_user."+v)
		var got string
		if err := conn.QueryRow(testCtx(t), "SELECT current_tenant_id()").Scan(&got); err != nil {
			t.Fatalf("%.30q: %v", v, err)
		}
		if got != v {
			t.Fatalf("stored %.40q, want %.40q", got, v)
		}
		if rows := names(t, conn, "SELECT name FROM contacts"); len(rows) != 0 {
			t.Fatalf("%.30q sees %v", v, rows)
		}
		conn.Close(context.Background())
	}
	if got := names(t, e.super(t), "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob", "Gina"}) {
		t.Fatalf("contacts after hostile values: %v", got)
	}
}

// TestValuePatternIsAnchored: tenant_value_pattern must match the whole
// value even when written without ^...$ (the config promises so).
func TestValuePatternIsAnchored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *config.Config) { c.TenantValuePattern = `[a-z]+` })
	_, err := e.tryConnect(t, "app_user.acme';x", proxytest.AppUserPassword)
	wantPgError(t, err, "28000", "context value 1 (app.current_tenant_id) does not match tenant_value_pattern")
	if got := names(t, e.connect(t, "app_user.acme"), "SELECT name FROM contacts ORDER BY name"); !eq(got, []string{"Alice", "Bob"}) {
		t.Fatalf("acme sees %v", got)
	}
}

// TestBadMessageLengthIsAProtocolViolation: a logged-in client whose
// message declares a length below 4 gets FATAL 08P01, in both pool modes.
func TestBadMessageLengthIsAProtocolViolation(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) { c.PoolMode = mode })
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			if _, err := w.hc.Conn.Write([]byte{'Q', 0, 0, 0, 2}); err != nil {
				t.Fatal(err)
			}
			m, err := w.fe.Receive()
			er, ok := m.(*pgproto3.ErrorResponse)
			if err != nil || !ok || er.Code != "08P01" || !strings.Contains(er.Message, "invalid message length") {
				t.Fatalf("want FATAL 08P01 invalid message length, got %#v %v", m, err)
			}
		})
	}
}

// TestMessageMemoryLimit: a message that would take the proxy's large
// message buffers past max_message_memory ends that client with FATAL
// 53200; other clients go on, and the memory is given back.
func TestMessageMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *config.Config) {
				c.PoolMode = mode
				c.MaxMessageMemory = 1 << 20
			})
			other := e.connect(t, "app_user.globex")
			w := hijackRaw(t, e.connect(t, "app_user.acme"))
			w.send(&pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 2<<20) + "'"})
			m, err := w.fe.Receive()
			er, ok := m.(*pgproto3.ErrorResponse)
			if err != nil || !ok || er.Code != "53200" || !strings.Contains(er.Message, "max_message_memory") {
				t.Fatalf("want FATAL 53200 naming max_message_memory, got %#v %v", m, err)
			}
			if got := names(t, other, "SELECT name FROM contacts"); !eq(got, []string{"Gina"}) {
				t.Fatalf("the other client: %v", got)
			}
			w2 := hijackRaw(t, e.connect(t, "app_user.acme"))
			w2.send(&pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 512<<10) + "'"})
			if r := w2.until(1); len(r.errors) != 0 {
				t.Fatalf("a message within the limit after the refusal: %v", r.errors)
			}
		})
	}
}
