package authpg

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// Errors of Authenticate.
var (
	// ErrInvalidCredentials: no such user, or the wrong password. The two
	// are not told apart, in the error or in the time taken.
	ErrInvalidCredentials = errors.New("authpg: invalid login name or password")
	// ErrUserInactive: the password is right but the user is deactivated.
	ErrUserInactive = errors.New("authpg: user is not active")
)

// maxLoginLen bounds the login name (the longest e-mail address is 320
// bytes): it becomes the key of an attempt counter for unknown names.
const maxLoginLen = 320

// Login is the result of a successful Authenticate.
type Login struct {
	User    *User
	Session *Session
	// NeedsTOTP is true when the user has TOTP enabled: the session is
	// created with TOTPVerified false, and the app should ask for a code
	// (VerifyTOTP, then UpdateSession with TOTPVerified) before trusting it.
	NeedsTOTP bool
}

// Audit event types Authenticate records.
const (
	EventLogin       = "login"
	EventLoginFailed = "login_failed"
	EventLoginLocked = "login_locked"
)

// Authenticate logs a user in by handle or e-mail (case-insensitive) and
// password, and starts a session.
//
// Every attempt counts against the password limit (Options.Limits) of the
// user, or of the login name when there is no such user, before the
// password is compared; a locked-out subject gets ErrTooManyAttempts
// without any comparison. An unknown login name is compared against a
// dummy hash of the same cost, so it takes as long as a wrong password. A
// right password for a deactivated user is ErrUserInactive. On success the
// counter is cleared, last_login_at is set (database clock), the session
// is created and a "login" audit event recorded, in one transaction.
// Failures record "login_failed" or "login_locked" (severity warning).
func (s *Store) Authenticate(ctx context.Context, tenantID uuid.UUID, login, password string, md *SessionMetadata) (*Login, error) {
	tid, db, err := s.scope(tenantID)
	if err != nil {
		return nil, err
	}
	login = strings.TrimSpace(login)
	if login == "" || len(login) > maxLoginLen {
		return nil, fmt.Errorf("Authenticate: %w: empty or over-long login name", ErrInvalidInput)
	}
	if md == nil {
		md = &SessionMetadata{}
	}
	u, err := scanUser(db.QueryRow(ctx, `SELECT `+userCols+` FROM auth.users
		WHERE tenant_id = $1 AND (lower(handle) = lower($2) OR lower(email) = lower($2))
		ORDER BY lower(handle) = lower($2) DESC LIMIT 1`, tid, login))
	if err != nil && !isNotFound(mapErr("", err)) {
		return nil, mapErr("Authenticate", err)
	}
	subject, uid := "login:"+strings.ToLower(login), uuid.Nil
	hash := s.dummy.get()
	if u != nil {
		subject, uid = u.ID.String(), u.ID
		if u.PasswordHash != "" {
			hash = []byte(u.PasswordHash)
		}
	}
	fail := func(event string, cause error) (*Login, error) {
		_, aerr := s.LogAuditEvent(ctx, tid, NewAuditEvent{Type: event, UserID: uid, Severity: SeverityWarning,
			Source: "authpg", IPAddress: md.IPAddress, UserAgent: md.UserAgent,
			Details: map[string]any{"login": login}})
		if aerr != nil {
			return nil, fmt.Errorf("Authenticate: %w (audit: %v)", cause, aerr)
		}
		return nil, fmt.Errorf("Authenticate: %w", cause)
	}
	if err := s.reserveAttempt(ctx, db, tid, AttemptPassword, subject); err != nil {
		if errors.Is(err, ErrTooManyAttempts) {
			return fail(EventLoginLocked, err)
		}
		return nil, fmt.Errorf("Authenticate: %w", err)
	}
	// bcrypt reads only 72 bytes, so a longer password could match a
	// stored 72-byte one by its prefix; it can never have been set, so it
	// is wrong (compared all the same, for the timing).
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil && len(password) <= 72
	if u == nil || u.PasswordHash == "" || !ok {
		return fail(EventLoginFailed, ErrInvalidCredentials)
	}
	if !u.IsActive {
		return fail(EventLoginFailed, ErrUserInactive)
	}
	out := &Login{NeedsTOTP: u.TOTPEnabled}
	err = s.tx(ctx, func(q DB) error {
		ts := *s
		ts.db = q
		if err := clearAttempts(ctx, q, tid, AttemptPassword, subject); err != nil {
			return err
		}
		var err error
		if out.User, err = ts.UpdateUser(ctx, tid, u.ID, UserUpdate{TouchLastLogin: true}); err != nil {
			return err
		}
		if out.Session, err = ts.CreateSession(ctx, tid, u.ID, md); err != nil {
			return err
		}
		_, err = ts.LogAuditEvent(ctx, tid, NewAuditEvent{Type: EventLogin, UserID: u.ID, Source: "authpg",
			IPAddress: md.IPAddress, UserAgent: md.UserAgent, Details: map[string]any{"session_id": out.Session.ID}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("Authenticate: %w", err)
	}
	return out, nil
}
