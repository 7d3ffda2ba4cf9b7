package authpg_test

import (
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/totp"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestAuthenticate: login by handle or e-mail, case-insensitively, starts a
// session, sets last login and records audit events; wrong passwords,
// unknown names and deactivated users are refused with typed errors.
func TestAuthenticate(t *testing.T) {
	t.Parallel()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		u := mustUser(t, s, tn, "kim") // password pw-kim
		md := &authpg.SessionMetadata{IPAddress: "203.0.113.5", UserAgent: "UA"}
		for _, login := range []string{"KIM", "Kim@Example.Test", " kim "} {
			l, err := s.Authenticate(ctx, tn, login, "pw-kim", md)
			if err != nil {
				t.Fatalf("Authenticate(%q): %v", login, err)
			}
			if l.User.ID != u.ID || l.User.LastLoginAt == nil || l.NeedsTOTP || l.Session.UserID != u.ID || *l.Session.IPAddress != "203.0.113.5" {
				t.Fatalf("login = %+v / %+v", l.User, l.Session)
			}
			if got, err := s.GetSession(ctx, tn, l.Session.Token); err != nil || got.ID != l.Session.ID {
				t.Fatalf("GetSession(login token) = %+v, %v", got, err)
			}
		}
		for _, c := range []struct{ login, password string }{{"kim", "wrong"}, {"nobody", "pw-kim"}, {"kim", ""}} {
			if _, err := s.Authenticate(ctx, tn, c.login, c.password, md); !errors.Is(err, authpg.ErrInvalidCredentials) {
				t.Errorf("Authenticate(%q, %q) = %v, want ErrInvalidCredentials", c.login, c.password, err)
			}
		}
		for _, name := range []string{"", strings.Repeat("k", 321)} {
			if _, err := s.Authenticate(ctx, tn, name, "x", nil); !errors.Is(err, authpg.ErrInvalidInput) {
				t.Errorf("login name of %d bytes: %v, want ErrInvalidInput", len(name), err)
			}
		}
		// bcrypt reads 72 bytes: a longer password never matches a
		// 72-byte one by its prefix.
		p72 := strings.Repeat("x", 72)
		if _, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "p72", Password: p72}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, tn, "p72", p72+"extra", nil); !errors.Is(err, authpg.ErrInvalidCredentials) {
			t.Errorf("72-byte prefix plus more = %v, want ErrInvalidCredentials", err)
		}
		off, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "off", Password: "pw-off", IsActive: ptr(false)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, tn, "off", "pw-off", nil); !errors.Is(err, authpg.ErrUserInactive) {
			t.Errorf("inactive user: %v, want ErrUserInactive", err)
		}
		if l, _ := s.ListSessionsByUser(ctx, tn, off.ID); len(l) != 0 {
			t.Errorf("inactive user got a session")
		}
		tfa, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "tfa", Password: "pw-tfa", TOTPEnabled: true})
		if err != nil {
			t.Fatal(err)
		}
		if l, err := s.Authenticate(ctx, tn, "tfa", "pw-tfa", nil); err != nil || !l.NeedsTOTP || l.Session.TOTPVerified || l.User.ID != tfa.ID {
			t.Fatalf("TOTP user login = %+v, %v", l, err)
		}
		ok := must(s.ListAuditEvents(ctx, tn, authpg.AuditFilter{Type: authpg.EventLogin, UserID: u.ID}))
		failed := must(s.ListAuditEvents(ctx, tn, authpg.AuditFilter{Type: authpg.EventLoginFailed}))
		if len(ok) != 3 || len(failed) != 5 || failed[0].Severity != authpg.SeverityWarning {
			t.Fatalf("audit: %d logins, %d failures (%+v)", len(ok), len(failed), failed)
		}
	})
}

