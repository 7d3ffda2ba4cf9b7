package authpg

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/authpg/backupcode"
)

// BackupCode is one stored (hashed) recovery code; the hash is left out of
// JSON.
type BackupCode struct {
	ID       uuid.UUID
	CodeHash string `json:"-"`
	UsedAt   *time.Time
}

// BackupCodeSet is a user's recovery codes.
type BackupCodeSet struct {
	TenantID  uuid.UUID
	UserID    uuid.UUID
	Codes     []BackupCode
	Remaining int // unused codes
	CreatedAt time.Time
}

// SaveBackupCodes replaces a user's codes with the given bcrypt hashes (use
// backupcode.Hash, or GenerateBackupCodes which does everything).
func (s *Store) SaveBackupCodes(ctx context.Context, tenantID, userID uuid.UUID, hashes []string) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	uid, err := normID(userID)
	if err != nil {
		return err
	}
	if len(hashes) == 0 {
		return fmt.Errorf("SaveBackupCodes: %w: no codes", ErrInvalidInput)
	}
	return s.tx(ctx, func(q DB) error {
		if _, err := q.Exec(ctx, `DELETE FROM auth.backup_codes WHERE tenant_id = $1 AND user_id = $2`, tid, uid); err != nil {
			return mapErr("SaveBackupCodes", err)
		}
		for _, h := range hashes {
			if _, err := q.Exec(ctx, `INSERT INTO auth.backup_codes (tenant_id, user_id, code_hash) VALUES ($1, $2, $3)`,
				tid, uid, h); err != nil {
				return mapErr("SaveBackupCodes", err)
			}
		}
		return nil
	})
}

// GenerateBackupCodes makes backupcode.Count fresh codes, stores their
// hashes (replacing older codes) and returns the plaintext codes, to be
// shown to the user once.
func (s *Store) GenerateBackupCodes(ctx context.Context, tenantID, userID uuid.UUID) ([]string, error) {
	if _, err := normTenant(tenantID); err != nil {
		return nil, err
	}
	codes, err := backupcode.Generate(backupcode.Count)
	if err != nil {
		return nil, err
	}
	hashes, err := backupcode.Hash(codes, s.bcryptCost)
	if err != nil {
		return nil, err
	}
	if err := s.SaveBackupCodes(ctx, tenantID, userID, hashes); err != nil {
		return nil, err
	}
	return codes, nil
}

// GetBackupCodes returns a user's codes, used ones included; none is
// ErrNotFound.
func (s *Store) GetBackupCodes(ctx context.Context, tenantID, userID uuid.UUID) (*BackupCodeSet, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, err := normID(userID)
	if err != nil {
		return nil, err
	}
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT id, code_hash, used_at, created_at FROM auth.backup_codes
		WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at, id`, tid, uid)
	if err != nil {
		return nil, mapErr("GetBackupCodes", err)
	}
	set := &BackupCodeSet{TenantID: tid, UserID: uid}
	codes, err := collect(rows, func(r pgx.Row) (BackupCode, error) {
		var c BackupCode
		var created time.Time
		if err := r.Scan(&c.ID, &c.CodeHash, &c.UsedAt, &created); err != nil {
			return c, err
		}
		if set.CreatedAt.IsZero() || created.Before(set.CreatedAt) {
			set.CreatedAt = created
		}
		return c, nil
	}, "GetBackupCodes")
	if err != nil {
		return nil, err
	}
	if len(codes) == 0 {
		return nil, fmt.Errorf("GetBackupCodes: %w", ErrNotFound)
	}
	set.Codes = codes
	for _, c := range codes {
		if c.UsedAt == nil {
			set.Remaining++
		}
	}
	return set, nil
}

// DeleteBackupCodes removes all of a user's codes.
func (s *Store) DeleteBackupCodes(ctx context.Context, tenantID, userID uuid.UUID) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	uid, err := normID(userID)
	if err != nil {
		return fmt.Errorf("DeleteBackupCodes: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `DELETE FROM auth.backup_codes WHERE tenant_id = $1 AND user_id = $2`, tid, uid)
	return mapErr("DeleteBackupCodes", err)
}

// ConsumeBackupCode uses one of a user's codes. It reports true only to the
// one caller whose conditional UPDATE (used_at IS NULL) marked the code
// used, so a code works once even under concurrent requests. Each attempt
// counts against the backup-code limit before any hash is compared (a
// wrong code costs one bcrypt comparison per stored code), so a locked-out
// user gets ErrTooManyAttempts at the price of one query.
func (s *Store) ConsumeBackupCode(ctx context.Context, tenantID, userID uuid.UUID, code string) (bool, error) {
	set, err := s.GetBackupCodes(ctx, tenantID, userID)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("ConsumeBackupCode: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return false, err
	}
	if err := s.reserveAttempt(ctx, db, set.TenantID, AttemptBackupCode, set.UserID.String()); err != nil {
		return false, fmt.Errorf("ConsumeBackupCode: %w", err)
	}
	for _, c := range set.Codes {
		if c.UsedAt != nil || !backupcode.Match(c.CodeHash, code) {
			continue
		}
		tag, err := db.Exec(ctx, `UPDATE auth.backup_codes SET used_at = now()
			WHERE tenant_id = $1 AND id = $2 AND user_id = $3 AND used_at IS NULL`, set.TenantID, c.ID, set.UserID)
		if err != nil {
			return false, mapErr("ConsumeBackupCode", err)
		}
		if tag.RowsAffected() != 1 {
			return false, nil
		}
		if err := clearAttempts(ctx, db, set.TenantID, AttemptBackupCode, set.UserID.String()); err != nil {
			return true, fmt.Errorf("ConsumeBackupCode: %w", err)
		}
		return true, nil
	}
	return false, nil
}
