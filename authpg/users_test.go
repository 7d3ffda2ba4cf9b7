package authpg_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg"
)

func ptr[T any](v T) *T { return &v }

func TestUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.store
	tA, tB := newTenant(), newTenant()

	if ok, err := s.HasUsers(ctx, tA); err != nil || ok {
		t.Fatalf("HasUsers on empty tenant = %v, %v", ok, err)
	}
	a := mustUser(t, s, tA, "Alice")
	if a.TenantID != tA || a.Handle != "Alice" || a.Role != authpg.RoleEditor || !a.IsActive || !a.NeedsOnboarding {
		t.Fatalf("created user = %+v", a)
	}
	if !authpg.CheckPassword(a.PasswordHash, "pw-Alice") {
		t.Fatal("password not hashed with bcrypt")
	}
	// Same handle in another tenant is fine; same handle (any case) in the
	// same tenant is not, nor the same email.
	b := mustUser(t, s, tB, "alice")
	if b.TenantID != tB || b.ID == a.ID {
		t.Fatalf("tenant B user = %+v", b)
	}
	if _, err := s.CreateUser(ctx, tA, authpg.NewUser{Handle: "ALICE"}); !errors.Is(err, authpg.ErrHandleTaken) {
		t.Fatalf("duplicate handle: %v", err)
	}
	if _, err := s.CreateUser(ctx, tA, authpg.NewUser{Handle: "other", Email: "ALICE@example.test"}); !errors.Is(err, authpg.ErrEmailTaken) {
		t.Fatalf("duplicate email: %v", err)
	}
	if _, err := s.CreateUser(ctx, tA, authpg.NewUser{Handle: "x", Role: "admin"}); !errors.Is(err, authpg.ErrInvalidRole) {
		t.Fatalf("bad role: %v", err)
	}

	for name, get := range map[string]func() (*authpg.User, error){
		"GetUser":         func() (*authpg.User, error) { return s.GetUser(ctx, tA, a.ID) },
		"GetUserByHandle": func() (*authpg.User, error) { return s.GetUserByHandle(ctx, tA, "aLiCe") },
		"GetUserByEmail":  func() (*authpg.User, error) { return s.GetUserByEmail(ctx, tA, "Alice@EXAMPLE.test") },
	} {
		u, err := get()
		if err != nil || u.ID != a.ID || u.TenantID != tA {
			t.Fatalf("%s = %+v, %v", name, u, err)
		}
	}
	if _, err := s.GetUser(ctx, tA, b.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("GetUser of other tenant's id: %v", err)
	}
	if _, err := s.GetUser(ctx, tA, uuid.Nil); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("GetUser nil id: %v", err)
	}

	// Every field can be updated alone.
	up, err := s.UpdateUser(ctx, tA, a.ID, authpg.UserUpdate{
		Handle: ptr("alice2"), Email: ptr("a2@example.test"), DisplayName: ptr("A2"), Password: ptr("new"),
		PinHash: ptr("pinhash"), Role: ptr(authpg.RoleBusinessOwner), IsActive: ptr(false), TOTPEnabled: ptr(true),
		NeedsOnboarding: ptr(false), OnboardingStep: ptr(3), TouchLastLogin: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if up.Handle != "alice2" || *up.Email != "a2@example.test" || up.DisplayName != "A2" ||
		!authpg.CheckPassword(up.PasswordHash, "new") || *up.PinHash != "pinhash" || up.Role != authpg.RoleBusinessOwner ||
		up.IsActive || !up.TOTPEnabled || up.NeedsOnboarding || up.OnboardingStep != 3 || up.LastLoginAt == nil ||
		up.UpdatedAt.Before(a.UpdatedAt) {
		t.Fatalf("updated = %+v", up)
	}
	// A partial update leaves the rest alone; "" clears nullable fields.
	up2, err := s.UpdateUser(ctx, tA, a.ID, authpg.UserUpdate{Email: ptr(""), PinHash: ptr("")})
	if err != nil {
		t.Fatal(err)
	}
	if up2.Email != nil || up2.PinHash != nil || up2.Handle != "alice2" || up2.Role != authpg.RoleBusinessOwner {
		t.Fatalf("partial update = %+v", up2)
	}
	up3, err := s.UpdateUser(ctx, tA, a.ID, authpg.UserUpdate{PasswordHash: ptr("raw")})
	if err != nil || up3.PasswordHash != "raw" {
		t.Fatalf("PasswordHash update = %+v, %v", up3, err)
	}
	if _, err := s.UpdateUser(ctx, tA, b.ID, authpg.UserUpdate{DisplayName: ptr("x")}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("UpdateUser of other tenant's user: %v", err)
	}
	if _, err := s.UpdateUser(ctx, tA, a.ID, authpg.UserUpdate{Role: ptr("root")}); !errors.Is(err, authpg.ErrInvalidRole) {
		t.Fatalf("UpdateUser bad role: %v", err)
	}
	c := mustUser(t, s, tA, "carol")
	if _, err := s.UpdateUser(ctx, tA, c.ID, authpg.UserUpdate{Handle: ptr("ALICE2")}); !errors.Is(err, authpg.ErrHandleTaken) {
		t.Fatalf("rename onto taken handle: %v", err)
	}

	list, err := s.ListUsers(ctx, tA)
	if err != nil || len(list) != 2 || list[0].Handle != "alice2" || list[1].Handle != "carol" {
		t.Fatalf("ListUsers = %v, %v", list, err)
	}
	if ok, err := s.HasUsers(ctx, tA); err != nil || !ok {
		t.Fatalf("HasUsers = %v, %v", ok, err)
	}

	if err := s.DeleteUser(ctx, tA, b.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("DeleteUser of other tenant's user: %v", err)
	}
	if _, err := s.GetUser(ctx, tB, b.ID); err != nil {
		t.Fatalf("tenant B user gone after cross-tenant delete: %v", err)
	}
	if err := s.DeleteUser(ctx, tA, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, tA, c.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("second DeleteUser: %v", err)
	}
}