// TestAttemptLimitsLockAndUnlock: after MaxFailures failures the subject is
// locked out (even with the right password, code or backup code), until
// an administrator unlocks it or the lockout passes by the database
// clock; a success clears the count.
func TestAttemptLimitsLockAndUnlock(t *testing.T) {
	t.Parallel()
	o := opts()
	o.Limits = authpg.Limits{Password: authpg.Limit{MaxFailures: 3}, TOTP: authpg.Limit{MaxFailures: 2},
		BackupCode: authpg.Limit{MaxFailures: 2}}
	clock := time.Now()
	o.Now = func() time.Time { return clock }
	e := newEnv(t)
	inModes(t, o, func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		// Within InTenant everything is one transaction: now() stands
		// still and other connections cannot see the counters.
		committed := !strings.Contains(t.Name(), "WithTenant")
		u := mustUser(t, s, tn, "lee")
		wrong := func(n int) {
			t.Helper()
			for i := 0; i < n; i++ {
				if _, err := s.Authenticate(ctx, tn, "lee", "wrong", nil); !errors.Is(err, authpg.ErrInvalidCredentials) {
					t.Fatalf("wrong password %d: %v", i+1, err)
				}
			}
		}
		// A success clears the count: 2 + 2 failures never lock at 3.
		wrong(2)
		if _, err := s.Authenticate(ctx, tn, "lee", "pw-lee", nil); err != nil {
			t.Fatal(err)
		}
		wrong(2)
		if _, err := s.Authenticate(ctx, tn, "lee", "pw-lee", nil); err != nil {
			t.Fatalf("locked although a success cleared the count: %v", err)
		}
		wrong(3)
		if _, err := s.Authenticate(ctx, tn, "lee", "pw-lee", nil); !errors.Is(err, authpg.ErrTooManyAttempts) {
			t.Fatalf("right password while locked = %v, want ErrTooManyAttempts", err)
		}
		if l := must(s.ListAuditEvents(ctx, tn, authpg.AuditFilter{Type: authpg.EventLoginLocked})); len(l) != 1 {
			t.Fatalf("%d login_locked events, want 1", len(l))
		}
		if n, err := s.UnlockUser(ctx, tn, u.ID); err != nil || n != 1 {
			t.Fatalf("UnlockUser = %d, %v", n, err)
		}
		if _, err := s.Authenticate(ctx, tn, "lee", "pw-lee", nil); err != nil {
			t.Fatalf("after UnlockUser: %v", err)
		}
		// Unknown login names are limited too.
		for i := 0; i < 3; i++ {
			_, _ = s.Authenticate(ctx, tn, "nobody", "x", nil)
		}
		if _, err := s.Authenticate(ctx, tn, "nobody", "x", nil); !errors.Is(err, authpg.ErrTooManyAttempts) {
			t.Fatalf("unknown name after 3 failures = %v, want ErrTooManyAttempts", err)
		}

		// TOTP and backup codes.
		if err := s.SaveTOTPSecret(ctx, tn, u.ID, enrolSecret); err != nil {
			t.Fatal(err)
		}
		codes := must(s.GenerateBackupCodes(ctx, tn, u.ID))
		for i := 0; i < 2; i++ {
			if ok, err := s.VerifyTOTP(ctx, tn, u.ID, "000000"); ok || err != nil {
				t.Fatalf("wrong TOTP %d = %v, %v", i+1, ok, err)
			}
			if ok, err := s.ConsumeBackupCode(ctx, tn, u.ID, "AAAAA-AAAAA"); ok || err != nil {
				t.Fatalf("wrong backup code %d = %v, %v", i+1, ok, err)
			}
		}
		code, _ := totp.Code(enrolSecret, clock)
		if _, err := s.VerifyTOTP(ctx, tn, u.ID, code); !errors.Is(err, authpg.ErrTooManyAttempts) {
			t.Fatalf("right TOTP while locked = %v, want ErrTooManyAttempts", err)
		}
		if _, err := s.ConsumeBackupCode(ctx, tn, u.ID, codes[0]); !errors.Is(err, authpg.ErrTooManyAttempts) {
			t.Fatalf("right backup code while locked = %v, want ErrTooManyAttempts", err)
		}
		if !committed {
			if _, err := s.UnlockUser(ctx, tn, u.ID); err != nil {
				t.Fatal(err)
			}
		} else {
			// The lockout passes by the database clock.
			e.superExec(t, `UPDATE auth.attempt_limits SET locked_until = now() - interval '1 s',
				window_started_at = now() - interval '1 day' WHERE tenant_id = $1`, tn)
		}
		if ok, err := s.VerifyTOTP(ctx, tn, u.ID, code); err != nil || !ok {
			t.Fatalf("TOTP after the lockout = %v, %v", ok, err)
		}
		if ok, err := s.ConsumeBackupCode(ctx, tn, u.ID, codes[0]); err != nil || !ok {
			t.Fatalf("backup code after the lockout = %v, %v", ok, err)
		}
	}, e)
}

