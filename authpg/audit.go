package authpg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Audit severities (a CHECK constraint refuses others).
const (
	SeverityDebug    = "debug"
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityError    = "error"
	SeverityCritical = "critical"
)

// AuditEvent is one entry of the auth event log.
type AuditEvent struct {
	TenantID     uuid.UUID
	ID           uuid.UUID
	Type         string // e.g. login, logout, login_failed, role_changed
	UserID       *uuid.UUID
	TargetUserID *uuid.UUID
	Severity     string
	Source       string
	IPAddress    *string
	UserAgent    *string
	Details      map[string]any
	CreatedAt    time.Time // the database's now() at insert
}

// NewAuditEvent is the input of LogAuditEvent.
type NewAuditEvent struct {
	Type         string
	UserID       uuid.UUID // optional (uuid.Nil: none)
	TargetUserID uuid.UUID // optional
	Severity     string    // default info
	Source       string
	IPAddress    string
	UserAgent    string
	Details      map[string]any
}

// AuditFilter selects audit events; zero fields do not filter. Since is
// inclusive, Until exclusive.
type AuditFilter struct {
	Type         string
	UserID       uuid.UUID
	TargetUserID uuid.UUID
	Severity     string
	Source       string
	Since        time.Time
	Until        time.Time
	Limit        int // default DefaultAuditLimit, at most MaxAuditLimit
	Offset       int
}

// Audit list bounds: nothing is unbounded.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// optUUID maps an unset (nil) optional id to NULL.
func optUUID(v uuid.UUID) *uuid.UUID {
	if v == uuid.Nil {
		return nil
	}
	return &v
}

// LogAuditEvent records an event with a UUID id and the database's
// timestamp, and returns it.
func (s *Store) LogAuditEvent(ctx context.Context, tenantID uuid.UUID, ev NewAuditEvent) (*AuditEvent, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(ev.Type) == "" {
		return nil, fmt.Errorf("LogAuditEvent: %w: empty type", ErrInvalidInput)
	}
	uid, target := optUUID(ev.UserID), optUUID(ev.TargetUserID)
	sev := ev.Severity
	if sev == "" {
		sev = SeverityInfo
	}
	details := ev.Details
	if details == nil {
		details = map[string]any{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return nil, fmt.Errorf("LogAuditEvent: details: %w", err)
	}
	db, err := s.q()
	if err != nil {
		return nil, err
	}
	x, err := scanAudit(db.QueryRow(ctx, `
		INSERT INTO auth.audit_events (tenant_id, event_type, user_id, target_user_id, severity, source,
			ip_address, user_agent, details)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)
		RETURNING `+auditCols, tid, ev.Type, uid, target, sev, ev.Source, nullIfEmpty(ev.IPAddress),
		nullIfEmpty(ev.UserAgent), string(b)))
	return x, mapErr("LogAuditEvent", err)
}

const auditCols = `tenant_id, id, event_type, user_id, target_user_id, severity, source, ip_address, user_agent, details, created_at`

func scanAudit(row pgx.Row) (*AuditEvent, error) {
	x := &AuditEvent{}
	var det []byte
	if err := row.Scan(&x.TenantID, &x.ID, &x.Type, &x.UserID, &x.TargetUserID, &x.Severity, &x.Source,
		&x.IPAddress, &x.UserAgent, &det, &x.CreatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(det, &x.Details); err != nil {
		return nil, fmt.Errorf("audit details: %w", err)
	}
	return x, nil
}

// ListAuditEvents returns matching events, newest first (ties by id), at
// most Limit of them after skipping Offset.
func (s *Store) ListAuditEvents(ctx context.Context, tenantID uuid.UUID, f AuditFilter) ([]*AuditEvent, error) {
	tid, err := normTenant(tenantID)
	if err != nil {
		return nil, err
	}
	uid, target := optUUID(f.UserID), optUUID(f.TargetUserID)
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultAuditLimit
	case limit > MaxAuditLimit:
		limit = MaxAuditLimit
	}
	if f.Offset < 0 {
		return nil, fmt.Errorf("ListAuditEvents: %w: negative offset", ErrInvalidInput)
	}
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	db, err := s.r()
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, `SELECT `+auditCols+` FROM auth.audit_events
		WHERE tenant_id = $1
		  AND ($2::text IS NULL OR event_type = $2)
		  AND ($3::uuid IS NULL OR user_id = $3)
		  AND ($4::uuid IS NULL OR target_user_id = $4)
		  AND ($5::text IS NULL OR severity = $5)
		  AND ($6::text IS NULL OR source = $6)
		  AND ($7::timestamptz IS NULL OR created_at >= $7)
		  AND ($8::timestamptz IS NULL OR created_at < $8)
		ORDER BY created_at DESC, id DESC
		LIMIT $9 OFFSET $10`,
		tid, nullIfEmpty(f.Type), uid, target, nullIfEmpty(f.Severity), nullIfEmpty(f.Source), since, until,
		limit, f.Offset)
	if err != nil {
		return nil, mapErr("ListAuditEvents", err)
	}
	return collect(rows, scanAudit, "ListAuditEvents")
}
