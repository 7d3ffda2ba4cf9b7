package authpg_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/totp"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// victim is tenant A's data, created through the superuser store.
type victim struct {
	tenant, userID, sessionID, invID uuid.UUID
	handle, email, invToken          string
	codes                            []string
}

func seedVictim(t *testing.T, e *env) victim {
	t.Helper()
	ctx := testCtx(t)
	s := e.store
	v := victim{tenant: newTenant(), handle: "alice", email: "alice@example.test"}
	u, err := s.CreateUser(ctx, v.tenant, authpg.NewUser{Handle: v.handle, Email: v.email, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	v.userID = u.ID
	x, _ := s.CreateSession(ctx, v.tenant, u.ID, nil)
	v.sessionID = x.ID
	dead, _ := s.CreateSession(ctx, v.tenant, u.ID, nil)
	if err := s.SaveTOTPSecret(ctx, v.tenant, u.ID, "JBSWY3DPEHPK3PXP"); err != nil {
		t.Fatal(err)
	}
	if v.codes, err = s.GenerateBackupCodes(ctx, v.tenant, u.ID); err != nil {
		t.Fatal(err)
	}
	inv, _ := s.CreateInvitation(ctx, v.tenant, authpg.NewInvitation{Email: "inv@example.test"})
	v.invToken, v.invID = inv.Token, inv.ID
	old, _ := s.CreateInvitation(ctx, v.tenant, authpg.NewInvitation{Email: "old@example.test"})
	if _, err := s.LogAuditEvent(ctx, v.tenant, authpg.NewAuditEvent{Type: "login", UserID: u.ID}); err != nil {
		t.Fatal(err)
	}
	// Expired rows, so that the cleanup methods have something to steal.
	e.superExec(t, `UPDATE auth.sessions SET expires_at = now() - interval '1 s' WHERE id = $1`, dead.ID)
	e.superExec(t, `UPDATE auth.invitations SET expires_at = now() - interval '1 s' WHERE id = $1`, old.ID)
	return v
}

// snapshot fingerprints every auth row of a tenant, as the superuser.
func snapshot(t *testing.T, e *env, tenant uuid.UUID) string {
	t.Helper()
	var out string
	for _, tbl := range []string{"users", "sessions", "totp_secrets", "backup_codes", "invitations", "audit_events"} {
		var h *string
		if err := e.super.QueryRow(testCtx(t), fmt.Sprintf(
			`SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) FROM auth.%s r WHERE tenant_id = $1`, tbl), tenant).Scan(&h); err != nil {
			t.Fatal(err)
		}
		if h == nil {
			t.Fatalf("tenant has no %s rows", tbl)
		}
		out += tbl + "=" + *h + " "
	}
	return out
}

// probe calls every method of s naming tenant tn and tenant A's ids,
// handles and tokens, and checks that nothing of A is read. Writes may fail
// or touch tn's own rows, but the caller checks A's snapshot is unchanged.
// bound is true when the connection's tenant (RLS) is not tn's... i.e. when
// tn is A but the connection belongs to another tenant.
func probe(t *testing.T, s *authpg.Store, tn uuid.UUID, v victim, bound bool) {
	t.Helper()
	ctx := testCtx(t)
	notFound := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, authpg.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	_, err := s.GetUser(ctx, tn, v.userID)
	notFound("GetUser", err)
	_, err = s.GetUserByHandle(ctx, tn, v.handle)
	notFound("GetUserByHandle", err)
	_, err = s.GetUserByEmail(ctx, tn, v.email)
	notFound("GetUserByEmail", err)
	if l, err := s.ListUsers(ctx, tn); err != nil || len(l) != 0 {
		t.Errorf("ListUsers = %v, %v", l, err)
	}
	if ok, err := s.HasUsers(ctx, tn); err != nil || ok {
		t.Errorf("HasUsers = %v, %v", ok, err)
	}
	_, err = s.GetSession(ctx, tn, s.SignSessionID(tn, v.sessionID))
	notFound("GetSession", err)
	if l, err := s.ListSessionsByUser(ctx, tn, v.userID); err != nil || len(l) != 0 {
		t.Errorf("ListSessionsByUser = %v, %v", l, err)
	}
	if l, err := s.ListSessions(ctx, tn); err != nil || len(l) != 0 {
		t.Errorf("ListSessions = %v, %v", l, err)
	}
	_, err = s.GetTOTPSecret(ctx, tn, v.userID)
	notFound("GetTOTPSecret", err)
	code, _ := totp.Code("JBSWY3DPEHPK3PXP", time.Now())
	_, err = s.VerifyTOTP(ctx, tn, v.userID, code)
	notFound("VerifyTOTP", err)
	_, err = s.GetBackupCodes(ctx, tn, v.userID)
	notFound("GetBackupCodes", err)
	if ok, err := s.ConsumeBackupCode(ctx, tn, v.userID, v.codes[0]); err != nil || ok {
		t.Errorf("ConsumeBackupCode = %v, %v", ok, err)
	}
	_, err = s.GetInvitation(ctx, tn, v.invToken)
	notFound("GetInvitation", err)
	_, err = s.GetInvitationByID(ctx, tn, v.invID)
	notFound("GetInvitationByID", err)
	if l, err := s.ListInvitations(ctx, tn); err != nil || len(l) != 0 {
		t.Errorf("ListInvitations = %v, %v", l, err)
	}
	if l, err := s.ListPendingInvitations(ctx, tn); err != nil || len(l) != 0 {
		t.Errorf("ListPendingInvitations = %v, %v", l, err)
	}
	if l, err := s.ListAuditEvents(ctx, tn, authpg.AuditFilter{}); err != nil || len(l) != 0 {
		t.Errorf("ListAuditEvents = %v, %v", l, err)
	}

	// Writes aimed at A's rows.
	_, err = s.UpdateUser(ctx, tn, v.userID, authpg.UserUpdate{Role: ptr(authpg.RoleDeveloper)})
	notFound("UpdateUser", err)
	notFound("DeleteUser", s.DeleteUser(ctx, tn, v.userID))
	if _, err := s.CreateSession(ctx, tn, v.userID, nil); err == nil {
		t.Error("CreateSession for A's user succeeded")
	}
	// A's session id, signed for tn (as if the secret leaked), and bare.
	for _, ref := range []string{s.SignSessionID(tn, v.sessionID), v.sessionID.String()} {
		_, err = s.UpdateSession(ctx, tn, ref, authpg.SessionUpdate{Extend: true})
		notFound("UpdateSession", err)
		if err := s.DeleteSession(ctx, tn, ref); err != nil {
			t.Errorf("DeleteSession: %v", err)
		}
	}
	if n, err := s.DeleteUserSessions(ctx, tn, v.userID); err != nil || n != 0 {
		t.Errorf("DeleteUserSessions = %d, %v", n, err)
	}
	if n, err := s.CleanupExpiredSessions(ctx, tn); err != nil || n != 0 {
		t.Errorf("CleanupExpiredSessions = %d, %v", n, err)
	}
	notFound("DeleteTOTPSecret", s.DeleteTOTPSecret(ctx, tn, v.userID))
	if err := s.SaveBackupCodes(ctx, tn, v.userID, []string{"x"}); err == nil {
		t.Error("SaveBackupCodes for A's user succeeded")
	}
	if _, err := s.GenerateBackupCodes(ctx, tn, v.userID); err == nil {
		t.Error("GenerateBackupCodes for A's user succeeded")
	}
	if err := s.DeleteBackupCodes(ctx, tn, v.userID); err != nil {
		t.Errorf("DeleteBackupCodes: %v", err)
	}
	_, err = s.UpdateInvitation(ctx, tn, v.invToken, authpg.InvitationUpdate{ExpiresIn: ptr(time.Hour)})
	notFound("UpdateInvitation", err)
	_, err = s.AcceptInvitation(ctx, tn, v.invToken)
	notFound("AcceptInvitation", err)
	_, _, err = s.AcceptInvitationWithUser(ctx, tn, v.invToken, authpg.NewUser{Handle: "intruder", Password: "pw"})
	notFound("AcceptInvitationWithUser", err)
	// A's user, A's password: no session, whatever the error.
	if l, err := s.Authenticate(ctx, tn, v.handle, "pw", nil); err == nil {
		t.Errorf("Authenticate as A's user succeeded: %+v", l.Session)
	}
	if n, err := s.UnlockUser(ctx, tn, v.userID); err != nil || n != 0 {
		t.Errorf("UnlockUser = %d, %v", n, err)
	}
	if err := s.ImportTOTPSecret(ctx, tn, v.userID, totp.EncryptedSecret{EncryptedSecret: "x", IV: "x", AuthTag: "x", Salt: "x"}); err == nil {
		t.Error("ImportTOTPSecret for A's user succeeded")
	}
	notFound("DeleteInvitation", s.DeleteInvitation(ctx, tn, v.invToken))
	if n, err := s.CleanupExpiredInvitations(ctx, tn); err != nil || n != 0 {
		t.Errorf("CleanupExpiredInvitations = %d, %v", n, err)
	}
	// Inserts naming tn: in mode 1 they create tn's own rows (harmless,
	// A is untouched); on a connection bound to another tenant RLS's WITH
	// CHECK refuses them.
	writes := map[string]func() error{
		"CreateUser": func() error { _, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: v.handle}); return err },
		"SaveTOTPSecret": func() error {
			return s.SaveTOTPSecret(ctx, tn, v.userID, "JBSWY3DPEHPK3PXP")
		},
		"CreateInvitation": func() error { _, err := s.CreateInvitation(ctx, tn, authpg.NewInvitation{Email: "e@x"}); return err },
		"LogAuditEvent":    func() error { _, err := s.LogAuditEvent(ctx, tn, authpg.NewAuditEvent{Type: "forged"}); return err },
	}
	for name, w := range writes {
		err := w()
		if bound && !errors.Is(err, authpg.ErrForbidden) {
			t.Errorf("%s into another tenant: %v, want ErrForbidden", name, err)
		}
	}
}

