package authpg_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/totp"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestConstruction(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	if _, err := authpg.New(nil, opts()); err == nil {
		t.Fatal("New(nil) accepted")
	}
	if _, err := authpg.New((*pgxpool.Pool)(nil), opts()); err == nil {
		t.Fatal("New(typed nil pool) accepted")
	}
	if _, err := authpg.New((*pgx.Conn)(nil), opts()); err == nil {
		t.Fatal("New(typed nil conn) accepted")
	}
	if _, err := authpg.New(authpg.SQLDB(nil), opts()); err == nil {
		t.Fatal("New(SQLDB(nil)) accepted")
	}
	if _, err := authpg.Open(ctx, "", opts()); err == nil {
		t.Fatal("Open(\"\") accepted")
	}
	if _, err := authpg.Open(ctx, "  ", opts()); err == nil {
		t.Fatal("Open(blank) accepted")
	}
	if _, err := authpg.Open(ctx, "postgres://[::1", opts()); err == nil {
		t.Fatal("Open(bad url) accepted")
	}
	e := newEnv(t)
	for name, o := range map[string]authpg.Options{
		"no secret":      {},
		"short secret":   {SessionSecret: []byte("short")},
		"negative age":   {SessionSecret: secret, SessionMaxAge: -time.Second},
		"bad bcryptcost": {SessionSecret: secret, BcryptCost: 99},
		"negative limit window": {SessionSecret: secret,
			Limits: authpg.Limits{Password: authpg.Limit{Window: -time.Minute}}},
		"TOTP key id with a colon": {SessionSecret: secret,
			TOTPKeys: &authpg.TOTPKeyring{CurrentID: "a:b", Keys: map[string][]byte{"a:b": testKey(1)}}},
		"no current TOTP key": {SessionSecret: secret,
			TOTPKeys: &authpg.TOTPKeyring{CurrentID: "gone", Keys: map[string][]byte{"k": testKey(1)}}},
	} {
		if _, err := authpg.New(e.super, o); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Open owns its pool; Close closes it, twice is harmless.
	url := pgtest.Shared().SuperURL(e.db)
	o := opts()
	o.Pool = func(c *pgxpool.Config) { c.MaxConns = 3 }
	s, err := authpg.Open(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Pool().Config().MaxConns != 3 {
		t.Fatal("opts.Pool not applied")
	}
	if ok, err := s.HasUsers(ctx, newTenant()); err != nil || ok {
		t.Fatalf("HasUsers = %v, %v", ok, err)
	}
	pool := s.Pool()
	s.Close()
	s.Close()
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("owned pool still open after Close")
	}
	if _, err := s.HasUsers(ctx, newTenant()); !errors.Is(err, authpg.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	// CloseOnDispose=false leaves the pool to the caller.
	o.CloseOnDispose = ptr(false)
	s2, err := authpg.Open(ctx, url, o)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if err := s2.Pool().Ping(ctx); err != nil {
		t.Fatalf("pool closed despite CloseOnDispose=false: %v", err)
	}
	s2.Pool().Close()
	// New never closes the caller's pool.
	s3, _ := authpg.New(e.super, opts())
	s3.Close()
	if err := e.super.Ping(ctx); err != nil {
		t.Fatalf("Close closed a borrowed pool: %v", err)
	}
	// Zero SessionMaxAge means the 7-day default.
	s4, _ := authpg.New(e.super, opts())
	tA := newTenant()
	u := mustUser(t, s4, tA, "d")
	x, err := s4.CreateSession(ctx, tA, u.ID, nil)
	if err != nil || x.ExpiresAt.Sub(x.CreatedAt) != 7*24*time.Hour {
		t.Fatalf("default max age: %+v, %v", x, err)
	}
}

// TestInvalidTenant calls every method with the nil tenant on a Store
// whose pool points at a closed port: ErrInvalidTenant proves validation
// happens before any query (a query would fail to connect instead).
func TestInvalidTenant(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	port, _ := pgtest.FreePort()
	pool, err := pgxpool.New(ctx, "postgres://u:p@127.0.0.1:"+itoa(port)+"/db?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, _ := authpg.New(pool, opts())
	id := uuid.MustParse("6f1c1f1e-0000-4000-8000-000000000001")
	// Ids are uuid.UUID, so a malformed tenant cannot be passed at all;
	// the one invalid value left is the nil UUID, an unset field.
	for _, bad := range []uuid.UUID{uuid.Nil} {
		calls := map[string]func() error{
			"GetUser":                   func() error { _, err := s.GetUser(ctx, bad, id); return err },
			"GetUserByHandle":           func() error { _, err := s.GetUserByHandle(ctx, bad, "h"); return err },
			"GetUserByEmail":            func() error { _, err := s.GetUserByEmail(ctx, bad, "e"); return err },
			"CreateUser":                func() error { _, err := s.CreateUser(ctx, bad, authpg.NewUser{Handle: "h"}); return err },
			"UpdateUser":                func() error { _, err := s.UpdateUser(ctx, bad, id, authpg.UserUpdate{}); return err },
			"DeleteUser":                func() error { return s.DeleteUser(ctx, bad, id) },
			"ListUsers":                 func() error { _, err := s.ListUsers(ctx, bad); return err },
			"HasUsers":                  func() error { _, err := s.HasUsers(ctx, bad); return err },
			"CreateSession":             func() error { _, err := s.CreateSession(ctx, bad, id, nil); return err },
			"GetSession":                func() error { _, err := s.GetSession(ctx, bad, id.String()+".x"); return err },
			"UpdateSession":             func() error { _, err := s.UpdateSession(ctx, bad, id.String(), authpg.SessionUpdate{}); return err },
			"DeleteSession":             func() error { return s.DeleteSession(ctx, bad, id.String()) },
			"DeleteUserSessions":        func() error { _, err := s.DeleteUserSessions(ctx, bad, id); return err },
			"ListSessionsByUser":        func() error { _, err := s.ListSessionsByUser(ctx, bad, id); return err },
			"ListSessions":              func() error { _, err := s.ListSessions(ctx, bad); return err },
			"CleanupExpiredSessions":    func() error { _, err := s.CleanupExpiredSessions(ctx, bad); return err },
			"SaveTOTPSecret":            func() error { return s.SaveTOTPSecret(ctx, bad, id, "JBSWY3DPEHPK3PXP") },
			"ImportTOTPSecret":          func() error { return s.ImportTOTPSecret(ctx, bad, id, totp.EncryptedSecret{}) },
			"GetTOTPSecret":             func() error { _, err := s.GetTOTPSecret(ctx, bad, id); return err },
			"DeleteTOTPSecret":          func() error { return s.DeleteTOTPSecret(ctx, bad, id) },
			"VerifyTOTP":                func() error { _, err := s.VerifyTOTP(ctx, bad, id, "123456"); return err },
			"SaveBackupCodes":           func() error { return s.SaveBackupCodes(ctx, bad, id, []string{"h"}) },
			"GenerateBackupCodes":       func() error { _, err := s.GenerateBackupCodes(ctx, bad, id); return err },
			"GetBackupCodes":            func() error { _, err := s.GetBackupCodes(ctx, bad, id); return err },
			"DeleteBackupCodes":         func() error { return s.DeleteBackupCodes(ctx, bad, id) },
			"ConsumeBackupCode":         func() error { _, err := s.ConsumeBackupCode(ctx, bad, id, "c"); return err },
			"CreateInvitation":          func() error { _, err := s.CreateInvitation(ctx, bad, authpg.NewInvitation{Email: "e"}); return err },
			"GetInvitation":             func() error { _, err := s.GetInvitation(ctx, bad, "t"); return err },
			"GetInvitationByID":         func() error { _, err := s.GetInvitationByID(ctx, bad, id); return err },
			"ListInvitations":           func() error { _, err := s.ListInvitations(ctx, bad); return err },
			"ListPendingInvitations":    func() error { _, err := s.ListPendingInvitations(ctx, bad); return err },
			"UpdateInvitation":          func() error { _, err := s.UpdateInvitation(ctx, bad, "t", authpg.InvitationUpdate{}); return err },
			"DeleteInvitation":          func() error { return s.DeleteInvitation(ctx, bad, "t") },
			"CleanupExpiredInvitations": func() error { _, err := s.CleanupExpiredInvitations(ctx, bad); return err },
			"AcceptInvitation":          func() error { _, err := s.AcceptInvitation(ctx, bad, "t"); return err },
			"AcceptInvitationWithUser": func() error {
				_, _, err := s.AcceptInvitationWithUser(ctx, bad, "t", authpg.NewUser{Handle: "h"})
				return err
			},
			"Authenticate":    func() error { _, err := s.Authenticate(ctx, bad, "h", "p", nil); return err },
			"UnlockUser":      func() error { _, err := s.UnlockUser(ctx, bad, id); return err },
			"LogAuditEvent":   func() error { _, err := s.LogAuditEvent(ctx, bad, authpg.NewAuditEvent{Type: "x"}); return err },
			"ListAuditEvents": func() error { _, err := s.ListAuditEvents(ctx, bad, authpg.AuditFilter{}); return err },
			"BootstrapUsers": func() error {
				_, err := s.BootstrapUsers(ctx, bad, []authpg.BootstrapUser{{Handle: "h", Password: "p"}})
				return err
			},
			"InTenant":   func() error { return s.InTenant(ctx, bad, func(*authpg.Store) error { return nil }) },
			"WithTenant": func() error { return authpg.WithTenant(ctx, pool, bad, func(pgx.Tx) error { return nil }) },
		}
		for name, call := range calls {
			if err := call(); !errors.Is(err, authpg.ErrInvalidTenant) {
				t.Errorf("%s(%s) = %v, want ErrInvalidTenant", name, bad, err)
			}
		}
	}
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// TestDrivers runs the same flow over every accepted connection type:
// *pgxpool.Pool, *pgx.Conn, pgx.Tx and *sql.DB through SQLDB.
func TestDrivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	url := pgtest.Shared().SuperURL(e.db)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	sqldb, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	tx, err := e.super.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())

	for name, db := range map[string]authpg.DB{"pool": e.super, "conn": conn, "tx": tx, "sql": authpg.SQLDB(sqldb)} {
		s, err := authpg.New(db, opts())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		flow(t, name, s)
	}
	// Everything the tx store did is rolled back with the caller's tx.
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.super.QueryRow(ctx, `SELECT count(*) FROM auth.users WHERE handle = 'flow-tx'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("tx store's rows survived the caller's rollback: %d, %v", n, err)
	}
	// InTenant over database/sql: savepoints through the adapter.
	s, _ := authpg.New(authpg.SQLDB(sqldb), opts())
	tA := newTenant()
	err = s.InTenant(ctx, tA, func(ts *authpg.Store) error {
		_, err := ts.BootstrapUsers(ctx, tA, []authpg.BootstrapUser{{Handle: "in-sql", Password: "p"}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUserByHandle(ctx, tA, "in-sql"); err != nil {
		t.Fatal(err)
	}
}

// flow exercises a cross-section of methods, including ones that use
// transactions, jsonb, nullable columns and row counts.
func flow(t *testing.T, name string, s *authpg.Store) {
	t.Helper()
	ctx := testCtx(t)
	tA := newTenant()
	u, err := s.CreateUser(ctx, tA, authpg.NewUser{Handle: "flow-" + name, Password: "p"})
	if err != nil {
		t.Fatalf("%s: CreateUser: %v", name, err)
	}
	if u.Email != nil || u.LastLoginAt != nil {
		t.Fatalf("%s: nullable columns = %+v", name, u)
	}
	if _, err := s.GetUser(ctx, tA, newTenant()); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("%s: GetUser missing: %v", name, err)
	}
	// On a caller's transaction too: the failed statement ran in a
	// savepoint, so the transaction is still usable afterwards.
	if _, err := s.CreateUser(ctx, tA, authpg.NewUser{Handle: "FLOW-" + name}); !errors.Is(err, authpg.ErrHandleTaken) {
		t.Fatalf("%s: duplicate: %v", name, err)
	}
	x, err := s.CreateSession(ctx, tA, u.ID, &authpg.SessionMetadata{Extra: map[string]any{"a": "b"}})
	if err != nil {
		t.Fatalf("%s: CreateSession: %v", name, err)
	}
	if got, err := s.GetSession(ctx, tA, x.Token); err != nil || got.Metadata["a"] != "b" {
		t.Fatalf("%s: GetSession = %+v, %v", name, got, err)
	}
	codes, err := s.GenerateBackupCodes(ctx, tA, u.ID)
	if err != nil {
		t.Fatalf("%s: GenerateBackupCodes: %v", name, err)
	}
	if ok, err := s.ConsumeBackupCode(ctx, tA, u.ID, codes[3]); err != nil || !ok {
		t.Fatalf("%s: consume: %v %v", name, ok, err)
	}
	// The login flow: attempt counters (upserts), sealed secrets, hashed
	// invitation tokens.
	if _, err := s.Authenticate(ctx, tA, "flow-"+name, "wrong", nil); !errors.Is(err, authpg.ErrInvalidCredentials) {
		t.Fatalf("%s: Authenticate(wrong) = %v", name, err)
	}
	login, err := s.Authenticate(ctx, tA, "flow-"+name, "p", nil)
	if err != nil {
		t.Fatalf("%s: Authenticate: %v", name, err)
	}
	if _, err := s.UpdateSession(ctx, tA, login.Session.Token, authpg.SessionUpdate{TempTOTPSecret: ptr("JBSWY3DPEHPK3PXP")}); err != nil {
		t.Fatalf("%s: UpdateSession(temp secret): %v", name, err)
	}
	if got, err := s.GetSession(ctx, tA, login.Session.Token); err != nil || got.TempTOTPSecret == nil || *got.TempTOTPSecret != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("%s: GetSession(temp secret) = %+v, %v", name, got, err)
	}
	if err := s.SaveTOTPSecret(ctx, tA, u.ID, "JBSWY3DPEHPK3PXP"); err != nil {
		t.Fatalf("%s: SaveTOTPSecret: %v", name, err)
	}
	code, _ := totp.Code("JBSWY3DPEHPK3PXP", time.Now())
	if ok, err := s.VerifyTOTP(ctx, tA, u.ID, code); err != nil || !ok {
		t.Fatalf("%s: VerifyTOTP = %v, %v", name, ok, err)
	}
	inv, err := s.CreateInvitation(ctx, tA, authpg.NewInvitation{Email: "flow-" + name + "@example.test"})
	if err != nil {
		t.Fatalf("%s: CreateInvitation: %v", name, err)
	}
	if _, _, err := s.AcceptInvitationWithUser(ctx, tA, inv.Token, authpg.NewUser{Handle: "invited-" + name, Password: "p"}); err != nil {
		t.Fatalf("%s: AcceptInvitationWithUser: %v", name, err)
	}
	if n, err := s.DeleteUserSessions(ctx, tA, u.ID); err != nil || n != 2 {
		t.Fatalf("%s: DeleteUserSessions = %d, %v", name, n, err)
	}
	if ev, err := s.LogAuditEvent(ctx, tA, authpg.NewAuditEvent{Type: "t", Details: map[string]any{"n": 1}}); err != nil || ev.Details["n"] != 1.0 {
		t.Fatalf("%s: LogAuditEvent = %+v, %v", name, ev, err)
	}
	if list, err := s.ListUsers(ctx, tA); err != nil || len(list) != 2 {
		t.Fatalf("%s: ListUsers = %v, %v", name, list, err)
	}
}
