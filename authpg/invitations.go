package authpg

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Invitation invites an email address to join a tenant with a role.
//
// Only a SHA-256 hash of the token is stored (token_hash), so someone who
// reads the table cannot accept an invitation. Token is therefore set only
// on the Invitation CreateInvitation returns: send it then.
type Invitation struct {
	TenantID   uuid.UUID
	ID         uuid.UUID
	Email      string
	Token      string `json:"-"`
	Role       string
	InvitedBy  *uuid.UUID
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	CreatedAt  time.Time
}

// NewInvitation is the input of CreateInvitation.
type NewInvitation struct {
	Email     string
	Role      string        // default viewer
	InvitedBy uuid.UUID     // optional user id of this tenant (uuid.Nil: none)
	ExpiresIn time.Duration // default DefaultInvitationTTL, from the database's now()
	Token     string        // optional, at least 16 characters; a random 256-bit token when empty
}

// InvitationUpdate is a partial update. ExpiresIn moves the expiry to the
// database's now() plus ExpiresIn (the seed silently ignored expiry
// changes).
type InvitationUpdate struct {
	Email     *string
	Role      *string
	ExpiresIn *time.Duration
}

const invCols = `tenant_id, id, email, role, invited_by, expires_at, accepted_at, created_at`

func scanInv(row pgx.Row) (*Invitation, error) {
	x := &Invitation{}
	if err := row.Scan(&x.TenantID, &x.ID, &x.Email, &x.Role, &x.InvitedBy, &x.ExpiresAt,
		&x.AcceptedAt, &x.CreatedAt); err != nil {
		return nil, err
	}
	return x, nil
}

// tokenHash is what the token_hash column holds: hex SHA-256. A token is
// 256 random bits (or a caller's token of at least 16 characters), so an
// unsalted fast hash is enough: there is nothing to brute-force.
func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateInvitation creates an invitation with a fresh token.
func (s *Store) CreateInvitation(ctx context.Context, tenantID uuid.UUID, in NewInvitation) (*Invitation, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(in.Email) == "" {
		return nil, fmt.Errorf("CreateInvitation: %w: empty email", ErrInvalidInput)
	}
	role := in.Role
	if role == "" {
		role = RoleViewer
	}
	if !ValidRole(role) {
		return nil, fmt.Errorf("CreateInvitation: %w: %q", ErrInvalidRole, role)
	}
	by := optUUID(in.InvitedBy)
	ttl := in.ExpiresIn
	if ttl == 0 {
		ttl = DefaultInvitationTTL
	}
	if ttl < 0 {
		return nil, fmt.Errorf("CreateInvitation: %w: negative ExpiresIn", ErrInvalidInput)
	}
	tok := in.Token
	if tok != "" && len(tok) < 16 {
		return nil, fmt.Errorf("CreateInvitation: %w: token shorter than 16 characters", ErrInvalidInput)
	}
	if tok == "" {
		if tok, err = newToken(); err != nil {
			return nil, fmt.Errorf("CreateInvitation: %w", err)
		}
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	x, err := scanInv(db.QueryRow(ctx, `
		INSERT INTO auth.invitations (tenant_id, email, token_hash, role, invited_by, expires_at)
		VALUES ($1, $2, $3, $4, $5, now() + $6::double precision * interval '1 second')
		RETURNING `+invCols, tid, in.Email, tokenHash(tok), role, by, seconds(ttl)))
	if err != nil {
		return nil, mapErr("CreateInvitation", err)
	}
	x.Token = tok
	return x, nil
}

// GetInvitation returns the pending invitation with token: an expired
// (database clock) or already accepted one is ErrNotFound, so a sign-up
// page that shows what it finds never offers a used invitation.
func (s *Store) GetInvitation(ctx context.Context, tenantID uuid.UUID, token string) (*Invitation, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return nil, err
	}
	x, err := scanInv(db.QueryRow(ctx, `SELECT `+invCols+` FROM auth.invitations
		WHERE tenant_id = $1 AND token_hash = $2 AND accepted_at IS NULL AND expires_at > now()`, tid, tokenHash(token)))
	return x, mapErr("GetInvitation", err)
}

// GetInvitationByID returns an invitation by id, expired or not.
func (s *Store) GetInvitationByID(ctx context.Context, tenantID, id uuid.UUID) (*Invitation, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	iid, err := normID(id)
	if err != nil {
		return nil, err
	}
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	x, err := scanInv(db.QueryRow(ctx, `SELECT `+invCols+` FROM auth.invitations WHERE tenant_id = $1 AND id = $2`, tid, iid))
	return x, mapErr("GetInvitationByID", err)
}

func (s *Store) listInv(ctx context.Context, op string, tenantID uuid.UUID, where string) ([]*Invitation, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+invCols+` FROM auth.invitations WHERE tenant_id = $1`+where+
		` ORDER BY created_at DESC, id`, tid)
	if err != nil {
		return nil, mapErr(op, err)
	}
	return collect(rows, scanInv, op)
}

// ListInvitations returns all the tenant's invitations, newest first.
func (s *Store) ListInvitations(ctx context.Context, tenantID uuid.UUID) ([]*Invitation, error) {
	return s.listInv(ctx, "ListInvitations", tenantID, "")
}