// TestIsolationDirect: mode 1, a superuser pool; the explicit tenant filter
// is what isolates.
func TestIsolationDirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := seedVictim(t, e)
	before := snapshot(t, e, v.tenant)
	probe(t, e.store, newTenant(), v, false)
	if after := snapshot(t, e, v.tenant); after != before {
		t.Fatalf("tenant A changed:\n%s\n%s", before, after)
	}
}

// TestIsolationWithTenant: mode 2, the app role (RLS applies) inside
// InTenant(B): calls naming B find nothing of A, and calls naming A find
// nothing either, because the connection is B's.
func TestIsolationWithTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	v := seedVictim(t, e)
	before := snapshot(t, e, v.tenant)
	tB := newTenant()
	for _, tn := range []uuid.UUID{tB, v.tenant} {
		err := e.appSt.InTenant(ctx, tB, func(s *authpg.Store) error {
			probe(t, s, tn, v, tn == v.tenant)
			return errors.New("roll back the probe's own rows")
		})
		if err == nil {
			t.Fatal("InTenant did not return fn's error")
		}
	}
	if after := snapshot(t, e, v.tenant); after != before {
		t.Fatalf("tenant A changed:\n%s\n%s", before, after)
	}
	// Without a tenant the app role sees nothing at all (fail closed).
	if ok, err := e.appSt.HasUsers(ctx, v.tenant); err != nil || ok {
		t.Fatalf("app role without tenant: %v, %v", ok, err)
	}
	// WithTenant with a raw transaction: RLS alone scopes a query that has
	// no tenant filter at all.
	var n int
	err := authpg.WithTenant(ctx, e.app, v.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM auth.users`).Scan(&n)
	})
	if err != nil || n != 1 {
		t.Fatalf("WithTenant(A) count = %d, %v", n, err)
	}
	err = authpg.WithTenant(ctx, e.app, tB, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM auth.users`).Scan(&n)
	})
	if err != nil || n != 0 {
		t.Fatalf("WithTenant(B) count = %d, %v", n, err)
	}
	// The setting is transaction-local: it does not leak to the pool.
	var cur *string
	if err := e.app.QueryRow(ctx, `SELECT NULLIF(current_setting('app.current_tenant_id', true), '')`).Scan(&cur); err != nil || cur != nil {
		t.Fatalf("tenant leaked outside the transaction: %v, %v", cur, err)
	}
}

