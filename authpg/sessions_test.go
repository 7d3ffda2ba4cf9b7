package authpg_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/internal/pgtest"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	s := e.store
	tA, tB := newTenant(), newTenant()
	u := mustUser(t, s, tA, "sam")
	u2 := mustUser(t, s, tA, "sue")

	x, err := s.CreateSession(ctx, tA, u.ID, &authpg.SessionMetadata{IPAddress: "203.0.113.9", UserAgent: "UA/1", Extra: map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if x.TenantID != tA || x.UserID != u.ID || *x.IPAddress != "203.0.113.9" || *x.UserAgent != "UA/1" || x.Metadata["k"] != "v" {
		t.Fatalf("session = %+v", x)
	}
	// Default max age is 7 days from the database clock.
	if d := x.ExpiresAt.Sub(x.CreatedAt); d != authpg.DefaultSessionMaxAge {
		t.Fatalf("expires - created = %v", d)
	}
	if !strings.HasPrefix(x.Token, x.ID.String()+".") {
		t.Fatalf("token %q does not start with id", x.Token)
	}
	got, err := s.GetSession(ctx, tA, x.Token)
	if err != nil || got.ID != x.ID || got.Token != x.Token {
		t.Fatalf("GetSession = %+v, %v", got, err)
	}
	// Bad signatures are refused before any query: a closed store would
	// fail any query with ErrClosed, but here the signature check answers.
	id := x.ID.String()
	bad := []string{id, id + ".", id + ".AAAA", strings.ToUpper(id) + x.Token[36:], "garbage", ""}
	for _, tok := range bad {
		if _, err := s.GetSession(ctx, tA, tok); !errors.Is(err, authpg.ErrInvalidSession) {
			t.Errorf("GetSession(%q) = %v, want ErrInvalidSession", tok, err)
		}
	}
	// Signing is over canonical forms: a tenant parsed from upper case
	// signs the same.
	upper := uuid.MustParse(strings.ToUpper(tA.String()))
	if tok := s.SignSessionID(upper, x.ID); tok != x.Token {
		t.Fatalf("SignSessionID(upper tenant) = %q, want %q", tok, x.Token)
	}
	if _, err := s.GetSession(ctx, upper, x.Token); err != nil {
		t.Fatalf("GetSession with upper-case tenant: %v", err)
	}
	// A token is bound to its tenant.
	if _, err := s.GetSession(ctx, tB, x.Token); !errors.Is(err, authpg.ErrInvalidSession) {
		t.Fatalf("token replayed in tenant B: %v", err)
	}
	// A token signed with another secret is refused.
	other, _ := authpg.New(e.super, authpg.Options{SessionSecret: []byte("another-secret-of-32-bytes------")})
	if _, err := other.GetSession(ctx, tA, x.Token); !errors.Is(err, authpg.ErrInvalidSession) {
		t.Fatalf("foreign secret: %v", err)
	}

	up, err := s.UpdateSession(ctx, tA, x.Token, authpg.SessionUpdate{TempTOTPSecret: ptr("TEMPSECRET"), TOTPVerified: ptr(true),
		IPAddress: ptr("198.51.100.1"), UserAgent: ptr("UA/2"), Metadata: map[string]any{"n": 1.0}})
	if err != nil {
		t.Fatal(err)
	}
	if *up.TempTOTPSecret != "TEMPSECRET" || !up.TOTPVerified || *up.IPAddress != "198.51.100.1" || *up.UserAgent != "UA/2" ||
		up.Metadata["n"] != 1.0 || !up.ExpiresAt.Equal(x.ExpiresAt) {
		t.Fatalf("updated = %+v", up)
	}
	up, err = s.UpdateSession(ctx, tA, x.Token, authpg.SessionUpdate{TempTOTPSecret: ptr(""), ExpiresIn: ptr(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if up.TempTOTPSecret != nil || up.ExpiresAt.Sub(up.LastActivityAt) != time.Hour {
		t.Fatalf("cleared/expiry = %+v", up)
	}
	up, err = s.UpdateSession(ctx, tA, x.Token, authpg.SessionUpdate{Extend: true})
	if err != nil || up.ExpiresAt.Sub(up.LastActivityAt) != authpg.DefaultSessionMaxAge {
		t.Fatalf("extend = %+v, %v", up, err)
	}
	if _, err := s.UpdateSession(ctx, tB, x.ID.String(), authpg.SessionUpdate{Extend: true}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("UpdateSession across tenants: %v", err)
	}

	y, _ := s.CreateSession(ctx, tA, u.ID, nil)
	z, _ := s.CreateSession(ctx, tA, u2.ID, nil)
	if byUser, err := s.ListSessionsByUser(ctx, tA, u.ID); err != nil || len(byUser) != 2 {
		t.Fatalf("ListSessionsByUser = %v, %v", byUser, err)
	}
	if all, err := s.ListSessions(ctx, tA); err != nil || len(all) != 3 {
		t.Fatalf("ListSessions = %v, %v", all, err)
	}
	if all, err := s.ListSessions(ctx, tB); err != nil || len(all) != 0 {
		t.Fatalf("ListSessions tenant B = %v, %v", all, err)
	}
	if err := s.DeleteSession(ctx, tA, y.ID.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, tA, y.Token); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("deleted session: %v", err)
	}
	if n, err := s.DeleteUserSessions(ctx, tB, u.ID); err != nil || n != 0 {
		t.Fatalf("DeleteUserSessions across tenants = %d, %v", n, err)
	}
	if n, err := s.DeleteUserSessions(ctx, tA, u.ID); err != nil || n != 1 {
		t.Fatalf("DeleteUserSessions = %d, %v", n, err)
	}
	if _, err := s.GetSession(ctx, tA, z.Token); err != nil {
		t.Fatalf("other user's session gone: %v", err)
	}
	// Creating a session for another tenant's user is refused by the
	// tenant-including foreign key.
	if _, err := s.CreateSession(ctx, tB, u.ID, nil); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("CreateSession for other tenant's user: %v", err)
	}
}

// TestSessionExpiryUsesDatabaseClock fakes the app clock 200 years ahead
// and runs with odd TimeZone, DateStyle and IntervalStyle settings: expiry
// must follow the database's now() alone.
func TestSessionExpiryUsesDatabaseClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	odd := newPool(t, pgtest.Shared().SuperURL(e.db), func(c *pgxpool.Config) {
		c.ConnConfig.RuntimeParams["timezone"] = "Pacific/Chatham"
		c.ConnConfig.RuntimeParams["datestyle"] = "SQL, DMY"
		c.ConnConfig.RuntimeParams["intervalstyle"] = "iso_8601"
	})
	for name, now := range map[string]func() time.Time{
		"future": func() time.Time { return time.Now().AddDate(200, 0, 0) },
		"past":   func() time.Time { return time.Unix(0, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			o := opts()
			o.Now = now
			o.SessionMaxAge = time.Hour
			s, err := authpg.New(odd, o)
			if err != nil {
				t.Fatal(err)
			}
			tA := newTenant()
			u := mustUser(t, s, tA, "clock")
			live, err := s.CreateSession(ctx, tA, u.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := live.ExpiresAt.Sub(live.CreatedAt); d != time.Hour {
				t.Fatalf("SessionMaxAge 1h gave %v", d)
			}
			dead, _ := s.CreateSession(ctx, tA, u.ID, nil)
			// Expire one by the database clock only.
			e.superExec(t, `UPDATE auth.sessions SET expires_at = now() - interval '1 second' WHERE id = $1`, dead.ID)
			if _, err := s.GetSession(ctx, tA, live.Token); err != nil {
				t.Fatalf("live session: %v", err)
			}
			if _, err := s.GetSession(ctx, tA, dead.Token); !errors.Is(err, authpg.ErrNotFound) {
				t.Fatalf("expired session returned: %v", err)
			}
			if _, err := s.UpdateSession(ctx, tA, dead.Token, authpg.SessionUpdate{Extend: true}); !errors.Is(err, authpg.ErrNotFound) {
				t.Fatalf("expired session extended: %v", err)
			}
			for _, list := range [][]*authpg.Session{must(s.ListSessions(ctx, tA)), must(s.ListSessionsByUser(ctx, tA, u.ID))} {
				if len(list) != 1 || list[0].ID != live.ID {
					t.Fatalf("live list = %v", list)
				}
			}
			if n, err := s.CleanupExpiredSessions(ctx, tA); err != nil || n != 1 {
				t.Fatalf("CleanupExpiredSessions = %d, %v", n, err)
			}
			if n, err := s.CleanupExpiredSessions(ctx, tA); err != nil || n != 0 {
				t.Fatalf("second cleanup = %d, %v", n, err)
			}
			if _, err := s.GetSession(ctx, tA, live.Token); err != nil {
				t.Fatalf("cleanup removed a live session: %v", err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
