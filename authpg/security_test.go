package authpg_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestLogoutWithTokenEndsSession: DeleteSession and UpdateSession take the
// token the client holds, and the delete methods refuse ids they cannot
// act on instead of reporting success.
func TestLogoutWithTokenEndsSession(t *testing.T) {
	t.Parallel()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		u := mustUser(t, s, tn, "lou")
		x := must(s.CreateSession(ctx, tn, u.ID, nil))
		if up, err := s.UpdateSession(ctx, tn, x.Token, authpg.SessionUpdate{TOTPVerified: ptr(true)}); err != nil || !up.TOTPVerified {
			t.Fatalf("UpdateSession(token) = %+v, %v", up, err)
		}
		if err := s.DeleteSession(ctx, tn, x.Token); err != nil {
			t.Fatalf("DeleteSession(token): %v", err)
		}
		if _, err := s.GetSession(ctx, tn, x.Token); !errors.Is(err, authpg.ErrNotFound) {
			t.Fatalf("session still valid after logout with its token: %v", err)
		}
		// Logout is idempotent for a well-formed token.
		if err := s.DeleteSession(ctx, tn, x.Token); err != nil {
			t.Fatalf("second logout: %v", err)
		}
		y := must(s.CreateSession(ctx, tn, u.ID, nil))
		forged := y.ID.String() + ".AAAA"
		for _, bad := range []string{"garbage", "", forged, strings.ToUpper(y.ID.String()), y.ID.String()[:30], uuid.Nil.String()} {
			if err := s.DeleteSession(ctx, tn, bad); !errors.Is(err, authpg.ErrInvalidSession) {
				t.Errorf("DeleteSession(%q) = %v, want ErrInvalidSession", bad, err)
			}
			if _, err := s.UpdateSession(ctx, tn, bad, authpg.SessionUpdate{Extend: true}); !errors.Is(err, authpg.ErrInvalidSession) {
				t.Errorf("UpdateSession(%q) = %v, want ErrInvalidSession", bad, err)
			}
		}
		if _, err := s.GetSession(ctx, tn, y.Token); err != nil {
			t.Fatalf("a refused delete removed the session: %v", err)
		}
		if n, err := s.DeleteUserSessions(ctx, tn, uuid.Nil); !errors.Is(err, authpg.ErrInvalidInput) || n != 0 {
			t.Errorf("DeleteUserSessions(nil id) = %d, %v, want ErrInvalidInput", n, err)
		}
		if err := s.DeleteBackupCodes(ctx, tn, uuid.Nil); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("DeleteBackupCodes(nil id) = %v, want ErrInvalidInput", err)
		}
		if _, err := s.ListSessionsByUser(ctx, tn, uuid.Nil); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("ListSessionsByUser(nil id) = %v, want ErrInvalidInput", err)
		}
		// The session id still works for the server-side callers.
		if err := s.DeleteSession(ctx, tn, y.ID.String()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSession(ctx, tn, y.Token); !errors.Is(err, authpg.ErrNotFound) {
			t.Fatalf("DeleteSession(id) left the session: %v", err)
		}
	})
}

func currentTenant(t *testing.T, ctx context.Context, tx pgx.Tx) string {
	t.Helper()
	var cur *string
	if err := tx.QueryRow(ctx, `SELECT NULLIF(current_setting('app.current_tenant_id', true), '')`).Scan(&cur); err != nil {
		t.Fatal(err)
	}
	if cur == nil {
		return ""
	}
	return *cur
}

