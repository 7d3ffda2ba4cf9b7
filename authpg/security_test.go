package authpg_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

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
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn string) {
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
		forged := y.ID + ".AAAA"
		for _, bad := range []string{"garbage", "", forged, strings.ToUpper(y.ID)[:30]} {
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
		if n, err := s.DeleteUserSessions(ctx, tn, "not-a-uuid"); !errors.Is(err, authpg.ErrInvalidInput) || n != 0 {
			t.Errorf("DeleteUserSessions(malformed) = %d, %v, want ErrInvalidInput", n, err)
		}
		if err := s.DeleteBackupCodes(ctx, tn, "not-a-uuid"); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("DeleteBackupCodes(malformed) = %v, want ErrInvalidInput", err)
		}
		if _, err := s.ListSessionsByUser(ctx, tn, "not-a-uuid"); !errors.Is(err, authpg.ErrInvalidInput) {
			t.Errorf("ListSessionsByUser(malformed) = %v, want ErrInvalidInput", err)
		}
		// The session id still works for the server-side callers.
		if err := s.DeleteSession(ctx, tn, y.ID); err != nil {
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
				if cur := currentTenant(t, ctx, tx); cur != tA {
					t.Errorf("after nested InTenant(B) the transaction is in %q, want A", cur)
				}
				if err := s.InTenant(ctx, tA, func(ts *authpg.Store) error {
					_, err := ts.GetUserByHandle(ctx, tA, "anna")
					return err
				}); err != nil {
					t.Errorf("nested InTenant(A): %v", err)
				}
				if cur := currentTenant(t, ctx, tx); cur != tA {
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
		pool := newPool(t, proxytest.URL(p.Addr, proxytest.AppUser+"."+tA, proxytest.AppUserPassword, e.db), nil)
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
	nilTenant := uuid.Nil.String()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn string) {
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
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn string) {
		ctx := testCtx(t)
		u, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "jay", Password: "pw-jay", PinHash: "pin-hash-value"})
		if err != nil {
			t.Fatal(err)
		}
		x := must(s.CreateSession(ctx, tn, u.ID, nil))
		if _, err := s.UpdateSession(ctx, tn, x.ID, authpg.SessionUpdate{TempTOTPSecret: ptr("ENROLSECRETXYZ23")}); err != nil {
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
		if !strings.Contains(out, x.ID) || !strings.Contains(out, "jay") {
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
