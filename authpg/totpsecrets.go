package authpg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/multigres-proxy/multigres/authpg/totp"
)

// TOTPSecret is a user's encrypted TOTP secret.
type TOTPSecret struct {
	TenantID string
	Handle   string
	UserID   *string // the user with this handle when saved, if any
	totp.EncryptedSecret
	LastUsedStep *int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

const totpCols = `tenant_id, handle, user_id, encrypted_secret, iv, auth_tag, salt, last_used_step, created_at, updated_at`

func scanTOTP(row pgx.Row) (*TOTPSecret, error) {
	x := &TOTPSecret{}
	err := row.Scan(&x.TenantID, &x.Handle, &x.UserID, &x.EncryptedSecret.EncryptedSecret, &x.IV, &x.AuthTag,
		&x.Salt, &x.LastUsedStep, &x.CreatedAt, &x.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return x, nil
}

// SaveTOTPSecret stores (or replaces) the encrypted secret for handle. A
// new secret resets replay protection.
func (s *Store) SaveTOTPSecret(ctx context.Context, tenantID, handle string, secret totp.EncryptedSecret) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	if handle == "" {
		return fmt.Errorf("SaveTOTPSecret: %w: empty handle", ErrInvalidInput)
	}
	db, err := s.q()
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `
		INSERT INTO auth.totp_secrets (tenant_id, handle, user_id, encrypted_secret, iv, auth_tag, salt)
		VALUES ($1, $2, (SELECT id FROM auth.users WHERE tenant_id = $1 AND lower(handle) = lower($2)), $3, $4, $5, $6)
		ON CONFLICT (tenant_id, lower(handle)) DO UPDATE SET
			handle = EXCLUDED.handle, user_id = EXCLUDED.user_id,
			encrypted_secret = EXCLUDED.encrypted_secret, iv = EXCLUDED.iv,
			auth_tag = EXCLUDED.auth_tag, salt = EXCLUDED.salt,
			last_used_step = NULL, updated_at = now()`,
		tid, handle, secret.EncryptedSecret, secret.IV, secret.AuthTag, secret.Salt)
	return mapErr("SaveTOTPSecret", err)
}

// GetTOTPSecret returns the encrypted secret for handle (case-insensitive).
func (s *Store) GetTOTPSecret(ctx context.Context, tenantID, handle string) (*TOTPSecret, error) {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return nil, err
	}
	x, err := scanTOTP(db.QueryRow(ctx, `SELECT `+totpCols+` FROM auth.totp_secrets
		WHERE tenant_id = $1 AND lower(handle) = lower($2)`, tid, handle))
	return x, mapErr("GetTOTPSecret", err)
}

// DeleteTOTPSecret removes the secret for handle; a missing one is
// ErrNotFound.
func (s *Store) DeleteTOTPSecret(ctx context.Context, tenantID, handle string) error {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.totp_secrets WHERE tenant_id = $1 AND lower(handle) = lower($2)`, tid, handle)
	if err != nil {
		return mapErr("DeleteTOTPSecret", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("DeleteTOTPSecret: %w", ErrNotFound)
	}
	return nil
}

// VerifyTOTP checks code for handle at the app clock (Options.Now), the
// secret decrypted with passphrase, and refuses a replay: the matched step
// must be later than the last step accepted, and recording it is a single
// conditional UPDATE, so two concurrent uses of one code cannot both pass.
func (s *Store) VerifyTOTP(ctx context.Context, tenantID, handle, code, passphrase string) (bool, error) {
	sec, err := s.GetTOTPSecret(ctx, tenantID, handle)
	if err != nil {
		return false, fmt.Errorf("VerifyTOTP: %w", err)
	}
	plain, err := totp.Decrypt(sec.EncryptedSecret, passphrase)
	if err != nil {
		return false, fmt.Errorf("VerifyTOTP: %w", err)
	}
	step, ok := totp.Validate(plain, code, s.now())
	if !ok {
		return false, nil
	}
	db, err := s.q()
	if err != nil {
		return false, err
	}
	tag, err := db.Exec(ctx, `UPDATE auth.totp_secrets SET last_used_step = $3, updated_at = now()
		WHERE tenant_id = $1 AND lower(handle) = lower($2) AND (last_used_step IS NULL OR last_used_step < $3)`,
		sec.TenantID, handle, step)
	if err != nil {
		return false, mapErr("VerifyTOTP", err)
	}
	return tag.RowsAffected() == 1, nil
}
