package authpg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Roles are the checked set of admin roles (a CHECK constraint in the
// schema refuses anything else).
const (
	RoleViewer        = "viewer"
	RoleEditor        = "editor"
	RoleBusinessOwner = "business_owner"
	RoleDeveloper     = "developer"
)

// ValidRole reports whether r is one of the four roles.
func ValidRole(r string) bool {
	switch r {
	case RoleViewer, RoleEditor, RoleBusinessOwner, RoleDeveloper:
		return true
	}
	return false
}

// User is an admin user of one tenant (the seed's AdminUser). The hashes
// are left out of JSON: a hash that reaches a browser can be cracked
// offline.
type User struct {
	TenantID        uuid.UUID
	ID              uuid.UUID
	Handle          string
	Email           *string
	DisplayName     string
	PasswordHash    string  `json:"-"`
	PinHash         *string `json:"-"`
	Role            string
	IsActive        bool
	TOTPEnabled     bool
	NeedsOnboarding bool
	OnboardingStep  int
	LastLoginAt     *time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// NewUser is the input of CreateUser. Exactly one of PasswordHash and
// Password may be set; Password is hashed with bcrypt.
type NewUser struct {
	ID              uuid.UUID // optional; generated when uuid.Nil
	Handle          string
	Email           string // optional
	DisplayName     string
	PasswordHash    string
	Password        string
	PinHash         string // optional
	Role            string // default viewer
	IsActive        *bool  // default true
	TOTPEnabled     bool
	NeedsOnboarding *bool // default true
	OnboardingStep  int
}

// UserUpdate is a partial update: nil fields are left alone. For the
// nullable Email and PinHash, a pointer to "" clears the column.
type UserUpdate struct {
	Handle          *string
	Email           *string
	DisplayName     *string
	PasswordHash    *string
	Password        *string // hashed with bcrypt; wins over PasswordHash
	PinHash         *string
	Role            *string
	IsActive        *bool
	TOTPEnabled     *bool
	NeedsOnboarding *bool
	OnboardingStep  *int
	TouchLastLogin  bool // set last_login_at to the database's now()
}

const userCols = `tenant_id, id, handle, email, display_name, password_hash, pin_hash, role, is_active,
	totp_enabled, needs_onboarding, onboarding_step, last_login_at, created_at, updated_at`

func scanUser(row pgx.Row) (*User, error) {
	u := &User{}
	err := row.Scan(&u.TenantID, &u.ID, &u.Handle, &u.Email, &u.DisplayName, &u.PasswordHash, &u.PinHash,
		&u.Role, &u.IsActive, &u.TOTPEnabled, &u.NeedsOnboarding, &u.OnboardingStep, &u.LastLoginAt,
		&u.CreatedAt, &u.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// tenantFilter is the explicit tenant predicate on $1, or, under the
// test-only hook, a predicate that still uses $1 (so the statement's
// parameters are unchanged) but filters nothing.
func (s *Store) tenantFilter() string {
	if s.noTenantFilter {
		return `$1::uuid IS NOT NULL`
	}
	return `tenant_id = $1`
}

// GetUser returns the user with id in tenant, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, tenantID, id uuid.UUID) (*User, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, err := normID(id)
	if err != nil {
		return nil, err
	}
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	u, err := scanUser(db.QueryRow(ctx, `SELECT `+userCols+` FROM auth.users WHERE `+s.tenantFilter()+` AND id = $2`, tid, uid))
	return u, mapErr("GetUser", err)
}

// GetUserByHandle finds a user by handle, case-insensitively.
func (s *Store) GetUserByHandle(ctx context.Context, tenantID uuid.UUID, handle string) (*User, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(db.QueryRow(ctx, `SELECT `+userCols+` FROM auth.users WHERE tenant_id = $1 AND lower(handle) = lower($2)`, tid, handle))
	return u, mapErr("GetUserByHandle", err)
}

// GetUserByEmail finds a user by email, case-insensitively.
func (s *Store) GetUserByEmail(ctx context.Context, tenantID uuid.UUID, email string) (*User, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(db.QueryRow(ctx, `SELECT `+userCols+` FROM auth.users WHERE tenant_id = $1 AND lower(email) = lower($2)`, tid, email))
	return u, mapErr("GetUserByEmail", err)
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateUser inserts a user. A handle or email already used in the tenant
// (case-insensitively) is ErrHandleTaken or ErrEmailTaken.
func (s *Store) CreateUser(ctx context.Context, tenantID uuid.UUID, nu NewUser) (*User, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	id := optUUID(nu.ID)
	if strings.TrimSpace(nu.Handle) == "" {
		return nil, fmt.Errorf("CreateUser: %w: empty handle", ErrInvalidInput)
	}
	role := nu.Role
	if role == "" {
		role = RoleViewer
	}
	if !ValidRole(role) {
		return nil, fmt.Errorf("CreateUser: %w: %q", ErrInvalidRole, role)
	}
	hash := nu.PasswordHash
	if nu.Password != "" {
		if hash != "" {
			return nil, fmt.Errorf("CreateUser: %w: both Password and PasswordHash set", ErrInvalidInput)
		}
		if hash, err = s.hash(nu.Password); err != nil {
			return nil, fmt.Errorf("CreateUser: %w", err)
		}
	}
	active, onboarding := true, true
	if nu.IsActive != nil {
		active = *nu.IsActive
	}
	if nu.NeedsOnboarding != nil {
		onboarding = *nu.NeedsOnboarding
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	u, err := scanUser(db.QueryRow(ctx, `
		INSERT INTO auth.users (tenant_id, id, handle, email, display_name, password_hash, pin_hash, role,
			is_active, totp_enabled, needs_onboarding, onboarding_step)
		VALUES ($1, COALESCE($2::uuid, gen_random_uuid()), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		RETURNING `+userCols,
		tid, id, nu.Handle, nullIfEmpty(nu.Email), nu.DisplayName, hash, nullIfEmpty(nu.PinHash), role,
		active, nu.TOTPEnabled, onboarding, nu.OnboardingStep))
	return u, mapErr("CreateUser", err)
}

// UpdateUser applies a partial update and returns the new row; a missing
// user is ErrNotFound.
func (s *Store) UpdateUser(ctx context.Context, tenantID, id uuid.UUID, up UserUpdate) (*User, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, err := normID(id)
	if err != nil {
		return nil, err
	}
	if up.Role != nil && !ValidRole(*up.Role) {
		return nil, fmt.Errorf("UpdateUser: %w: %q", ErrInvalidRole, *up.Role)
	}
	if up.Handle != nil && strings.TrimSpace(*up.Handle) == "" {
		return nil, fmt.Errorf("UpdateUser: %w: empty handle", ErrInvalidInput)
	}
	hash := up.PasswordHash
	if up.Password != nil {
		h, err := s.hash(*up.Password)
		if err != nil {
			return nil, fmt.Errorf("UpdateUser: %w", err)
		}
		hash = &h
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	u, err := scanUser(db.QueryRow(ctx, `
		UPDATE auth.users SET
			handle           = COALESCE($3, handle),
			email            = CASE WHEN $4::text IS NULL THEN email ELSE NULLIF($4, '') END,
			display_name     = COALESCE($5, display_name),
			password_hash    = COALESCE($6, password_hash),
			pin_hash         = CASE WHEN $7::text IS NULL THEN pin_hash ELSE NULLIF($7, '') END,
			role             = COALESCE($8, role),
			is_active        = COALESCE($9, is_active),
			totp_enabled     = COALESCE($10, totp_enabled),
			needs_onboarding = COALESCE($11, needs_onboarding),
			onboarding_step  = COALESCE($12, onboarding_step),
			last_login_at    = CASE WHEN $13 THEN now() ELSE last_login_at END,
			updated_at       = now()
		WHERE `+s.tenantFilter()+` AND id = $2
		RETURNING `+userCols,
		tid, uid, up.Handle, up.Email, up.DisplayName, hash, up.PinHash, up.Role, up.IsActive,
		up.TOTPEnabled, up.NeedsOnboarding, up.OnboardingStep, up.TouchLastLogin))
	return u, mapErr("UpdateUser", err)
}

// DeleteUser deletes a user and, by cascade, their sessions, TOTP secret
// and backup codes. A missing user is ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, tenantID, id uuid.UUID) error {
	tid, err := normTenant(tenantID)
	if err != nil {
		return err
	}
	uid, err := normID(id)
	if err != nil {
		return err
	}
	db, err := s.q()
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.users WHERE `+s.tenantFilter()+` AND id = $2`, tid, uid)
	if err != nil {
		return mapErr("DeleteUser", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("DeleteUser: %w", ErrNotFound)
	}
	return nil
}

// ListUsers returns the tenant's users ordered by handle (the seed's
// getAllUsers).
func (s *Store) ListUsers(ctx context.Context, tenantID uuid.UUID) ([]*User, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+userCols+` FROM auth.users WHERE `+s.tenantFilter()+` ORDER BY lower(handle), id`, tid)
	if err != nil {
		return nil, mapErr("ListUsers", err)
	}
	return collect(rows, scanUser, "ListUsers")
}

// HasUsers reports whether the tenant has any user.
func (s *Store) HasUsers(ctx context.Context, tenantID uuid.UUID) (bool, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return false, err
	}
	var ok bool
	err = db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM auth.users WHERE tenant_id = $1)`, tid).Scan(&ok)
	return ok, mapErr("HasUsers", err)
}

// collect scans every row with scan; it works for both pgx rows and the
// database/sql adapter's.
func collect[T any](rows pgx.Rows, scan func(pgx.Row) (T, error), op string) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, mapErr(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(op, err)
	}
	return out, nil
}
