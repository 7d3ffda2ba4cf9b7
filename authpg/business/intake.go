package business

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg/business/internal/sqlcdb"
)

// IntakeSubmission is public.intake_submissions, with the answers decoded.
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
	ReviewedAt  *time.Time
	SubmittedAt time.Time
}

func fromIntake(s sqlcdb.IntakeSubmission) (IntakeSubmission, error) {
	out := IntakeSubmission{TenantID: s.TenantID, ID: s.ID, ClientID: s.ClientID, BookingID: s.BookingID,
		FullName: s.FullName, Email: s.Email, Phone: s.Phone, FormVersion: s.FormVersion, ConsentAt: s.ConsentAt,
		ReviewedAt: s.ReviewedAt, SubmittedAt: s.SubmittedAt}
	if err := json.Unmarshal(s.Answers, &out.Answers); err != nil {
		return out, fmt.Errorf("intake answers: %w", err)
	}
	return out, nil
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
	FormVersion string // default "1"
	Answers     map[string]any
	Consent     bool
}

// CreateIntakeSubmission stores a submitted intake form.
func (q *Queries) CreateIntakeSubmission(ctx context.Context, arg CreateIntakeSubmissionParams) (IntakeSubmission, error) {
	if err := checkTenant("CreateIntakeSubmission", arg.TenantID); err != nil {
		return IntakeSubmission{}, err
	}
	answers := arg.Answers
	if answers == nil {
		answers = map[string]any{}
	}
	b, err := json.Marshal(answers)
	if err != nil {
		return IntakeSubmission{}, fmt.Errorf("CreateIntakeSubmission: answers: %w", err)
	}
	s, err := q.q.CreateIntakeSubmission(ctx, sqlcdb.CreateIntakeSubmissionParams{TenantID: arg.TenantID,
		ClientID: arg.ClientID, BookingID: arg.BookingID, FullName: arg.FullName, Email: arg.Email, Phone: arg.Phone,
		FormVersion: arg.FormVersion, Answers: b, Consent: arg.Consent})
	if err != nil {
		return IntakeSubmission{}, mapErr("CreateIntakeSubmission", err)
	}
	return fromIntake(s)
}

// ListIntakeSubmissionsByClient lists a client's forms, newest first.
func (q *Queries) ListIntakeSubmissionsByClient(ctx context.Context, tenantID, clientID uuid.UUID) ([]IntakeSubmission, error) {
	if err := checkTenant("ListIntakeSubmissionsByClient", tenantID); err != nil {
		return nil, err
	}
	rows, err := q.q.ListIntakeSubmissionsByClient(ctx, sqlcdb.ListIntakeSubmissionsByClientParams{TenantID: tenantID, ClientID: &clientID})
	if err != nil {
		return nil, mapErr("ListIntakeSubmissionsByClient", err)
	}
	out := make([]IntakeSubmission, 0, len(rows))
	for _, r := range rows {
		s, err := fromIntake(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
