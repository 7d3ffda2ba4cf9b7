package authpg_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/totp"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestTOTPSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	tA, tB := newTenant(), newTenant()
	clock := time.Unix(1_800_000_000, 0)
	o := opts()
	o.Now = func() time.Time { return clock }
	o.TOTPKeys = &authpg.TOTPKeyring{CurrentID: "k1", Keys: map[string][]byte{"k1": testKey(1)},
		Passphrase: "correct horse battery staple"}
	s, err := authpg.New(e.super, o)
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s, tA, "tina")
	const plain = "JBSWY3DPEHPK3PXP"
	if err := s.SaveTOTPSecret(ctx, tA, u.ID, plain); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTOTPSecret(ctx, tA, u.ID)
	if err != nil || got.UserID != u.ID || got.TenantID != tA || got.KeyID == nil || *got.KeyID != "k1" ||
		got.EncryptedSecret.EncryptedSecret == "" || strings.Contains(got.EncryptedSecret.EncryptedSecret, plain) {
		t.Fatalf("GetTOTPSecret = %+v, %v", got, err)
	}
	if _, err := s.GetTOTPSecret(ctx, tB, u.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("other tenant sees secret: %v", err)
	}
	// A row as the TypeScript package writes it is readable (with the
	// keyring's legacy passphrase).
	ub := mustUser(t, s, tB, "tina")
	node := totp.EncryptedSecret{EncryptedSecret: "bg9jh5riLvU2OWAXAZc7wA==", IV: "wZuto2FILwE8+sxTm39UjA==",
		AuthTag: "L+/tmf5C6BSq+C74ahsYXw==", Salt: "mK4V8SCCcBe+szE1uAZjGg=="}
	if err := s.ImportTOTPSecret(ctx, tB, ub.ID, node); err != nil {
		t.Fatal(err)
	}

	code, _ := totp.Code(plain, clock)
	if ok, err := s.VerifyTOTP(ctx, tA, u.ID, code); err != nil || !ok {
		t.Fatalf("VerifyTOTP = %v, %v", ok, err)
	}
	// Replay of the same code (same step) is refused.
	if ok, err := s.VerifyTOTP(ctx, tA, u.ID, code); err != nil || ok {
		t.Fatalf("replay accepted: %v, %v", ok, err)
	}
	// An older step's code is refused after a newer one was used.
	clock = clock.Add(totp.Period)
	older, _ := totp.Code(plain, clock.Add(-totp.Period))
	if ok, _ := s.VerifyTOTP(ctx, tA, u.ID, older); ok {
		t.Fatal("older step accepted")
	}
	next, _ := totp.Code(plain, clock)
	if ok, err := s.VerifyTOTP(ctx, tA, u.ID, next); err != nil || !ok {
		t.Fatalf("next step: %v, %v", ok, err)
	}
	if ok, _ := s.VerifyTOTP(ctx, tA, u.ID, "000000"); ok {
		t.Fatal("wrong code accepted")
	}
	nodeCode, _ := totp.Code("JBSWY3DPEHPK3PXP", clock)
	if ok, err := s.VerifyTOTP(ctx, tB, ub.ID, nodeCode); err != nil || !ok {
		t.Fatalf("TypeScript-written secret: %v, %v", ok, err)
	}
	// Saving a new secret replaces it and resets replay protection.
	if err := s.SaveTOTPSecret(ctx, tA, u.ID, plain); err != nil {
		t.Fatal(err)
	}
	if again, _ := s.GetTOTPSecret(ctx, tA, u.ID); again.EncryptedSecret == got.EncryptedSecret || again.LastUsedStep != nil {
		t.Fatalf("after re-save = %+v", again)
	}
	if err := s.DeleteTOTPSecret(ctx, tB, u.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
	if err := s.DeleteTOTPSecret(ctx, tA, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetTOTPSecret(ctx, tA, u.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.GetTOTPSecret(ctx, tB, ub.ID); err != nil {
		t.Fatalf("tenant B's secret deleted: %v", err)
	}
}

func TestBackupCodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	// The attempt limit is tested on its own; here eight concurrent
	// consumers must all get an answer.
	o := opts()
	o.Limits.BackupCode.MaxFailures = -1
	s, err := authpg.New(e.super, o)
	if err != nil {
		t.Fatal(err)
	}
	tA, tB := newTenant(), newTenant()
	u := mustUser(t, s, tA, "bob")
	if _, err := s.GetBackupCodes(ctx, tA, u.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("no codes yet: %v", err)
	}
	codes, err := s.GenerateBackupCodes(ctx, tA, u.ID)
	if err != nil || len(codes) != 10 {
		t.Fatalf("GenerateBackupCodes = %v, %v", codes, err)
	}
	set, err := s.GetBackupCodes(ctx, tA, u.ID)
	if err != nil || len(set.Codes) != 10 || set.Remaining != 10 || set.TenantID != tA {
		t.Fatalf("GetBackupCodes = %+v, %v", set, err)
	}
	for _, c := range set.Codes {
		for _, p := range codes {
			if c.CodeHash == p {
				t.Fatal("plaintext code stored")
			}
		}
	}
	if _, err := s.GetBackupCodes(ctx, tB, u.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("other tenant reads codes: %v", err)
	}
	if ok, err := s.ConsumeBackupCode(ctx, tB, u.ID, codes[0]); err != nil || ok {
		t.Fatalf("other tenant consumes code: %v, %v", ok, err)
	}
	if ok, err := s.ConsumeBackupCode(ctx, tA, u.ID, codes[0]); err != nil || !ok {
		t.Fatalf("consume: %v, %v", ok, err)
	}
	if ok, _ := s.ConsumeBackupCode(ctx, tA, u.ID, codes[0]); ok {
		t.Fatal("code used twice")
	}
	if ok, _ := s.ConsumeBackupCode(ctx, tA, u.ID, "AAAAA-AAAAA"); ok {
		t.Fatal("unknown code accepted")
	}

	// Concurrent consumption of one code: exactly one request wins.
	const n = 8
	var wg sync.WaitGroup
	results := make(chan bool, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := s.ConsumeBackupCode(ctx, tA, u.ID, codes[1])
			if err != nil {
				t.Error(err)
			}
			results <- ok
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	wins := 0
	for ok := range results {
		if ok {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d concurrent consumers won, want exactly 1", wins)
	}
	set, _ = s.GetBackupCodes(ctx, tA, u.ID)
	if set.Remaining != 8 {
		t.Fatalf("remaining = %d, want 8", set.Remaining)
	}

	// SaveBackupCodes replaces the set; Delete removes it.
	if err := s.SaveBackupCodes(ctx, tA, u.ID, []string{"h1", "h2"}); err != nil {
		t.Fatal(err)
	}
	if set, _ := s.GetBackupCodes(ctx, tA, u.ID); len(set.Codes) != 2 {
		t.Fatalf("after save: %+v", set)
	}
	if err := s.SaveBackupCodes(ctx, tB, u.ID, []string{"h"}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("save for other tenant's user: %v", err)
	}
	if err := s.DeleteBackupCodes(ctx, tB, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBackupCodes(ctx, tA, u.ID); err != nil {
		t.Fatalf("cross-tenant delete removed codes: %v", err)
	}
	if err := s.DeleteBackupCodes(ctx, tA, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetBackupCodes(ctx, tA, u.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	// Odd session settings and a far-future app clock: expiry must not care.
	odd := newPool(t, pgtest.Shared().SuperURL(e.db), func(c *pgxpool.Config) {
		c.ConnConfig.RuntimeParams["timezone"] = "America/St_Johns"
		c.ConnConfig.RuntimeParams["datestyle"] = "German, YMD"
	})
	o := opts()
	o.Now = func() time.Time { return time.Now().AddDate(300, 0, 0) }
	s, _ := authpg.New(odd, o)
	tA, tB := newTenant(), newTenant()
	boss := mustUser(t, s, tA, "boss")

	inv, err := s.CreateInvitation(ctx, tA, authpg.NewInvitation{Email: "new@example.test", Role: authpg.RoleEditor, InvitedBy: boss.ID})
	if err != nil {
		t.Fatal(err)
	}
	if inv.TenantID != tA || len(inv.Token) < 40 || *inv.InvitedBy != boss.ID || inv.ExpiresAt.Sub(inv.CreatedAt) != authpg.DefaultInvitationTTL {
		t.Fatalf("invitation = %+v", inv)
	}
	if _, err := s.CreateInvitation(ctx, tA, authpg.NewInvitation{Email: "x@example.test", Role: "god"}); !errors.Is(err, authpg.ErrInvalidRole) {
		t.Fatalf("bad role: %v", err)
	}
	if _, err := s.CreateInvitation(ctx, tB, authpg.NewInvitation{Email: "x@example.test", InvitedBy: boss.ID}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("invited_by from other tenant: %v", err)
	}
	if got, err := s.GetInvitation(ctx, tA, inv.Token); err != nil || got.ID != inv.ID {
		t.Fatalf("GetInvitation = %+v, %v", got, err)
	}
	if _, err := s.GetInvitation(ctx, tB, inv.Token); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("other tenant reads invitation: %v", err)
	}
	// Only the token's hash is stored, so a loaded invitation has no token.
	if got, err := s.GetInvitationByID(ctx, tA, inv.ID); err != nil || got.ID != inv.ID || got.Token != "" {
		t.Fatalf("GetInvitationByID = %+v, %v", got, err)
	}
	if _, err := s.GetInvitationByID(ctx, tB, inv.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("other tenant by id: %v", err)
	}

	old, _ := s.CreateInvitation(ctx, tA, authpg.NewInvitation{Email: "old@example.test"})
	e.superExec(t, `UPDATE auth.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1`, old.ID)
	if _, err := s.GetInvitation(ctx, tA, old.Token); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("expired invitation returned: %v", err)
	}
	if _, err := s.GetInvitationByID(ctx, tA, old.ID); err != nil {
		t.Fatalf("by id, expired: %v", err)
	}
	if _, err := s.AcceptInvitation(ctx, tA, old.Token); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("accepting expired invitation: %v", err)
	}
	all, _ := s.ListInvitations(ctx, tA)
	pending, _ := s.ListPendingInvitations(ctx, tA)
	if len(all) != 2 || len(pending) != 1 || pending[0].ID != inv.ID {
		t.Fatalf("all = %d, pending = %v", len(all), pending)
	}
	// Extending the expiry works (the seed ignored it): the expired one
	// becomes live again, measured from the database's now().
	ext, err := s.UpdateInvitation(ctx, tA, old.Token, authpg.InvitationUpdate{ExpiresIn: ptr(48 * time.Hour), Role: ptr(authpg.RoleBusinessOwner), Email: ptr("older@example.test")})
	if err != nil {
		t.Fatal(err)
	}
	if ext.Role != authpg.RoleBusinessOwner || ext.Email != "older@example.test" || time.Until(ext.ExpiresAt) < 47*time.Hour {
		t.Fatalf("extended = %+v", ext)
	}
	if _, err := s.GetInvitation(ctx, tA, old.Token); err != nil {
		t.Fatalf("extended invitation: %v", err)
	}
	if _, err := s.UpdateInvitation(ctx, tB, old.Token, authpg.InvitationUpdate{Role: ptr(authpg.RoleDeveloper)}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("cross-tenant update: %v", err)
	}

	// Concurrent acceptance: exactly one wins, the rest see ErrInvitationUsed.
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := s.AcceptInvitation(ctx, tA, inv.Token)
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, authpg.ErrInvitationUsed):
			t.Errorf("loser got %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d accepts won, want 1", wins)
	}
	if got, _ := s.GetInvitationByID(ctx, tA, inv.ID); got.AcceptedAt == nil {
		t.Fatal("not marked accepted")
	}
	if p, _ := s.ListPendingInvitations(ctx, tA); len(p) != 1 || p[0].ID != old.ID {
		t.Fatalf("pending after accept = %v", p)
	}

	e.superExec(t, `UPDATE auth.invitations SET expires_at = now() - interval '1 minute' WHERE id = $1`, old.ID)
	if n, err := s.CleanupExpiredInvitations(ctx, tB); err != nil || n != 0 {
		t.Fatalf("cleanup other tenant = %d, %v", n, err)
	}
	if n, err := s.CleanupExpiredInvitations(ctx, tA); err != nil || n != 1 {
		t.Fatalf("cleanup = %d, %v", n, err)
	}
	if err := s.DeleteInvitation(ctx, tB, inv.Token); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("cross-tenant delete: %v", err)
	}
	if err := s.DeleteInvitation(ctx, tA, inv.Token); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.ListInvitations(ctx, tA); len(all) != 0 {
		t.Fatalf("left: %v", all)
	}
}

func TestAuditEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.store
	tA, tB := newTenant(), newTenant()
	u := mustUser(t, s, tA, "aud")
	v := mustUser(t, s, tA, "vic")
	var before time.Time
	if err := e.super.QueryRow(ctx, `SELECT now()`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	log := func(ev authpg.NewAuditEvent) *authpg.AuditEvent {
		t.Helper()
		x, err := s.LogAuditEvent(ctx, tA, ev)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	first := log(authpg.NewAuditEvent{Type: "login", UserID: u.ID, Source: "web", IPAddress: "192.0.2.1", UserAgent: "UA", Details: map[string]any{"mfa": true}})
	if first.TenantID != tA || first.ID == uuid.Nil || first.Severity != authpg.SeverityInfo || first.Details["mfa"] != true || first.CreatedAt.Before(before) {
		t.Fatalf("event = %+v", first)
	}
	log(authpg.NewAuditEvent{Type: "login_failed", UserID: u.ID, Severity: authpg.SeverityWarning, Source: "web"})
	log(authpg.NewAuditEvent{Type: "role_changed", UserID: u.ID, TargetUserID: v.ID, Severity: authpg.SeverityCritical, Source: "admin"})
	last := log(authpg.NewAuditEvent{Type: "logout", UserID: v.ID, Source: "web"})
	if _, err := s.LogAuditEvent(ctx, tB, authpg.NewAuditEvent{Type: "login"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LogAuditEvent(ctx, tA, authpg.NewAuditEvent{Type: "x", Severity: "loud"}); !errors.Is(err, authpg.ErrInvalidInput) {
		t.Fatalf("bad severity: %v", err)
	}

	count := func(f authpg.AuditFilter) []*authpg.AuditEvent {
		t.Helper()
		xs, err := s.ListAuditEvents(ctx, tA, f)
		if err != nil {
			t.Fatal(err)
		}
		return xs
	}
	all := count(authpg.AuditFilter{})
	if len(all) != 4 || all[0].ID != last.ID || all[3].ID != first.ID {
		t.Fatalf("newest first: %v", all)
	}
	for name, c := range map[string]struct {
		f    authpg.AuditFilter
		want int
	}{
		"type":     {authpg.AuditFilter{Type: "login"}, 1},
		"user":     {authpg.AuditFilter{UserID: u.ID}, 3},
		"target":   {authpg.AuditFilter{TargetUserID: v.ID}, 1},
		"severity": {authpg.AuditFilter{Severity: authpg.SeverityWarning}, 1},
		"source":   {authpg.AuditFilter{Source: "web"}, 3},
		"since":    {authpg.AuditFilter{Since: before}, 4},
		"until":    {authpg.AuditFilter{Until: before}, 0},
		"future":   {authpg.AuditFilter{Since: time.Now().Add(time.Hour)}, 0},
		"limit":    {authpg.AuditFilter{Limit: 2}, 2},
		"offset":   {authpg.AuditFilter{Limit: 2, Offset: 3}, 1},
		"combined": {authpg.AuditFilter{UserID: u.ID, Source: "web", Severity: authpg.SeverityInfo}, 1},
	} {
		if got := count(c.f); len(got) != c.want {
			t.Errorf("%s: %d events, want %d", name, len(got), c.want)
		}
	}
	page := count(authpg.AuditFilter{Limit: 2, Offset: 2})
	if page[0].ID != all[2].ID {
		t.Fatal("offset pages out of order")
	}
	if xs, _ := s.ListAuditEvents(ctx, tB, authpg.AuditFilter{}); len(xs) != 1 {
		t.Fatalf("tenant B sees %d events", len(xs))
	}
	// The default limit bounds an unfiltered listing.
	e.superExec(t, `INSERT INTO auth.audit_events (tenant_id, event_type) SELECT $1, 'bulk' FROM generate_series(1, 150)`, tA)
	if got := count(authpg.AuditFilter{}); len(got) != authpg.DefaultAuditLimit {
		t.Fatalf("default limit: %d", len(got))
	}
	if got := count(authpg.AuditFilter{Limit: 5000}); len(got) != 154 {
		t.Fatalf("capped limit: %d", len(got))
	}
}

func TestBootstrapUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.store
	tA := newTenant()
	in := []authpg.BootstrapUser{
		{Handle: "owner", Email: "owner@example.test", DisplayName: "Owner", Password: "s3cret"},
		{Handle: "dev", DisplayName: "Dev", Password: "d3v", Role: authpg.RoleDeveloper},
	}
	res, err := s.BootstrapUsers(ctx, tA, in)
	if err != nil || len(res) != 2 || !res[0].Created || !res[1].Created {
		t.Fatalf("first bootstrap = %+v, %v", res, err)
	}
	if res[0].User.Role != authpg.RoleBusinessOwner || !authpg.CheckPassword(res[0].User.PasswordHash, "s3cret") {
		t.Fatalf("owner = %+v", res[0].User)
	}
	again, err := s.BootstrapUsers(ctx, tA, in)
	if err != nil || again[0].Created || again[1].Created {
		t.Fatalf("second bootstrap = %+v, %v", again, err)
	}
	// Idempotent: nothing changed, not even the password hash or updated_at.
	if again[0].User.PasswordHash != res[0].User.PasswordHash || !again[0].User.UpdatedAt.Equal(res[0].User.UpdatedAt) {
		t.Fatal("re-run rewrote the user")
	}
	in[0].Password, in[0].DisplayName = "rotated", "Owner 2"
	third, err := s.BootstrapUsers(ctx, tA, in)
	if err != nil || third[0].Created || third[0].User.DisplayName != "Owner 2" || !authpg.CheckPassword(third[0].User.PasswordHash, "rotated") {
		t.Fatalf("update via bootstrap = %+v, %v", third, err)
	}
	if list, _ := s.ListUsers(ctx, tA); len(list) != 2 {
		t.Fatalf("%d users", len(list))
	}
	if _, err := s.BootstrapUsers(ctx, tA, []authpg.BootstrapUser{{Handle: "x"}}); !errors.Is(err, authpg.ErrInvalidInput) {
		t.Fatalf("missing password: %v", err)
	}
}