// TestNestedInTenantCannotSwitchTenant: an InTenant for another tenant
// inside WithTenant is refused with ErrTenantMismatch and the outer
// transaction stays in its tenant; the same tenant nests; on an unbound
// transaction the tenant is set for the inner call only.
func TestNestedInTenantCannotSwitchTenant(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	tA, tB := newTenant(), newTenant()
	mustUser(t, e.store, tA, "anna")
	mustUser(t, e.store, tB, "bert")
	for name, db := range map[string]authpg.DB{"direct": e.super, "WithTenant": e.app} {
		t.Run(name, func(t *testing.T) {
			err := authpg.WithTenant(ctx, db, tA, func(tx pgx.Tx) error {
				s, err := authpg.New(tx, opts())
				if err != nil {
					return err
				}
				ran := false
				err = s.InTenant(ctx, tB, func(*authpg.Store) error { ran = true; return nil })
				if !errors.Is(err, authpg.ErrTenantMismatch) || ran {
					t.Errorf("nested InTenant(B) = %v (ran %v), want ErrTenantMismatch", err, ran)
				}
				if cur := currentTenant(t, ctx, tx); cur != tA.String() {
					t.Errorf("after nested InTenant(B) the transaction is in %q, want A", cur)
				}
				if err := s.InTenant(ctx, tA, func(ts *authpg.Store) error {
					_, err := ts.GetUserByHandle(ctx, tA, "anna")
					return err
				}); err != nil {
					t.Errorf("nested InTenant(A): %v", err)
				}
				if cur := currentTenant(t, ctx, tx); cur != tA.String() {
					t.Errorf("after nested InTenant(A): %q", cur)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// An unbound caller transaction: bound for fn only.
			tx, err := db.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tx.Rollback(ctx) }()
			s, _ := authpg.New(tx, opts())
			if err := s.InTenant(ctx, tB, func(ts *authpg.Store) error {
				_, err := ts.GetUserByHandle(ctx, tB, "bert")
				return err
			}); err != nil {
				t.Fatalf("InTenant(B) on an unbound transaction: %v", err)
			}
			if cur := currentTenant(t, ctx, tx); cur != "" {
				t.Fatalf("the caller's transaction was left in tenant %q", cur)
			}
		})
	}
	t.Run("multigres", func(t *testing.T) {
		p := startProxy(t, e)
		pool := newPool(t, proxytest.URL(p.Addr, proxytest.AppUser+"."+tA.String(), proxytest.AppUserPassword, e.db), nil)
		s, err := authpg.New(pool, opts())
		if err != nil {
			t.Fatal(err)
		}
		// The proxy binds the connection to A: B is refused before any
		// statement tries to change the tenant, and A needs no change.
		if err := s.InTenant(ctx, tB, func(*authpg.Store) error { return nil }); !errors.Is(err, authpg.ErrTenantMismatch) {
			t.Fatalf("InTenant(B) through multigres as A = %v, want ErrTenantMismatch", err)
		}
		if err := s.InTenant(ctx, tA, func(ts *authpg.Store) error {
			_, err := ts.GetUserByHandle(ctx, tA, "anna")
			return err
		}); err != nil {
			t.Fatalf("InTenant(A) through multigres as A: %v", err)
		}
	})
}

// TestNilTenantIsRejected: the all-zero UUID, an unset uuid.UUID, is not
// a tenant.
func TestNilTenantIsRejected(t *testing.T) {
	t.Parallel()
	nilTenant := uuid.Nil
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		if _, err := s.CreateUser(ctx, nilTenant, authpg.NewUser{Handle: "ghost"}); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("CreateUser(nil tenant) = %v, want ErrInvalidTenant", err)
		}
		if _, err := s.LogAuditEvent(ctx, nilTenant, authpg.NewAuditEvent{Type: "x"}); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("LogAuditEvent(nil tenant) = %v, want ErrInvalidTenant", err)
		}
		if _, err := s.ListUsers(ctx, nilTenant); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("ListUsers(nil tenant) = %v, want ErrInvalidTenant", err)
		}
		if err := s.InTenant(ctx, nilTenant, func(*authpg.Store) error { return nil }); !errors.Is(err, authpg.ErrInvalidTenant) {
			t.Errorf("InTenant(nil tenant) = %v, want ErrInvalidTenant", err)
		}
	})
}

// TestSecretsStayOutOfJSON: encoding what the list methods return (a
// "your devices" or "team" page) shows no token, hash or TOTP secret.
func TestSecretsStayOutOfJSON(t *testing.T) {
	t.Parallel()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		u, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "jay", Password: "pw-jay", PinHash: "pin-hash-value"})
		if err != nil {
			t.Fatal(err)
		}
		x := must(s.CreateSession(ctx, tn, u.ID, nil))
		if _, err := s.UpdateSession(ctx, tn, x.Token, authpg.SessionUpdate{TempTOTPSecret: ptr("ENROLSECRETXYZ23")}); err != nil {
			t.Fatal(err)
		}
		inv := must(s.CreateInvitation(ctx, tn, authpg.NewInvitation{Email: "inv@example.test"}))
		if _, err := s.GenerateBackupCodes(ctx, tn, u.ID); err != nil {
			t.Fatal(err)
		}
		sessions := must(s.ListSessions(ctx, tn))
		users := must(s.ListUsers(ctx, tn))
		codes := must(s.GetBackupCodes(ctx, tn, u.ID))
		b, err := json.Marshal(map[string]any{"sessions": sessions, "users": users, "invitation": inv, "codes": codes})
		if err != nil {
			t.Fatal(err)
		}
		out := string(b)
		if !strings.Contains(out, x.ID.String()) || !strings.Contains(out, "jay") {
			t.Fatalf("the encoding lost the visible fields: %s", out)
		}
		for name, secret := range map[string]string{"session token": x.Token, "password hash": u.PasswordHash,
			"pin hash": "pin-hash-value", "enrolment secret": "ENROLSECRETXYZ23", "invitation token": inv.Token,
			"backup code hash": codes.Codes[0].CodeHash} {
			if strings.Contains(out, secret) {
				t.Errorf("JSON contains the %s", name)
			}
		}
	})
}

