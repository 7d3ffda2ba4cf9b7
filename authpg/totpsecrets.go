package authpg

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/authpg/totp"
)

// TOTPSecret is a user's stored (encrypted) TOTP secret. It is keyed by
// user id, so renaming a user keeps it and a new user who takes an old
// handle does not inherit it.
type TOTPSecret struct {
	TenantID uuid.UUID
	UserID   uuid.UUID
	// KeyID names the TOTPKeys key the secret is sealed with; nil for a
	// row in the legacy passphrase format (TypeScript package,
	// totp.Encrypt).
	KeyID *string
	totp.EncryptedSecret
	LastUsedStep *int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const totpCols = `tenant_id, user_id, key_id, encrypted_secret, iv, auth_tag, salt, last_used_step, created_at, updated_at`

func scanTOTP(row pgx.Row) (*TOTPSecret, error) {
	x := &TOTPSecret{}
	err := row.Scan(&x.TenantID, &x.UserID, &x.KeyID, &x.EncryptedSecret.EncryptedSecret, &x.IV, &x.AuthTag,
		&x.Salt, &x.LastUsedStep, &x.CreatedAt, &x.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return x, nil
}

// SaveTOTPSecret seals secret (base32, as from totp.GenerateKey) with the
// current key of Options.TOTPKeys, bound to the tenant and user, and stores
// it (replacing any previous one). A new secret resets replay protection.
func (s *Store) SaveTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID, secret string) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	uid, err := normID(userID)
	if err != nil {
		return fmt.Errorf("SaveTOTPSecret: %w", err)
	}
	if secret == "" {
		return fmt.Errorf("SaveTOTPSecret: %w: empty secret", ErrInvalidInput)
	}
	if s.keys == nil {
		return fmt.Errorf("SaveTOTPSecret: %w", ErrNoTOTPKeys)
	}
	kid, key := s.keys.Current()
	enc, err := totp.Seal(secret, key, totpAAD(tid, uid))
	if err != nil {
		return fmt.Errorf("SaveTOTPSecret: %w", err)
	}
	return s.saveTOTP(ctx, "SaveTOTPSecret", tid, uid, &kid, enc)
}

// ImportTOTPSecret stores a secret already encrypted in the legacy
// passphrase format (the TypeScript package's rows, or totp.Encrypt), to
// be opened with TOTPKeys.LegacyPassphrase. It is re-sealed with the
// current key on its first successful VerifyTOTP.
func (s *Store) ImportTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID, enc totp.EncryptedSecret) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	uid, err := normID(userID)
	if err != nil {
		return fmt.Errorf("ImportTOTPSecret: %w", err)
	}
	if enc.EncryptedSecret == "" || enc.Salt == "" {
		return fmt.Errorf("ImportTOTPSecret: %w: empty ciphertext or salt", ErrInvalidInput)
	}
	return s.saveTOTP(ctx, "ImportTOTPSecret", tid, uid, nil, enc)
}

func (s *Store) saveTOTP(ctx context.Context, op string, tid, uid uuid.UUID, kid *string, enc totp.EncryptedSecret) error {
	db, err := s.q()
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `
		INSERT INTO auth.totp_secrets (tenant_id, user_id, key_id, encrypted_secret, iv, auth_tag, salt)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, user_id) DO UPDATE SET
			key_id = EXCLUDED.key_id, encrypted_secret = EXCLUDED.encrypted_secret, iv = EXCLUDED.iv,
			auth_tag = EXCLUDED.auth_tag, salt = EXCLUDED.salt,
			last_used_step = NULL, updated_at = now()`,
		tid, uid, kid, enc.EncryptedSecret, enc.IV, enc.AuthTag, enc.Salt)
	return mapErr(op, err)
}

// GetTOTPSecret returns a user's stored secret; none is ErrNotFound (a
// nil user id too).
func (s *Store) GetTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID) (*TOTPSecret, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, err := normID(userID)
	if err != nil {
		return nil, fmt.Errorf("GetTOTPSecret: %w", err)
	}
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	x, err := scanTOTP(db.QueryRow(ctx, `SELECT `+totpCols+` FROM auth.totp_secrets
		WHERE tenant_id = $1 AND user_id = $2`, tid, uid))
	return x, mapErr("GetTOTPSecret", err)
}

