package authpg

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// CleanupResult counts what CleanupAllTenants deleted.
type CleanupResult struct {
	Sessions    int64 // expired sessions
	Invitations int64 // expired, never accepted invitations
	Attempts    int64 // failed-attempt counters whose window and lockout have passed
}

// requireBypass refuses the cross-tenant methods on a role that RLS
// binds: there they would see no rows and report success having done
// nothing.
func requireBypass(ctx context.Context, db DB, op string) error {
	var ok bool
	err := db.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user`).Scan(&ok)
	if err != nil {
		return mapErr(op, err)
	}
	if !ok {
		return fmt.Errorf("%s: %w: the role must be a superuser or have BYPASSRLS", op, ErrForbidden)
	}
	return nil
}

// CleanupAllTenants deletes, across every tenant, expired sessions,
// expired unaccepted invitations and stale failed-attempt counters (all by
// the database clock). It is for the maintenance job, on a Store whose
// role bypasses RLS (a superuser or BYPASSRLS role); any other role gets
// ErrForbidden rather than a silent zero.
func (s *Store) CleanupAllTenants(ctx context.Context) (CleanupResult, error) {
	var r CleanupResult
	err := s.tx(ctx, func(q DB) error {
		if err := requireBypass(ctx, q, "CleanupAllTenants"); err != nil {
			return err
		}
		tag, err := q.Exec(ctx, `DELETE FROM auth.sessions WHERE expires_at <= now()`)
		if err != nil {
			return mapErr("CleanupAllTenants", err)
		}
		r.Sessions = tag.RowsAffected()
		tag, err = q.Exec(ctx, `DELETE FROM auth.invitations WHERE accepted_at IS NULL AND expires_at <= now()`)
		if err != nil {
			return mapErr("CleanupAllTenants", err)
		}
		r.Invitations = tag.RowsAffected()
		// A counter matters while its window is open or its lockout
		// runs; the longest window and lockout of any kind bound both.
		tag, err = q.Exec(ctx, `DELETE FROM auth.attempt_limits
			WHERE window_started_at <= now() - $1::double precision * interval '1 second'
			  AND (locked_until IS NULL OR locked_until <= now())`, seconds(s.maxLimitWindow()))
		if err != nil {
			return mapErr("CleanupAllTenants", err)
		}
		r.Attempts = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return CleanupResult{}, err
	}
	return r, nil
}

// ListTenants returns every tenant that has a user, an invitation or an
// audit event, ordered (for a job that works tenant by tenant). Like
// CleanupAllTenants it needs a role that bypasses RLS (ErrForbidden
// otherwise).
func (s *Store) ListTenants(ctx context.Context) ([]uuid.UUID, error) {
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	if err := requireBypass(ctx, db, "ListTenants"); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT tenant_id FROM auth.users UNION SELECT tenant_id FROM auth.invitations
		UNION SELECT tenant_id FROM auth.audit_events ORDER BY 1`)
	if err != nil {
		return nil, mapErr("ListTenants", err)
	}
	var out []uuid.UUID
	for rows.Next() {
		var t uuid.UUID
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, mapErr("ListTenants", err)
		}
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr("ListTenants", err)
	}
	return out, nil
}

func (s *Store) maxLimitWindow() time.Duration {
	var d time.Duration
	for _, l := range []Limit{s.limits.Password, s.limits.TOTP, s.limits.BackupCode} {
		d = max(d, l.Window)
	}
	return d
}
