package authpg_test

import (
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/totp"
)

const enrolSecret = "JBSWY3DPEHPK3PXP"

// TestTOTPSecretFollowsUserNotHandle: a renamed user keeps their secret,
// and a new user who takes the old handle does not inherit it.
func TestTOTPSecretFollowsUserNotHandle(t *testing.T) {
	t.Parallel()
	inModes(t, opts(), func(t *testing.T, s *authpg.Store, tn uuid.UUID) {
		ctx := testCtx(t)
		u := mustUser(t, s, tn, "alice")
		if err := s.SaveTOTPSecret(ctx, tn, u.ID, enrolSecret); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateUser(ctx, tn, u.ID, authpg.UserUpdate{Handle: ptr("alicia")}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTOTPSecret(ctx, tn, u.ID); err != nil {
			t.Fatalf("secret lost after rename: %v", err)
		}
		code, _ := totp.Code(enrolSecret, time.Now())
		if ok, err := s.VerifyTOTP(ctx, tn, u.ID, code); err != nil || !ok {
			t.Fatalf("VerifyTOTP after rename = %v, %v", ok, err)
		}
		newcomer, err := s.CreateUser(ctx, tn, authpg.NewUser{Handle: "alice", Password: "pw"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTOTPSecret(ctx, tn, newcomer.ID); !errors.Is(err, authpg.ErrNotFound) {
			t.Fatalf("the new holder of the old handle got a secret: %v", err)
		}
	})
}

// TestTOTPRowsAreBoundToTheirUser: a sealed secret copied onto another
// user's row (by someone who can write the table) does not open, and the
// enrolment secret held in a session is encrypted and bound to it.
func TestTOTPRowsAreBoundToTheirUser(t *testing.T) {
	t.Parallel()
	inModesCommitted(t, opts(), func(t *testing.T, e *env, run func(func(*authpg.Store)), tn uuid.UUID) {
		ctx := testCtx(t)
		var victim, attacker *authpg.User
		var x, y *authpg.Session
		run(func(s *authpg.Store) {
			victim, attacker = mustUser(t, s, tn, "vic"), mustUser(t, s, tn, "mallory")
			if err := s.SaveTOTPSecret(ctx, tn, victim.ID, enrolSecret); err != nil {
				t.Fatal(err)
			}
			if err := s.SaveTOTPSecret(ctx, tn, attacker.ID, "KRSXG5CTMVRXEZLU"); err != nil {
				t.Fatal(err)
			}
			x = must(s.CreateSession(ctx, tn, victim.ID, nil))
			y = must(s.CreateSession(ctx, tn, attacker.ID, nil))
			if _, err := s.UpdateSession(ctx, tn, x.Token, authpg.SessionUpdate{TempTOTPSecret: ptr(enrolSecret)}); err != nil {
				t.Fatal(err)
			}
		})
		// Mallory copies her own sealed secret onto the victim's row, to
		// pass the victim's second factor with her own authenticator, and
		// the victim's enrolment secret onto her session.
		e.superExec(t, `UPDATE auth.totp_secrets v SET encrypted_secret = m.encrypted_secret, iv = m.iv, auth_tag = m.auth_tag
			FROM auth.totp_secrets m WHERE v.user_id = $1 AND m.user_id = $2`, victim.ID, attacker.ID)
		var raw string
		if err := e.super.QueryRow(ctx, `SELECT temp_totp_secret FROM auth.sessions WHERE id = $1`, x.ID).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, enrolSecret) || !strings.HasPrefix(raw, "v1:test:") {
			t.Fatalf("temp_totp_secret stored as %q", raw)
		}
		e.superExec(t, `UPDATE auth.sessions SET temp_totp_secret = $1 WHERE id = $2`, raw, y.ID)
		run(func(s *authpg.Store) {
			code, _ := totp.Code("KRSXG5CTMVRXEZLU", time.Now())
			if ok, err := s.VerifyTOTP(ctx, tn, victim.ID, code); ok || !errors.Is(err, totp.ErrDecrypt) {
				t.Errorf("swapped row: VerifyTOTP = %v, %v, want ErrDecrypt", ok, err)
			}
			if got, err := s.GetSession(ctx, tn, x.Token); err != nil || got.TempTOTPSecret == nil || *got.TempTOTPSecret != enrolSecret {
				t.Errorf("GetSession = %+v, %v", got, err)
			}
			if _, err := s.GetSession(ctx, tn, y.Token); !errors.Is(err, totp.ErrDecrypt) {
				t.Errorf("enrolment secret copied to another session: %v, want ErrDecrypt", err)
			}
		})
		// Without keys the enrolment secret cannot be stored at all.
		o := opts()
		o.TOTPKeys = nil
		nokeys, _ := authpg.New(e.super, o)
		if _, err := nokeys.UpdateSession(ctx, tn, x.Token, authpg.SessionUpdate{TempTOTPSecret: ptr("X")}); !errors.Is(err, authpg.ErrNoTOTPKeys) {
			t.Fatalf("UpdateSession without keys = %v, want ErrNoTOTPKeys", err)
		}
	})
}

// TestTOTPKeyRotation: after a new key becomes current, secrets sealed with
// the old key still verify and are re-sealed with the new one, after which
// the old key can be retired; a legacy passphrase row is re-sealed too.
func TestTOTPKeyRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	tn := newTenant()
	withKeys := func(k authpg.TOTPKeys) *authpg.Store {
		o := opts()
		o.TOTPKeys = k
		s, err := authpg.New(e.super, o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	old := withKeys(&authpg.TOTPKeyring{CurrentID: "2025", Keys: map[string][]byte{"2025": testKey(1)}})
	u := mustUser(t, old, tn, "rota")
	if err := old.SaveTOTPSecret(ctx, tn, u.ID, enrolSecret); err != nil {
		t.Fatal(err)
	}
	legacy := mustUser(t, old, tn, "legacy")
	enc, _ := totp.Encrypt(enrolSecret, "old passphrase")
	if err := old.ImportTOTPSecret(ctx, tn, legacy.ID, enc); err != nil {
		t.Fatal(err)
	}
	both := withKeys(&authpg.TOTPKeyring{CurrentID: "2026", Keys: map[string][]byte{"2025": testKey(1), "2026": testKey(2)},
		Passphrase: "old passphrase"})
	now := time.Now()
	code, _ := totp.Code(enrolSecret, now)
	for _, id := range []uuid.UUID{u.ID, legacy.ID} {
		if ok, err := both.VerifyTOTP(ctx, tn, id, code); err != nil || !ok {
			t.Fatalf("verify with the rotated keyring = %v, %v", ok, err)
		}
		if got := must(both.GetTOTPSecret(ctx, tn, id)); got.KeyID == nil || *got.KeyID != "2026" || got.Salt != "" {
			t.Fatalf("not re-sealed with the current key: %+v", got)
		}
	}
	// The old key retired (and the clock a step on, past the replay
	// guard): both rows still verify.
	later, _ := totp.Code(enrolSecret, now.Add(totp.Period))
	o := opts()
	o.TOTPKeys = &authpg.TOTPKeyring{CurrentID: "2026", Keys: map[string][]byte{"2026": testKey(2)}}
	o.Now = func() time.Time { return now.Add(totp.Period) }
	retired, err := authpg.New(e.super, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{u.ID, legacy.ID} {
		if ok, err := retired.VerifyTOTP(ctx, tn, id, later); err != nil || !ok {
			t.Fatalf("verify after retiring the old key = %v, %v", ok, err)
		}
	}
	// A keyring without the row's key refuses loudly, not as "wrong code".
	other := withKeys(&authpg.TOTPKeyring{CurrentID: "x", Keys: map[string][]byte{"x": testKey(3)}})
	if _, err := other.VerifyTOTP(ctx, tn, u.ID, later); !errors.Is(err, totp.ErrDecrypt) {
		t.Fatalf("unknown key id: %v, want ErrDecrypt", err)
	}
	if _, err := authpg.New(e.super, authpg.Options{SessionSecret: secret,
		TOTPKeys: &authpg.TOTPKeyring{CurrentID: "short", Keys: map[string][]byte{"short": []byte("too short")}}}); !errors.Is(err, authpg.ErrInvalidInput) {
		t.Fatalf("short key accepted: %v", err)
	}
}

// TestVerifyTOTPDerivesNoKeyPerCall: with the keyring taken once at New, a
// verification costs round trips, not an scrypt derivation (tens of
// milliseconds by design). Medians, compared with a derivation measured in
// the same run, so the bound holds on a loaded machine.
func TestVerifyTOTPDerivesNoKeyPerCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	o := opts()
	o.Limits.TOTP.MaxFailures = -1
	s, _ := authpg.New(e.super, o)
	tn := newTenant()
	u := mustUser(t, s, tn, "fast")
	if err := s.SaveTOTPSecret(ctx, tn, u.ID, enrolSecret); err != nil {
		t.Fatal(err)
	}
	median := func(n int, f func()) time.Duration {
		d := make([]time.Duration, n)
		for i := range d {
			start := time.Now()
			f()
			d[i] = time.Since(start)
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[n/2]
	}
	derive := median(5, func() {
		if _, err := totp.DeriveKey("passphrase", []byte("salt-salt-salt-s")); err != nil {
			t.Fatal(err)
		}
	})
	verify := median(9, func() {
		if ok, err := s.VerifyTOTP(ctx, tn, u.ID, "000000"); ok || err != nil {
			t.Fatalf("VerifyTOTP(wrong) = %v, %v", ok, err)
		}
	})
	t.Logf("scrypt derivation %v, VerifyTOTP %v", derive, verify)
	if verify*2 > derive {
		t.Fatalf("VerifyTOTP takes %v, at least half an scrypt derivation (%v)", verify, derive)
	}
}