// ListPendingInvitations returns invitations neither accepted nor expired.
func (s *Store) ListPendingInvitations(ctx context.Context, tenantID uuid.UUID) ([]*Invitation, error) {
	return s.listInv(ctx, "ListPendingInvitations", tenantID, ` AND accepted_at IS NULL AND expires_at > now()`)
}

// UpdateInvitation updates the invitation with token; missing is
// ErrNotFound.
func (s *Store) UpdateInvitation(ctx context.Context, tenantID uuid.UUID, token string, up InvitationUpdate) (*Invitation, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	if up.Role != nil && !ValidRole(*up.Role) {
		return nil, fmt.Errorf("UpdateInvitation: %w: %q", ErrInvalidRole, *up.Role)
	}
	var ext *float64
	if up.ExpiresIn != nil {
		if *up.ExpiresIn <= 0 {
			return nil, fmt.Errorf("UpdateInvitation: %w: non-positive ExpiresIn", ErrInvalidInput)
		}
		v := seconds(*up.ExpiresIn)
		ext = &v
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	x, err := scanInv(db.QueryRow(ctx, `
		UPDATE auth.invitations SET
			email      = COALESCE($3, email),
			role       = COALESCE($4, role),
			expires_at = CASE WHEN $5::double precision IS NULL THEN expires_at
			                  ELSE now() + $5::double precision * interval '1 second' END
		WHERE tenant_id = $1 AND token_hash = $2
		RETURNING `+invCols, tid, tokenHash(token), up.Email, up.Role, ext))
	return x, mapErr("UpdateInvitation", err)
}

// DeleteInvitation deletes the invitation with token; missing is
// ErrNotFound.
func (s *Store) DeleteInvitation(ctx context.Context, tenantID uuid.UUID, token string) error {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.invitations WHERE tenant_id = $1 AND token_hash = $2`, tid, tokenHash(token))
	if err != nil {
		return mapErr("DeleteInvitation", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("DeleteInvitation: %w", ErrNotFound)
	}
	return nil
}

// CleanupExpiredInvitations deletes expired, unaccepted invitations and
// returns how many.
func (s *Store) CleanupExpiredInvitations(ctx context.Context, tenantID uuid.UUID) (int64, error) {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return 0, err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.invitations WHERE tenant_id = $1 AND accepted_at IS NULL AND expires_at <= now()`, tid)
	if err != nil {
		return 0, mapErr("CleanupExpiredInvitations", err)
	}
	return tag.RowsAffected(), nil
}

// AcceptInvitation marks the invitation accepted, once: a single
// conditional UPDATE, so of two concurrent accepts exactly one succeeds and
// the other gets ErrInvitationUsed. Expired or missing is ErrNotFound. To
// create the invited user in the same transaction, use
// AcceptInvitationWithUser.
func (s *Store) AcceptInvitation(ctx context.Context, tenantID uuid.UUID, token string) (*Invitation, error) {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return nil, err
	}
	return acceptInv(ctx, db, tid, token)
}

func acceptInv(ctx context.Context, db DB, tid uuid.UUID, token string) (*Invitation, error) {
	h := tokenHash(token)
	x, err := scanInv(db.QueryRow(ctx, `
		UPDATE auth.invitations SET accepted_at = now()
		WHERE tenant_id = $1 AND token_hash = $2 AND accepted_at IS NULL AND expires_at > now()
		RETURNING `+invCols, tid, h))
	if err == nil {
		return x, nil
	}
	if !isNotFound(mapErr("", err)) {
		return nil, mapErr("AcceptInvitation", err)
	}
	// Tell "already used" from "no such (live) invitation".
	var used bool
	err = db.QueryRow(ctx, `SELECT accepted_at IS NOT NULL FROM auth.invitations
		WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > now()`, tid, h).Scan(&used)
	if err == nil && used {
		return nil, fmt.Errorf("AcceptInvitation: %w", ErrInvitationUsed)
	}
	return nil, fmt.Errorf("AcceptInvitation: %w", ErrNotFound)
}

// AcceptInvitationWithUser accepts the invitation and creates the invited
// user in one transaction: both happen or neither does (a taken handle
// leaves the invitation pending). The user's Email and Role come from the
// invitation; nu.Email and nu.Role must be empty or equal to them.
func (s *Store) AcceptInvitationWithUser(ctx context.Context, tenantID uuid.UUID, token string, nu NewUser) (*User, *Invitation, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, nil, err
	}
	var u *User
	var inv *Invitation
	err = s.tx(ctx, func(q DB) error {
		var err error
		if inv, err = acceptInv(ctx, q, tid, token); err != nil {
			return fmt.Errorf("AcceptInvitationWithUser: %w", err)
		}
		if nu.Email != "" && !strings.EqualFold(nu.Email, inv.Email) {
			return fmt.Errorf("AcceptInvitationWithUser: %w: email differs from the invitation's", ErrInvalidInput)
		}
		if nu.Role != "" && nu.Role != inv.Role {
			return fmt.Errorf("AcceptInvitationWithUser: %w: role differs from the invitation's", ErrInvalidInput)
		}
		nu.Email, nu.Role = inv.Email, inv.Role
		ts := *s
		ts.db = q
		if u, err = ts.CreateUser(ctx, tid, nu); err != nil {
			return fmt.Errorf("AcceptInvitationWithUser: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return u, inv, nil
}