// rlsOnly checks, with the explicit filter removed from the user queries,
// that s (bound to tenant B by RLS) still cannot read or change A's user,
// and that s sees B's own user.
func rlsOnly(t *testing.T, s *authpg.Store, tB uuid.UUID, v victim) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := s.GetUser(ctx, tB, v.userID); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("unfiltered GetUser read A's user: %v", err)
	}
	if _, err := s.UpdateUser(ctx, tB, v.userID, authpg.UserUpdate{Role: ptr(authpg.RoleDeveloper)}); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("unfiltered UpdateUser changed A's user: %v", err)
	}
	if err := s.DeleteUser(ctx, tB, v.userID); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("unfiltered DeleteUser deleted A's user: %v", err)
	}
	list, err := s.ListUsers(ctx, tB)
	if err != nil || len(list) != 1 || list[0].TenantID != tB {
		t.Errorf("unfiltered ListUsers = %v, %v", list, err)
	}
}

func TestRLSAloneIsolatesWithTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	v := seedVictim(t, e)
	tB := newTenant()
	mustUser(t, e.store, tB, "bee")
	before := snapshot(t, e, v.tenant)

	// Control: without RLS (superuser) the hook really removes the filter.
	leaky, _ := authpg.New(e.super, opts())
	authpg.DisableTenantFilterForTest(leaky)
	if u, err := leaky.GetUser(ctx, tB, v.userID); err != nil || u.TenantID != v.tenant {
		t.Fatalf("hook did not remove the filter: %+v, %v", u, err)
	}

	s, _ := authpg.New(e.app, opts())
	authpg.DisableTenantFilterForTest(s)
	err := s.InTenant(ctx, tB, func(s *authpg.Store) error {
		rlsOnly(t, s, tB, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, e, v.tenant); after != before {
		t.Fatal("tenant A changed")
	}
}

// proxyEnv puts a multigres proxy in front of the env's database and
// returns a Store connected through it as tenant (mode 3).
func proxyStore(t *testing.T, e *env, p *proxytest.Proxy, tenant uuid.UUID) *authpg.Store {
	t.Helper()
	pool := newPool(t, proxytest.URL(p.Addr, proxytest.AppUser+"."+tenant.String(), proxytest.AppUserPassword, e.db), nil)
	s, err := authpg.New(pool, opts())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startProxy(t *testing.T, e *env) *proxytest.Proxy {
	t.Helper()
	pg := pgtest.Shared()
	proxytest.Setup(t, pg, e.db)
	// The template was migrated before app_user existed, so grant now
	// (Migrate's own grant covers databases migrated after the role
	// exists).
	e.superExec(t, `GRANT USAGE ON SCHEMA auth TO app_user;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth, public TO app_user`)
	return proxytest.StartProxy(t, pg, nil)
}

// TestIsolationThroughMultigres: mode 3. The proxy fixes the tenant from
// the user name app_user.<B>; calls naming B find nothing of A, and calls
// naming A find nothing and change nothing.
func TestIsolationThroughMultigres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	v := seedVictim(t, e)
	before := snapshot(t, e, v.tenant)
	p := startProxy(t, e)
	// multigres itself sees every authpg table as protected.
	var unprotected []string
	rows, err := e.super.Query(ctx, `SELECT schema_name || '.' || table_name FROM multigres_status()
		WHERE schema_name IN ('auth', 'public') AND table_name NOT LIKE 'authpg\_%' AND NOT protected`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		unprotected = append(unprotected, n)
	}
	if rows.Close(); rows.Err() != nil || len(unprotected) != 0 {
		t.Fatalf("multigres_status: unprotected %v, %v", unprotected, rows.Err())
	}
	tB := newTenant()
	s := proxyStore(t, e, p, tB)
	probe(t, s, v.tenant, v, true)
	// The probe created nothing for B either (its inserts named A).
	if ok, err := s.HasUsers(ctx, tB); err != nil || ok {
		t.Fatalf("B has users after probe: %v %v", ok, err)
	}
	probe(t, s, tB, v, false)
	if after := snapshot(t, e, v.tenant); after != before {
		t.Fatalf("tenant A changed:\n%s\n%s", before, after)
	}

	// The owner of A, through the proxy, sees A's data.
	sa := proxyStore(t, e, p, v.tenant)
	if u, err := sa.GetUserByHandle(ctx, v.tenant, v.handle); err != nil || u.ID != v.userID {
		t.Fatalf("A through the proxy: %+v, %v", u, err)
	}
}

func TestRLSAloneIsolatesThroughMultigres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := seedVictim(t, e)
	tB := newTenant()
	mustUser(t, e.store, tB, "bee")
	before := snapshot(t, e, v.tenant)
	p := startProxy(t, e)
	s := proxyStore(t, e, p, tB)
	authpg.DisableTenantFilterForTest(s)
	rlsOnly(t, s, tB, v)
	if after := snapshot(t, e, v.tenant); after != before {
		t.Fatal("tenant A changed")
	}
}
