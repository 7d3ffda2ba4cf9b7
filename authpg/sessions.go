package authpg

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Session is a database-backed login session. Token is what the app hands
// to the client (e.g. in a cookie): the session UUID, a dot, and an
// HMAC-SHA256 over (tenant, id) keyed by Options.SessionSecret.
//
// Token and TempTOTPSecret are bearer secrets and are left out of JSON, so
// a page that encodes ListSessions shows devices, not credentials.
type Session struct {
	TenantID       uuid.UUID
	ID             uuid.UUID
	Token          string `json:"-"`
	UserID         uuid.UUID
	IPAddress      *string
	UserAgent      *string
	Metadata       map[string]any
	TempTOTPSecret *string `json:"-"`
	TOTPVerified   bool
	ExpiresAt      time.Time
	LastActivityAt time.Time
	CreatedAt      time.Time
}

// SessionMetadata is the optional metadata of CreateSession.
type SessionMetadata struct {
	IPAddress string
	UserAgent string
	Extra     map[string]any
}

// SessionUpdate is a partial update of a session. Extend moves the expiry
// to the database's now() plus SessionMaxAge (or ExpiresIn when set).
type SessionUpdate struct {
	Extend         bool
	ExpiresIn      *time.Duration
	TempTOTPSecret *string // enrolment secret, sealed with Options.TOTPKeys; "" clears
	TOTPVerified   *bool
	IPAddress      *string
	UserAgent      *string
	Metadata       map[string]any // replaces when non-nil
}

const sessionCols = `tenant_id, id, user_id, ip_address, user_agent, metadata, temp_totp_secret,
	totp_verified, expires_at, last_activity_at, created_at`

func (s *Store) scanSession(row pgx.Row) (*Session, error) {
	x := &Session{}
	var meta []byte
	if err := row.Scan(&x.TenantID, &x.ID, &x.UserID, &x.IPAddress, &x.UserAgent, &meta, &x.TempTOTPSecret,
		&x.TOTPVerified, &x.ExpiresAt, &x.LastActivityAt, &x.CreatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(meta, &x.Metadata); err != nil {
		return nil, fmt.Errorf("session metadata: %w", err)
	}
	if x.TempTOTPSecret != nil {
		plain, err := s.openTemp(x.TenantID, x.ID, *x.TempTOTPSecret)
		if err != nil {
			return nil, fmt.Errorf("session: %w", err)
		}
		x.TempTOTPSecret = &plain
	}
	x.Token = s.SignSessionID(x.TenantID, x.ID)
	return x, nil
}

func (s *Store) mac(tenantID, id uuid.UUID) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("authpg-session\x00"))
	m.Write([]byte(tenantID.String()))
	m.Write([]byte{0})
	m.Write([]byte(id.String()))
	return m.Sum(nil)
}

// SignSessionID returns the token for a session id of a tenant.
func (s *Store) SignSessionID(tenantID, id uuid.UUID) string {
	return id.String() + "." + base64.RawURLEncoding.EncodeToString(s.mac(tenantID, id))
}

// VerifySessionToken checks a token's signature for tenant and returns the
// session id. It runs no query.
func (s *Store) VerifySessionToken(tenantID uuid.UUID, token string) (uuid.UUID, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return uuid.Nil, err
	}
	id, sig, ok := strings.Cut(token, ".")
	if !ok {
		return uuid.Nil, ErrInvalidSession
	}
	// Only the canonical form was ever signed.
	u, err := uuid.Parse(id)
	if err != nil || len(id) != 36 || u.String() != id {
		return uuid.Nil, ErrInvalidSession
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(tid, u)) {
		return uuid.Nil, ErrInvalidSession
	}
	return u, nil
}

// sessionRef resolves what a caller holds for a session: the signed token
// (from the cookie) or the session id in canonical text form,
// Session.ID.String() (from a Session the server already loaded). Anything
// else is ErrInvalidSession, never a silent no-op.
func (s *Store) sessionRef(tenantID uuid.UUID, ref string) (tid, sid uuid.UUID, err error) {
	tid, err = normTenant(tenantID)
	if err != nil {
		return uuid.Nil, uuid.Nil, err
	}
	if strings.Contains(ref, ".") {
		sid, err = s.VerifySessionToken(tid, ref)
		return tid, sid, err
	}
	u, err := uuid.Parse(ref)
	if err != nil || u.String() != ref || u == uuid.Nil {
		return uuid.Nil, uuid.Nil, fmt.Errorf("%w: %q is neither a session token nor a session id", ErrInvalidSession, ref)
	}
	return tid, u, nil
}