// TestPasswordOver72BytesIsInvalidInput: bcrypt reads 72 bytes at most;
// longer is a typed error, not the library's.
func TestPasswordOver72BytesIsInvalidInput(t *testing.T) {
	t.Parallel()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		long := strings.Repeat("p", 73)
		if _, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "long", Password: long}); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("CreateUser(73-byte password) = %v, want ErrInvalidInput", err)
		}
		u := mustUser(t, s, tn, "short")
		if _, err := s.UpdateUser(ctx, tn, u.ID, authpg.UserUpdate{Password: &long}); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("UpdateUser(73-byte password) = %v, want ErrInvalidInput", err)
		}
		if _, err := s.HashPassword(long); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("HashPassword(73 bytes) = %v, want ErrInvalidInput", err)
		}
		if _, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "max", Password: strings.Repeat("p", 72)}); err != nil {
			t.Errorf("CreateUser(72-byte password): %v", err)
		}
	})
}

// TestInvitationLifecycle: the expiry rules of update match create, a used
// invitation is not offered again, tokens are stored hashed, and
// AcceptInvitationWithUser creates the user and accepts in one step (or
// does neither).
func TestInvitationLifecycle(t *testing.T) {
	t.Parallel()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		inv := must(s.CreateInvitation(ctx, tn, authpg.NewInvitation{Email: "new@example.test", Role: authpg.RoleEditor}))
		for _, d := range []time.Duration{-time.Hour, 0} {
			if _, err := s.UpdateInvitation(ctx, tn, inv.Token, authpg.InvitationUpdate{ExpiresIn: &d}); !errors.Is(err, authpg.ErrInvalidInput) {
				t.Errorf("UpdateInvitation(ExpiresIn %v) = %v, want ErrInvalidInput", d, err)
			}
		}
		if _, err := s.CreateInvitation(ctx, tn, authpg.NewInvitation{Email: "x@example.test", Token: "short"}); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("CreateInvitation(short token) = %v, want ErrInvalidInput", err)
		}
		// A taken handle: no user, and the invitation stays pending.
		mustUser(t, s, tn, "taken")
		if _, _, err := s.AcceptInvitationWithUser(ctx, tn, inv.Token, authpg.NewUser{Handle: "taken", Password: "pw"}); !errors.Is(err, authpg.ErrHandleTaken) {
			t.Fatalf("AcceptInvitationWithUser(taken handle) = %v, want ErrHandleTaken", err)
		}
		if _, err := s.GetInvitation(ctx, tn, inv.Token); err != nil {
			t.Fatalf("invitation consumed by a failed sign-up: %v", err)
		}
		if _, _, err := s.AcceptInvitationWithUser(ctx, tn, inv.Token, authpg.NewUser{Handle: "newbie", Password: "pw", Role: authpg.RoleDeveloper}); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Fatalf("AcceptInvitationWithUser(other role) = %v, want ErrInvalidInput", err)
		}
		u, acc, err := s.AcceptInvitationWithUser(ctx, tn, inv.Token, authpg.NewUser{Handle: "newbie", Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Email == nil || *u.Email != "new@example.test" || u.Role != authpg.RoleEditor || acc.AcceptedAt == nil || acc.ID != inv.ID {
			t.Fatalf("user = %+v, invitation = %+v", u, acc)
		}
		if _, err := s.GetInvitation(ctx, tn, inv.Token); !errors.Is(err, authpg.ErrNotFound) {
			t.Errorf("GetInvitation returned an accepted invitation: %v", err)
		}
		if _, _, err := s.AcceptInvitationWithUser(ctx, tn, inv.Token, authpg.NewUser{Handle: "again", Password: "pw"}); !errors.Is(err, authpg.ErrInvitationUsed) {
			t.Errorf("second AcceptInvitationWithUser = %v, want ErrInvitationUsed", err)
		}
		if _, err := s.GetUserByHandle(ctx, tn, "again"); !errors.Is(err, authpg.ErrNotFound) {
			t.Errorf("a refused acceptance created its user: %v", err)
		}
	})
}