// TestAttemptLimitHoldsAcrossStores: concurrent wrong attempts through two
// Stores on two pools (two app servers) run exactly MaxFailures checks
// between them; the rest are refused without a check. Directly, with each
// attempt in its own InTenant transaction on the RLS-bound role, and
// through multigres.
func TestAttemptLimitHoldsAcrossStores(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := opts()
	o.Limits.Password.MaxFailures = 5
	o.Limits.BackupCode.MaxFailures = 4
	// attempt wraps one call for the mode.
	type attempt func(s *authpg.Store, tn uuid.UUID, f func(*authpg.Store) error) error
	direct := func(s *authpg.Store, _ uuid.UUID, f func(*authpg.Store) error) error { return f(s) }
	inTenant := func(s *authpg.Store, tn uuid.UUID, f func(*authpg.Store) error) error {
		var callErr error
		// Commit whatever the call did, as an app handling a failed
		// login inside InTenant must.
		if err := s.InTenant(testCtx(t), tn, func(s *authpg.Store) error { callErr = f(s); return nil }); err != nil {
			return err
		}
		return callErr
	}
	var p *proxytest.Proxy
	modes := []struct {
		name  string
		pools func(tn uuid.UUID) (string, string)
		wrap  attempt
	}{
		{"direct", func(uuid.UUID) (string, string) {
			return e.super.Config().ConnString(), e.super.Config().ConnString()
		}, direct},
		{"WithTenant", func(uuid.UUID) (string, string) {
			return e.app.Config().ConnString(), e.app.Config().ConnString()
		}, inTenant},
		{"multigres", func(tn uuid.UUID) (string, string) {
			if p == nil {
				p = startProxy(t, e)
			}
			u := proxytest.URL(p.Addr, proxytest.AppUser+"."+tn.String(), proxytest.AppUserPassword, e.db)
			return u, u
		}, direct},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := testCtx(t)
			tn := newTenant()
			url1, url2 := m.pools(tn)
			s1, _ := authpg.New(newPool(t, url1, nil), o)
			s2, _ := authpg.New(newPool(t, url2, nil), o)
			var u *authpg.User
			if err := m.wrap(s1, tn, func(s *authpg.Store) error {
				u = mustUser(t, s, tn, "pat")
				_, err := s.GenerateBackupCodes(ctx, tn, u.ID)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			const n = 16
			run := func(try func(s *authpg.Store) error) map[string]int {
				var mu sync.Mutex
				out := map[string]int{}
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := 0; i < n; i++ {
					s := s1
					if i%2 == 1 {
						s = s2
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						err := m.wrap(s, tn, try)
						k := "other: "
						switch {
						case errors.Is(err, authpg.ErrInvalidCredentials):
							k = "checked"
						case errors.Is(err, authpg.ErrTooManyAttempts):
							k = "locked"
						case err != nil:
							k += err.Error()
						}
						mu.Lock()
						out[k]++
						mu.Unlock()
					}()
				}
				close(start)
				wg.Wait()
				return out
			}
			got := run(func(s *authpg.Store) error {
				_, err := s.Authenticate(ctx, tn, "pat", "wrong", nil)
				return err
			})
			if got["checked"] != 5 || got["locked"] != n-5 {
				t.Fatalf("passwords: %v, want 5 checked and %d locked", got, n-5)
			}
			got = run(func(s *authpg.Store) error {
				ok, err := s.ConsumeBackupCode(ctx, tn, u.ID, "AAAAA-AAAAA")
				if err == nil && !ok {
					return authpg.ErrInvalidCredentials // counted as a check
				}
				return err
			})
			if got["checked"] != 4 || got["locked"] != n-4 {
				t.Fatalf("backup codes: %v, want 4 checked and %d locked", got, n-4)
			}
		})
	}
}

// TestAuthenticateTimingUnknownVersusKnownUser: a wrong password for an
// existing user and any password for an unknown one take the same time
// (both compare against a bcrypt hash of the Store's cost). Medians over
// interleaved tries; bcrypt at cost 8 dominates the round trips, so
// skipping the comparison for unknown users would make them several times
// faster and fail the tolerance.
func TestAuthenticateTimingUnknownVersusKnownUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	o := opts()
	o.BcryptCost = 8
	o.Limits.Password.MaxFailures = -1
	s, _ := authpg.New(e.super, o)
	tn := newTenant()
	if _, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "known", Password: "right"}); err != nil {
		t.Fatal(err)
	}
	const tries = 25
	var known, unknown []time.Duration
	measure := func(login string) time.Duration {
		start := time.Now()
		if _, err := s.Authenticate(ctx, tn, login, "wrong", nil); !errors.Is(err, authpg.ErrInvalidCredentials) {
			t.Fatalf("Authenticate(%s) = %v", login, err)
		}
		return time.Since(start)
	}
	measure("known") // warm the pool and the dummy hash
	measure("unknown")
	for i := 0; i < tries; i++ {
		known = append(known, measure("known"))
		unknown = append(unknown, measure("unknown"))
	}
	median := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	mk, mu := median(known), median(unknown)
	ratio := float64(mu) / float64(mk)
	t.Logf("median known %v, unknown %v, ratio %.2f", mk, mu, ratio)
	if ratio < 0.6 || ratio > 1.67 {
		t.Fatalf("unknown/known median ratio %.2f (known %v, unknown %v), want within [0.6, 1.67]", ratio, mk, mu)
	}
}