// CreateSession starts a session for userID that expires SessionMaxAge
// after the database's now().
func (s *Store) CreateSession(ctx context.Context, tenantID, userID uuid.UUID, md *SessionMetadata) (*Session, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, err := normID(userID)
	if err != nil {
		return nil, err
	}
	if md == nil {
		md = &SessionMetadata{}
	}
	extra := md.Extra
	if extra == nil {
		extra = map[string]any{}
	}
	meta, err := json.Marshal(extra)
	if err != nil {
		return nil, fmt.Errorf("CreateSession: metadata: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	x, err := s.scanSession(db.QueryRow(ctx, `
		INSERT INTO auth.sessions (tenant_id, user_id, ip_address, user_agent, metadata, expires_at)
		VALUES ($1, $2, $3, $4, $5::text::jsonb, now() + $6::double precision * interval '1 second')
		RETURNING `+sessionCols,
		tid, uid, nullIfEmpty(md.IPAddress), nullIfEmpty(md.UserAgent), string(meta), seconds(s.maxAge)))
	return x, mapErr("CreateSession", err)
}

// GetSession returns the live session named by token. A token with a bad
// signature is ErrInvalidSession, before any query; an expired or missing
// session is ErrNotFound.
func (s *Store) GetSession(ctx context.Context, tenantID uuid.UUID, token string) (*Session, error) {
	id, err := s.VerifySessionToken(tenantID, token)
	if err != nil {
		return nil, fmt.Errorf("GetSession: %w", err)
	}
	tid, _ := normTenant(tenantID)
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	x, err := s.scanSession(db.QueryRow(ctx, `SELECT `+sessionCols+` FROM auth.sessions
		WHERE tenant_id = $1 AND id = $2 AND expires_at > now()`, tid, id))
	return x, mapErr("GetSession", err)
}

// UpdateSession updates a live session and records activity. session is
// the token or the session id; a malformed one or a token with a bad
// signature is ErrInvalidSession. Missing or expired is ErrNotFound.
func (s *Store) UpdateSession(ctx context.Context, tenantID uuid.UUID, session string, up SessionUpdate) (*Session, error) {
	tid, sid, err := s.sessionRef(tenantID, session)
	if err != nil {
		return nil, fmt.Errorf("UpdateSession: %w", err)
	}
	var extendBy *float64
	switch {
	case up.ExpiresIn != nil:
		if *up.ExpiresIn <= 0 {
			return nil, fmt.Errorf("UpdateSession: %w: non-positive ExpiresIn", ErrInvalidInput)
		}
		v := seconds(*up.ExpiresIn)
		extendBy = &v
	case up.Extend:
		v := seconds(s.maxAge)
		extendBy = &v
	}
	temp := up.TempTOTPSecret
	if temp != nil && *temp != "" {
		// Sealed like a permanent secret, and bound to this session.
		sealed, err := s.sealTemp(tid, sid, *temp)
		if err != nil {
			return nil, fmt.Errorf("UpdateSession: %w", err)
		}
		temp = &sealed
	}
	var meta *string
	if up.Metadata != nil {
		b, err := json.Marshal(up.Metadata)
		if err != nil {
			return nil, fmt.Errorf("UpdateSession: metadata: %w", err)
		}
		m := string(b)
		meta = &m
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	x, err := s.scanSession(db.QueryRow(ctx, `
		UPDATE auth.sessions SET
			expires_at       = CASE WHEN $3::double precision IS NULL THEN expires_at
			                        ELSE now() + $3::double precision * interval '1 second' END,
			temp_totp_secret = CASE WHEN $4::text IS NULL THEN temp_totp_secret ELSE NULLIF($4, '') END,
			totp_verified    = COALESCE($5, totp_verified),
			ip_address       = COALESCE($6, ip_address),
			user_agent       = COALESCE($7, user_agent),
			metadata         = COALESCE($8::text::jsonb, metadata),
			last_activity_at = now()
		WHERE tenant_id = $1 AND id = $2 AND expires_at > now()
		RETURNING `+sessionCols,
		tid, sid, extendBy, temp, up.TOTPVerified, up.IPAddress, up.UserAgent, meta))
	return x, mapErr("UpdateSession", err)
}

// DeleteSession ends a session (logout). session is the token the client
// presented or the session id; a malformed one or a token with a bad
// signature is ErrInvalidSession. Deleting a session that is already gone
// is not an error, so logout is idempotent.
func (s *Store) DeleteSession(ctx context.Context, tenantID uuid.UUID, session string) error {
	tid, sid, err := s.sessionRef(tenantID, session)
	if err != nil {
		return fmt.Errorf("DeleteSession: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, `DELETE FROM auth.sessions WHERE tenant_id = $1 AND id = $2`, tid, sid)
	return mapErr("DeleteSession", err)
}

// DeleteUserSessions ends every session of a user and returns how many.
func (s *Store) DeleteUserSessions(ctx context.Context, tenantID, userID uuid.UUID) (int64, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return 0, err
	}
	uid, err := normID(userID)
	if err != nil {
		return 0, fmt.Errorf("DeleteUserSessions: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return 0, err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.sessions WHERE tenant_id = $1 AND user_id = $2`, tid, uid)
	if err != nil {
		return 0, mapErr("DeleteUserSessions", err)
	}
	return tag.RowsAffected(), nil
}

// ListSessionsByUser returns a user's live sessions, newest first.
func (s *Store) ListSessionsByUser(ctx context.Context, tenantID, userID uuid.UUID) ([]*Session, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, err := normID(userID)
	if err != nil {
		return nil, fmt.Errorf("ListSessionsByUser: %w", err)
	}
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+sessionCols+` FROM auth.sessions
		WHERE tenant_id = $1 AND user_id = $2 AND expires_at > now() ORDER BY created_at DESC, id`, tid, uid)
	if err != nil {
		return nil, mapErr("ListSessionsByUser", err)
	}
	return collect(rows, s.scanSession, "ListSessionsByUser")
}

// ListSessions returns the tenant's live sessions, newest first (the
// seed's getAllSessions).
func (s *Store) ListSessions(ctx context.Context, tenantID uuid.UUID) ([]*Session, error) {
	tid, db, err := s.readScope(tenantID)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+sessionCols+` FROM auth.sessions
		WHERE tenant_id = $1 AND expires_at > now() ORDER BY created_at DESC, id`, tid)
	if err != nil {
		return nil, mapErr("ListSessions", err)
	}
	return collect(rows, s.scanSession, "ListSessions")
}

// CleanupExpiredSessions deletes the tenant's expired sessions (by the
// database clock) and returns how many.
func (s *Store) CleanupExpiredSessions(ctx context.Context, tenantID uuid.UUID) (int64, error) {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return 0, err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.sessions WHERE tenant_id = $1 AND expires_at <= now()`, tid)
	if err != nil {
		return 0, mapErr("CleanupExpiredSessions", err)
	}
	return tag.RowsAffected(), nil
}