// TestInvitationTokensAreStoredHashed: the table holds SHA-256 of the token,
// never the token, and the stored value does not work as a token.
func TestInvitationTokensAreStoredHashed(t *testing.T) {
	t.Parallel()
	inModesCommitted(t, opts(), func(t *testing.T, e *env, run func(func(*authpg.Store)), tn uuid.UUID) {
		ctx := testCtx(t)
		var inv *authpg.Invitation
		run(func(s *authpg.Store) {
			inv = must(s.CreateInvitation(ctx, tn, authpg.NewInvitation{Email: "h@example.test"}))
		})
		var stored string
		if err := e.super.QueryRow(ctx, `SELECT token_hash FROM auth.invitations WHERE id = $1`, inv.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(inv.Token))
		if stored != hex.EncodeToString(sum[:]) || strings.Contains(stored, inv.Token) {
			t.Fatalf("stored %q for token %q", stored, inv.Token)
		}
		run(func(s *authpg.Store) {
			if _, err := s.AcceptInvitation(ctx, tn, stored); !errors.Is(err, authpg.ErrNotFound) {
				t.Errorf("AcceptInvitation(stored hash) = %v, want ErrNotFound", err)
			}
			if _, err := s.AcceptInvitation(ctx, tn, inv.Token); err != nil {
				t.Errorf("AcceptInvitation(token): %v", err)
			}
		})
	})
}

// TestCleanupAllTenants: the maintenance job's cleanup reaches every
// tenant on a role that bypasses RLS, and an RLS-bound role is refused
// instead of silently cleaning nothing.
func TestCleanupAllTenants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	var tenants []uuid.UUID
	for i := 0; i < 3; i++ {
		tn := newTenant()
		tenants = append(tenants, tn)
		u := mustUser(t, e.store, tn, "u")
		dead := must(e.store.CreateSession(ctx, tn, u.ID, nil))
		must(e.store.CreateSession(ctx, tn, u.ID, nil))
		old := must(e.store.CreateInvitation(ctx, tn, authpg.NewInvitation{Email: "o@example.test"}))
		e.superExec(t, `UPDATE auth.sessions SET expires_at = now() - interval '1 s' WHERE id = $1`, dead.ID)
		e.superExec(t, `UPDATE auth.invitations SET expires_at = now() - interval '1 s' WHERE id = $1`, old.ID)
	}
	e.superExec(t, `INSERT INTO auth.attempt_limits (tenant_id, kind, subject, failures, window_started_at)
		VALUES ($1, 'password', 'login:x', 1, now() - interval '1 day'), ($1, 'password', 'login:y', 1, now())`, tenants[0])
	if _, err := e.appSt.CleanupAllTenants(ctx); !errors.Is(err, authpg.ErrForbidden) {
		t.Fatalf("CleanupAllTenants on an RLS-bound role = %v, want ErrForbidden", err)
	}
	if _, err := e.appSt.ListTenants(ctx); !errors.Is(err, authpg.ErrForbidden) {
		t.Fatalf("ListTenants on an RLS-bound role = %v, want ErrForbidden", err)
	}
	// A tenant with only an invitation is a tenant too.
	invOnly := newTenant()
	must(e.store.CreateInvitation(ctx, invOnly, authpg.NewInvitation{Email: "first@example.test"}))
	want := append([]uuid.UUID{invOnly}, tenants...)
	sort.Slice(want, func(i, j int) bool { return want[i].String() < want[j].String() })
	got := must(e.store.ListTenants(ctx))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ListTenants = %v, want %v", got, want)
	}
	r, err := e.store.CleanupAllTenants(ctx)
	if err != nil || r.Sessions != 3 || r.Invitations != 3 || r.Attempts != 1 {
		t.Fatalf("CleanupAllTenants = %+v, %v, want 3 sessions, 3 invitations, 1 counter", r, err)
	}
	for _, tn := range tenants {
		if l := must(e.store.ListSessions(ctx, tn)); len(l) != 1 {
			t.Fatalf("tenant %s has %d live sessions, want 1", tn, len(l))
		}
	}
}