// DeleteTOTPSecret removes a user's secret; a missing one is ErrNotFound.
func (s *Store) DeleteTOTPSecret(ctx context.Context, tenantID, userID uuid.UUID) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	uid, err := normID(userID)
	if err != nil {
		return fmt.Errorf("DeleteTOTPSecret: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.totp_secrets WHERE tenant_id = $1 AND user_id = $2`, tid, uid)
	if err != nil {
		return mapErr("DeleteTOTPSecret", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("DeleteTOTPSecret: %w", ErrNotFound)
	}
	return nil
}

// openTOTP decrypts a stored secret and, when it is not sealed with the
// current key, returns the re-sealed form to store.
func (s *Store) openTOTP(x *TOTPSecret) (plain string, reseal *totp.EncryptedSecret, err error) {
	if s.keys == nil {
		return "", nil, ErrNoTOTPKeys
	}
	cur, curKey := s.keys.Current()
	if x.KeyID == nil {
		pass := s.keys.LegacyPassphrase()
		if pass == "" {
			return "", nil, fmt.Errorf("legacy-format secret and no TOTPKeys.LegacyPassphrase: %w", totp.ErrDecrypt)
		}
		if plain, err = totp.Decrypt(x.EncryptedSecret, pass); err != nil {
			return "", nil, err
		}
	} else {
		key, ok := s.keys.Key(*x.KeyID)
		if !ok {
			return "", nil, fmt.Errorf("unknown TOTP key id %q: %w", *x.KeyID, totp.ErrDecrypt)
		}
		if plain, err = totp.Open(x.EncryptedSecret, key, totpAAD(x.TenantID, x.UserID)); err != nil {
			return "", nil, err
		}
		if *x.KeyID == cur {
			return plain, nil, nil
		}
	}
	enc, err := totp.Seal(plain, curKey, totpAAD(x.TenantID, x.UserID))
	if err != nil {
		return "", nil, err
	}
	return plain, &enc, nil
}

// VerifyTOTP checks a user's code at the app clock (Options.Now) with the
// secret opened by Options.TOTPKeys, within the TOTP attempt limit
// (ErrTooManyAttempts when locked out), and refuses a replay: the matched
// step must be later than the last step accepted, and recording it is a
// single conditional UPDATE, so two concurrent uses of one code cannot both
// pass. A secret sealed with an old key (or in the legacy format) is
// re-sealed with the current key by that same UPDATE.
func (s *Store) VerifyTOTP(ctx context.Context, tenantID, userID uuid.UUID, code string) (bool, error) {
	sec, err := s.GetTOTPSecret(ctx, tenantID, userID)
	if err != nil {
		return false, fmt.Errorf("VerifyTOTP: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return false, err
	}
	if err := s.reserveAttempt(ctx, db, sec.TenantID, AttemptTOTP, sec.UserID.String()); err != nil {
		return false, fmt.Errorf("VerifyTOTP: %w", err)
	}
	plain, reseal, err := s.openTOTP(sec)
	if err != nil {
		return false, fmt.Errorf("VerifyTOTP: %w", err)
	}
	step, ok := totp.Validate(plain, code, s.now())
	if !ok {
		return false, nil
	}
	var kid *string
	var enc totp.EncryptedSecret
	if reseal != nil {
		id, _ := s.keys.Current()
		kid, enc = &id, *reseal
	}
	tag, err := db.Exec(ctx, `UPDATE auth.totp_secrets SET last_used_step = $3, updated_at = now(),
			key_id = COALESCE($4, key_id),
			encrypted_secret = CASE WHEN $4::text IS NULL THEN encrypted_secret ELSE $5 END,
			iv = CASE WHEN $4::text IS NULL THEN iv ELSE $6 END,
			auth_tag = CASE WHEN $4::text IS NULL THEN auth_tag ELSE $7 END,
			salt = CASE WHEN $4::text IS NULL THEN salt ELSE '' END
		WHERE tenant_id = $1 AND user_id = $2 AND (last_used_step IS NULL OR last_used_step < $3)`,
		sec.TenantID, sec.UserID, step, kid, enc.EncryptedSecret, enc.IV, enc.AuthTag)
	if err != nil {
		return false, mapErr("VerifyTOTP", err)
	}
	if tag.RowsAffected() != 1 {
		return false, nil
	}
	if err := clearAttempts(ctx, db, sec.TenantID, AttemptTOTP, sec.UserID.String()); err != nil {
		return true, fmt.Errorf("VerifyTOTP: %w", err)
	}
	return true, nil
}
