package authpg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Limit bounds failed attempts of one kind against one subject (a user,
// or for passwords an unknown login name): after MaxFailures failures
// within Window, further attempts are refused with ErrTooManyAttempts
// until Lockout has passed since the attempt that reached the limit. A
// success clears the count. The counters live in auth.attempt_limits and are updated
// with single conditional statements on the database clock, so every app
// server sharing the database shares them, and concurrent attempts can
// never run more than MaxFailures checks.
type Limit struct {
	MaxFailures int           // 0 means the default; negative disables the limit
	Window      time.Duration // 0 means the default
	Lockout     time.Duration // 0 means the default
}

// Limits are the attempt limits of a Store (Options.Limits).
type Limits struct {
	Password   Limit // Authenticate, per user (or unknown login name)
	TOTP       Limit // VerifyTOTP, per user
	BackupCode Limit // ConsumeBackupCode, per user
}

// DefaultLimits apply to every zero field of Options.Limits: 5 failed
// passwords or backup codes per 15 minutes, then 15 minutes locked; 5
// failed TOTP codes per 5 minutes, then 5 minutes locked (a TOTP guess
// has a 3 in a million chance; 5 per 5 minutes makes guessing hopeless).
var DefaultLimits = Limits{
	Password:   Limit{MaxFailures: 5, Window: 15 * time.Minute, Lockout: 15 * time.Minute},
	TOTP:       Limit{MaxFailures: 5, Window: 5 * time.Minute, Lockout: 5 * time.Minute},
	BackupCode: Limit{MaxFailures: 5, Window: 15 * time.Minute, Lockout: 15 * time.Minute},
}

// ErrTooManyAttempts means the subject is locked out for now; no password,
// code or hash was checked.
var ErrTooManyAttempts = errors.New("authpg: too many failed attempts; try again later")

// Attempt kinds, the kind column of auth.attempt_limits.
const (
	AttemptPassword   = "password"
	AttemptTOTP       = "totp"
	AttemptBackupCode = "backup_code"
)

func (l Limit) withDefault(d Limit) (Limit, error) {
	if l.Window < 0 || l.Lockout < 0 {
		return l, fmt.Errorf("%w: negative limit window or lockout", ErrInvalidInput)
	}
	if l.MaxFailures == 0 {
		l.MaxFailures = d.MaxFailures
	}
	if l.Window == 0 {
		l.Window = d.Window
	}
	if l.Lockout == 0 {
		l.Lockout = d.Lockout
	}
	return l, nil
}

func (l Limits) withDefaults() (Limits, error) {
	var err1, err2, err3 error
	l.Password, err1 = l.Password.withDefault(DefaultLimits.Password)
	l.TOTP, err2 = l.TOTP.withDefault(DefaultLimits.TOTP)
	l.BackupCode, err3 = l.BackupCode.withDefault(DefaultLimits.BackupCode)
	return l, errors.Join(err1, err2, err3)
}

func (s *Store) limit(kind string) Limit {
	switch kind {
	case AttemptTOTP:
		return s.limits.TOTP
	case AttemptBackupCode:
		return s.limits.BackupCode
	}
	return s.limits.Password
}

// reserveAttempt counts an attempt before it is checked, so that
// concurrent attempts (on any number of app servers) cannot together run
// more than MaxFailures checks: the count goes up only while it is below
// the limit, in one statement that takes the row lock. A window or lockout
// that has passed (database clock) starts the count again. The attempt
// that reaches the limit sets locked_until. A success calls clearAttempts.
const reserveSQL = `
	INSERT INTO auth.attempt_limits AS a (tenant_id, kind, subject, failures, window_started_at, locked_until)
	VALUES ($1, $2, $3, 1, now(), CASE WHEN $4 <= 1 THEN now() + $6::double precision * interval '1 second' END)
	ON CONFLICT (tenant_id, kind, subject) DO UPDATE SET
		failures = CASE WHEN a.window_started_at <= now() - $5::double precision * interval '1 second'
		                  OR a.locked_until <= now() THEN 1 ELSE a.failures + 1 END,
		window_started_at = CASE WHEN a.window_started_at <= now() - $5::double precision * interval '1 second'
		                  OR a.locked_until <= now() THEN now() ELSE a.window_started_at END,
		locked_until = CASE
			WHEN a.window_started_at <= now() - $5::double precision * interval '1 second' OR a.locked_until <= now()
				THEN CASE WHEN $4 <= 1 THEN now() + $6::double precision * interval '1 second' END
			WHEN a.failures + 1 >= $4 THEN now() + $6::double precision * interval '1 second'
			ELSE NULL END
	WHERE a.failures < $4
	   OR a.window_started_at <= now() - $5::double precision * interval '1 second' AND a.locked_until IS NULL
	   OR a.locked_until <= now()
	RETURNING failures`

func (s *Store) reserveAttempt(ctx context.Context, db DB, tid uuid.UUID, kind, subject string) error {
	l := s.limit(kind)
	if l.MaxFailures < 0 {
		return nil
	}
	var n int
	err := db.QueryRow(ctx, reserveSQL, tid, kind, subject, l.MaxFailures, seconds(l.Window), seconds(l.Lockout)).Scan(&n)
	if err != nil {
		if isNotFound(mapErr("", err)) {
			return ErrTooManyAttempts
		}
		return mapErr("reserve attempt", err)
	}
	return nil
}

// clearAttempts forgets the failures of a subject after a success.
func clearAttempts(ctx context.Context, db DB, tid uuid.UUID, kind, subject string) error {
	_, err := db.Exec(ctx, `DELETE FROM auth.attempt_limits WHERE tenant_id = $1 AND kind = $2 AND subject = $3`,
		tid, kind, subject)
	return mapErr("clear attempts", err)
}

// UnlockUser clears every failed-attempt counter of a user (password, TOTP
// and backup codes), e.g. after an administrator checked who they are. It
// returns how many counters it cleared.
func (s *Store) UnlockUser(ctx context.Context, tenantID, userID uuid.UUID) (int64, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return 0, err
	}
	uid, err := normID(userID)
	if err != nil {
		return 0, fmt.Errorf("UnlockUser: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return 0, err
	}
	tag, err := db.Exec(ctx, `DELETE FROM auth.attempt_limits WHERE tenant_id = $1 AND subject = $2`, tid, uid.String())
	if err != nil {
		return 0, mapErr("UnlockUser", err)
	}
	return tag.RowsAffected(), nil
}
