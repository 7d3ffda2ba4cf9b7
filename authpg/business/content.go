package business

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BusinessProfile is public.business_profile: one per tenant.
type BusinessProfile struct {
	TenantID    uuid.UUID
	Name        string
	Tagline     string
	Description string
	Phone       *string
	Email       *string
	Address     *string
	TimeZone    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// UpsertBusinessProfileParams are the inputs of UpsertBusinessProfile.
type UpsertBusinessProfileParams struct {
	TenantID    uuid.UUID
	Name        string
	Tagline     string
	Description string
	Phone       *string
	Email       *string
	Address     *string
	TimeZone    string
}

// name: UpsertBusinessProfile :one
const upsertBusinessProfile = `
INSERT INTO public.business_profile (tenant_id, name, tagline, description, phone, email, address, time_zone)
VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE(NULLIF($8, ''), 'UTC'))
ON CONFLICT (tenant_id) DO UPDATE SET
    name = EXCLUDED.name, tagline = EXCLUDED.tagline, description = EXCLUDED.description,
    phone = EXCLUDED.phone, email = EXCLUDED.email, address = EXCLUDED.address,
    time_zone = EXCLUDED.time_zone, updated_at = now()
RETURNING tenant_id, name, tagline, description, phone, email, address, time_zone, created_at, updated_at`

func scanProfile(r pgx.Row) (BusinessProfile, error) {
	var p BusinessProfile
	err := r.Scan(&p.TenantID, &p.Name, &p.Tagline, &p.Description, &p.Phone, &p.Email, &p.Address, &p.TimeZone,
		&p.CreatedAt, &p.UpdatedAt)
	return p, err
}

// UpsertBusinessProfile creates or replaces the tenant's profile.
func (q *Queries) UpsertBusinessProfile(ctx context.Context, arg UpsertBusinessProfileParams) (BusinessProfile, error) {
	p, err := scanProfile(q.db.QueryRow(ctx, upsertBusinessProfile, arg.TenantID, arg.Name, arg.Tagline, arg.Description,
		arg.Phone, arg.Email, arg.Address, arg.TimeZone))
	return p, mapErr("UpsertBusinessProfile", err)
}

// name: GetBusinessProfile :one
const getBusinessProfile = `
SELECT tenant_id, name, tagline, description, phone, email, address, time_zone, created_at, updated_at
FROM public.business_profile WHERE tenant_id = $1`

// GetBusinessProfile returns the tenant's profile.
func (q *Queries) GetBusinessProfile(ctx context.Context, tenantID uuid.UUID) (BusinessProfile, error) {
	p, err := scanProfile(q.db.QueryRow(ctx, getBusinessProfile, tenantID))
	return p, mapErr("GetBusinessProfile", err)
}

// Service is public.services.
type Service struct {
	TenantID        uuid.UUID
	ID              uuid.UUID
	Slug            string
	Name            string
	Description     string
	DurationMinutes int32
	PriceCents      int64
	IsActive        bool
	SortOrder       int32
}

// CreateServiceParams are the inputs of CreateService.
type CreateServiceParams struct {
	TenantID        uuid.UUID
	Slug            string
	Name            string
	Description     string
	DurationMinutes int32
	PriceCents      int64
	SortOrder       int32
}

// name: CreateService :one
const createService = `
INSERT INTO public.services (tenant_id, slug, name, description, duration_minutes, price_cents, sort_order)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING tenant_id, id, slug, name, description, duration_minutes, price_cents, is_active, sort_order`

func scanService(r pgx.Row) (Service, error) {
	var s Service
	err := r.Scan(&s.TenantID, &s.ID, &s.Slug, &s.Name, &s.Description, &s.DurationMinutes, &s.PriceCents, &s.IsActive, &s.SortOrder)
	return s, err
}

// CreateService adds a service to the tenant's menu.
func (q *Queries) CreateService(ctx context.Context, arg CreateServiceParams) (Service, error) {
	s, err := scanService(q.db.QueryRow(ctx, createService, arg.TenantID, arg.Slug, arg.Name, arg.Description,
		arg.DurationMinutes, arg.PriceCents, arg.SortOrder))
	return s, mapErr("CreateService", err)
}

// name: ListActiveServices :many
const listActiveServices = `
SELECT tenant_id, id, slug, name, description, duration_minutes, price_cents, is_active, sort_order
FROM public.services WHERE tenant_id = $1 AND is_active ORDER BY sort_order, name`

// ListActiveServices lists the tenant's active services in menu order.
func (q *Queries) ListActiveServices(ctx context.Context, tenantID uuid.UUID) ([]Service, error) {
	rows, err := q.db.Query(ctx, listActiveServices, tenantID)
	if err != nil {
		return nil, mapErr("ListActiveServices", err)
	}
	return collect(rows, scanService, "ListActiveServices")
}

// Practitioner is public.practitioners.
type Practitioner struct {
	TenantID  uuid.UUID
	ID        uuid.UUID
	Slug      string
	Name      string
	Title     string
	Bio       string
	IsActive  bool
	SortOrder int32
}

// CreatePractitionerParams are the inputs of CreatePractitioner.
type CreatePractitionerParams struct {
	TenantID uuid.UUID
	Slug     string
	Name     string
	Title    string
	Bio      string
}

// name: CreatePractitioner :one
const createPractitioner = `
INSERT INTO public.practitioners (tenant_id, slug, name, title, bio) VALUES ($1, $2, $3, $4, $5)
RETURNING tenant_id, id, slug, name, title, bio, is_active, sort_order`

// CreatePractitioner adds a practitioner.
func (q *Queries) CreatePractitioner(ctx context.Context, arg CreatePractitionerParams) (Practitioner, error) {
	var p Practitioner
	err := q.db.QueryRow(ctx, createPractitioner, arg.TenantID, arg.Slug, arg.Name, arg.Title, arg.Bio).
		Scan(&p.TenantID, &p.ID, &p.Slug, &p.Name, &p.Title, &p.Bio, &p.IsActive, &p.SortOrder)
	return p, mapErr("CreatePractitioner", err)
}

// SetBusinessHoursParams are the inputs of SetBusinessHours. Opens and
// Closes are "HH:MM" (nil with IsClosed).
type SetBusinessHoursParams struct {
	TenantID  uuid.UUID
	DayOfWeek int32 // 0 = Sunday
	OpensAt   *string
	ClosesAt  *string
	IsClosed  bool
}

// name: SetBusinessHours :exec
const setBusinessHours = `
INSERT INTO public.business_hours (tenant_id, day_of_week, opens_at, closes_at, is_closed)
VALUES ($1, $2, $3::text::time, $4::text::time, $5)
ON CONFLICT (tenant_id, day_of_week) DO UPDATE SET
    opens_at = EXCLUDED.opens_at, closes_at = EXCLUDED.closes_at, is_closed = EXCLUDED.is_closed`

// SetBusinessHours sets the regular hours of one weekday.
func (q *Queries) SetBusinessHours(ctx context.Context, arg SetBusinessHoursParams) error {
	_, err := q.db.Exec(ctx, setBusinessHours, arg.TenantID, arg.DayOfWeek, arg.OpensAt, arg.ClosesAt, arg.IsClosed)
	return mapErr("SetBusinessHours", err)
}

// Review is public.reviews.
type Review struct {
	TenantID    uuid.UUID
	ID          uuid.UUID
	AuthorName  string
	Rating      int32
	Body        string
	IsPublished bool
	CreatedAt   time.Time
}

// CreateReviewParams are the inputs of CreateReview.
type CreateReviewParams struct {
	TenantID    uuid.UUID
	AuthorName  string
	Rating      int32
	Body        string
	IsPublished bool
}

// name: CreateReview :one
const createReview = `
INSERT INTO public.reviews (tenant_id, author_name, rating, body, is_published) VALUES ($1, $2, $3, $4, $5)
RETURNING tenant_id, id, author_name, rating, body, is_published, created_at`

// CreateReview records a review (rating 1..5, checked by the database).
func (q *Queries) CreateReview(ctx context.Context, arg CreateReviewParams) (Review, error) {
	var r Review
	err := q.db.QueryRow(ctx, createReview, arg.TenantID, arg.AuthorName, arg.Rating, arg.Body, arg.IsPublished).
		Scan(&r.TenantID, &r.ID, &r.AuthorName, &r.Rating, &r.Body, &r.IsPublished, &r.CreatedAt)
	return r, mapErr("CreateReview", err)
}
