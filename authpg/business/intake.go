package business

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// IntakeSubmission is public.intake_submissions.
type IntakeSubmission struct {
	TenantID    uuid.UUID
	ID          uuid.UUID
	ClientID    *uuid.UUID
	BookingID   *uuid.UUID
	FullName    string
	Email       *string
	Phone       *string
	FormVersion string
	Answers     map[string]any
	ConsentAt   *time.Time
	SubmittedAt time.Time
}

// CreateIntakeSubmissionParams are the inputs of CreateIntakeSubmission.
// Consent records consent at the database's now().
type CreateIntakeSubmissionParams struct {
	TenantID    uuid.UUID
	ClientID    *uuid.UUID
	BookingID   *uuid.UUID
	FullName    string
	Email       *string
	Phone       *string
	FormVersion string
	Answers     map[string]any
	Consent     bool
}

const intakeCols = `tenant_id, id, client_id, booking_id, full_name, email, phone, form_version, answers, consent_at, submitted_at`

func scanIntake(r pgx.Row) (IntakeSubmission, error) {
	var s IntakeSubmission
	var answers []byte
	if err := r.Scan(&s.TenantID, &s.ID, &s.ClientID, &s.BookingID, &s.FullName, &s.Email, &s.Phone, &s.FormVersion,
		&answers, &s.ConsentAt, &s.SubmittedAt); err != nil {
		return s, err
	}
	return s, json.Unmarshal(answers, &s.Answers)
}

// name: CreateIntakeSubmission :one
const createIntakeSubmission = `
INSERT INTO public.intake_submissions (tenant_id, client_id, booking_id, full_name, email, phone, form_version, answers, consent_at)
VALUES ($1, $2, $3, $4, $5, $6, COALESCE(NULLIF($7, ''), '1'), $8::text::jsonb, CASE WHEN $9 THEN now() END)
RETURNING ` + intakeCols

// CreateIntakeSubmission stores a submitted intake form.
func (q *Queries) CreateIntakeSubmission(ctx context.Context, arg CreateIntakeSubmissionParams) (IntakeSubmission, error) {
	answers := arg.Answers
	if answers == nil {
		answers = map[string]any{}
	}
	b, err := json.Marshal(answers)
	if err != nil {
		return IntakeSubmission{}, fmt.Errorf("CreateIntakeSubmission: answers: %w", err)
	}
	s, err := scanIntake(q.db.QueryRow(ctx, createIntakeSubmission, arg.TenantID, arg.ClientID, arg.BookingID, arg.FullName,
		arg.Email, arg.Phone, arg.FormVersion, string(b), arg.Consent))
	return s, mapErr("CreateIntakeSubmission", err)
}

// name: ListIntakeSubmissionsByClient :many
const listIntakeByClient = `SELECT ` + intakeCols + ` FROM public.intake_submissions
WHERE tenant_id = $1 AND client_id = $2 ORDER BY submitted_at DESC, id`

// ListIntakeSubmissionsByClient lists a client's forms, newest first.
func (q *Queries) ListIntakeSubmissionsByClient(ctx context.Context, tenantID, clientID uuid.UUID) ([]IntakeSubmission, error) {
	rows, err := q.db.Query(ctx, listIntakeByClient, tenantID, clientID)
	if err != nil {
		return nil, mapErr("ListIntakeSubmissionsByClient", err)
	}
	return collect(rows, scanIntake, "ListIntakeSubmissionsByClient")
}
