package business

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Client is public.clients.
type Client struct {
	TenantID  uuid.UUID
	ID        uuid.UUID
	Name      string
	Email     *string
	Phone     *string
	Notes     string
	CreatedAt time.Time
}

// CreateClientParams are the inputs of CreateClient.
type CreateClientParams struct {
	TenantID uuid.UUID
	Name     string
	Email    *string
	Phone    *string
	Notes    string
}

// name: CreateClient :one
const createClient = `
INSERT INTO public.clients (tenant_id, name, email, phone, notes) VALUES ($1, $2, $3, $4, $5)
RETURNING tenant_id, id, name, email, phone, notes, created_at`

// CreateClient adds a client to the directory.
func (q *Queries) CreateClient(ctx context.Context, arg CreateClientParams) (Client, error) {
	var c Client
	err := q.db.QueryRow(ctx, createClient, arg.TenantID, arg.Name, arg.Email, arg.Phone, arg.Notes).
		Scan(&c.TenantID, &c.ID, &c.Name, &c.Email, &c.Phone, &c.Notes, &c.CreatedAt)
	return c, mapErr("CreateClient", err)
}

// SlotReservation is public.slot_reservations: a temporary hold during the
// booking flow.
type SlotReservation struct {
	TenantID       uuid.UUID
	ID             uuid.UUID
	PractitionerID uuid.UUID
	ServiceID      *uuid.UUID
	ClientEmail    *string
	StartsAt       time.Time
	EndsAt         time.Time
	ExpiresAt      time.Time
	CreatedAt      time.Time
}

// HoldSlotParams are the inputs of HoldSlot. TTL is counted from the
// database's now().
type HoldSlotParams struct {
	TenantID       uuid.UUID
	PractitionerID uuid.UUID
	ServiceID      *uuid.UUID
	ClientEmail    *string
	StartsAt       time.Time
	EndsAt         time.Time
	TTL            time.Duration
}

// name: HoldSlot :one
const holdSlot = `
INSERT INTO public.slot_reservations (tenant_id, practitioner_id, service_id, client_email, starts_at, ends_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + $7::double precision * interval '1 second')
RETURNING tenant_id, id, practitioner_id, service_id, client_email, starts_at, ends_at, expires_at, created_at`

// HoldSlot reserves a time range of a practitioner for TTL. It fails with
// ErrSlotTaken when the range overlaps a confirmed booking, a time block
// or another live hold (expired holds are purged first).
func (q *Queries) HoldSlot(ctx context.Context, arg HoldSlotParams) (SlotReservation, error) {
	if arg.TTL <= 0 {
		return SlotReservation{}, fmt.Errorf("HoldSlot: %w: TTL must be positive", ErrInvalid)
	}
	var r SlotReservation
	err := q.db.QueryRow(ctx, holdSlot, arg.TenantID, arg.PractitionerID, arg.ServiceID, arg.ClientEmail,
		arg.StartsAt, arg.EndsAt, arg.TTL.Seconds()).
		Scan(&r.TenantID, &r.ID, &r.PractitionerID, &r.ServiceID, &r.ClientEmail, &r.StartsAt, &r.EndsAt, &r.ExpiresAt, &r.CreatedAt)
	return r, mapErr("HoldSlot", err)
}

// name: ReleaseSlot :execrows
const releaseSlot = `DELETE FROM public.slot_reservations WHERE tenant_id = $1 AND id = $2`

// ReleaseSlot drops a hold (the client gave up). Missing is ErrNotFound.
func (q *Queries) ReleaseSlot(ctx context.Context, tenantID, id uuid.UUID) error {
	tag, err := q.db.Exec(ctx, releaseSlot, tenantID, id)
	if err != nil {
		return mapErr("ReleaseSlot", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("ReleaseSlot: %w", ErrNotFound)
	}
	return nil
}

// name: PurgeExpiredHolds :execrows
const purgeExpiredHolds = `DELETE FROM public.slot_reservations WHERE tenant_id = $1 AND expires_at <= now()`

// PurgeExpiredHolds deletes the tenant's expired holds (database clock).
func (q *Queries) PurgeExpiredHolds(ctx context.Context, tenantID uuid.UUID) (int64, error) {
	tag, err := q.db.Exec(ctx, purgeExpiredHolds, tenantID)
	if err != nil {
		return 0, mapErr("PurgeExpiredHolds", err)
	}
	return tag.RowsAffected(), nil
}

// Booking is public.bookings.
type Booking struct {
	TenantID           uuid.UUID
	ID                 uuid.UUID
	PractitionerID     uuid.UUID
	ServiceID          *uuid.UUID
	ClientID           uuid.UUID
	StartsAt           time.Time
	EndsAt             time.Time
	Status             string // confirmed, cancelled, completed, no_show
	PriceCents         int64
	PaidCents          int64
	PaymentStatus      string // unpaid, deposit_paid, paid, refunded
	PaymentMethod      *string
	PaymentReference   *string
	Notes              string
	CancelledAt        *time.Time
	CancellationReason *string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Booking statuses.
const (
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
	StatusCompleted = "completed"
	StatusNoShow    = "no_show"
)

const bookingCols = `tenant_id, id, practitioner_id, service_id, client_id, starts_at, ends_at, status, price_cents,
    paid_cents, payment_status, payment_method, payment_reference, notes, cancelled_at, cancellation_reason,
    created_at, updated_at`

func scanBooking(r pgx.Row) (Booking, error) {
	var b Booking
	err := r.Scan(&b.TenantID, &b.ID, &b.PractitionerID, &b.ServiceID, &b.ClientID, &b.StartsAt, &b.EndsAt, &b.Status,
		&b.PriceCents, &b.PaidCents, &b.PaymentStatus, &b.PaymentMethod, &b.PaymentReference, &b.Notes, &b.CancelledAt,
		&b.CancellationReason, &b.CreatedAt, &b.UpdatedAt)
	return b, err
}

// ConfirmBookingParams are the inputs of ConfirmBooking.
type ConfirmBookingParams struct {
	TenantID      uuid.UUID
	ReservationID uuid.UUID
	ClientID      uuid.UUID
	PriceCents    int64
	Notes         string
}

// name: ConfirmBooking :one
// One statement: the live hold is deleted (its claim released) and the
// confirmed booking inserted (claiming the same range) atomically.
const confirmBooking = `
WITH held AS (
    DELETE FROM public.slot_reservations
    WHERE tenant_id = $1 AND id = $2 AND expires_at > now()
    RETURNING tenant_id, practitioner_id, service_id, starts_at, ends_at
)
INSERT INTO public.bookings (tenant_id, practitioner_id, service_id, client_id, starts_at, ends_at, status, price_cents, notes)
SELECT tenant_id, practitioner_id, service_id, $3, starts_at, ends_at, 'confirmed', $4, $5 FROM held
RETURNING ` + bookingCols

// ConfirmBooking turns a live hold into a confirmed booking. An expired or
// unknown hold is ErrHoldExpired.
func (q *Queries) ConfirmBooking(ctx context.Context, arg ConfirmBookingParams) (Booking, error) {
	b, err := scanBooking(q.db.QueryRow(ctx, confirmBooking, arg.TenantID, arg.ReservationID, arg.ClientID, arg.PriceCents, arg.Notes))
	if err == pgx.ErrNoRows {
		return b, fmt.Errorf("ConfirmBooking: %w", ErrHoldExpired)
	}
	return b, mapErr("ConfirmBooking", err)
}

// CreateBookingParams are the inputs of CreateBooking.
type CreateBookingParams struct {
	TenantID       uuid.UUID
	PractitionerID uuid.UUID
	ServiceID      *uuid.UUID
	ClientID       uuid.UUID
	StartsAt       time.Time
	EndsAt         time.Time
	PriceCents     int64
	Notes          string
}

// name: CreateBooking :one
const createBooking = `
INSERT INTO public.bookings (tenant_id, practitioner_id, service_id, client_id, starts_at, ends_at, status, price_cents, notes)
VALUES ($1, $2, $3, $4, $5, $6, 'confirmed', $7, $8)
RETURNING ` + bookingCols

// CreateBooking books directly (staff entering a phone booking), without a
// hold. Overlaps are ErrSlotTaken.
func (q *Queries) CreateBooking(ctx context.Context, arg CreateBookingParams) (Booking, error) {
	b, err := scanBooking(q.db.QueryRow(ctx, createBooking, arg.TenantID, arg.PractitionerID, arg.ServiceID, arg.ClientID,
		arg.StartsAt, arg.EndsAt, arg.PriceCents, arg.Notes))
	return b, mapErr("CreateBooking", err)
}

// name: GetBooking :one
const getBooking = `SELECT ` + bookingCols + ` FROM public.bookings WHERE tenant_id = $1 AND id = $2`

// GetBooking returns one booking.
func (q *Queries) GetBooking(ctx context.Context, tenantID, id uuid.UUID) (Booking, error) {
	b, err := scanBooking(q.db.QueryRow(ctx, getBooking, tenantID, id))
	return b, mapErr("GetBooking", err)
}

// ListBookingsParams select a practitioner's bookings overlapping
// [From, To).
type ListBookingsParams struct {
	TenantID       uuid.UUID
	PractitionerID uuid.UUID
	From           time.Time
	To             time.Time
}

// name: ListBookings :many
const listBookings = `SELECT ` + bookingCols + ` FROM public.bookings
WHERE tenant_id = $1 AND practitioner_id = $2 AND starts_at < $4 AND ends_at > $3
ORDER BY starts_at, id`

// ListBookings lists bookings (any status) overlapping the range.
func (q *Queries) ListBookings(ctx context.Context, arg ListBookingsParams) ([]Booking, error) {
	rows, err := q.db.Query(ctx, listBookings, arg.TenantID, arg.PractitionerID, arg.From, arg.To)
	if err != nil {
		return nil, mapErr("ListBookings", err)
	}
	return collect(rows, scanBooking, "ListBookings")
}

// CancelBookingParams are the inputs of CancelBooking.
type CancelBookingParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Reason   string
}

// name: CancelBooking :one
const cancelBooking = `
UPDATE public.bookings SET status = 'cancelled', cancelled_at = now(), cancellation_reason = NULLIF($3, ''), updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND status = 'confirmed'
RETURNING ` + bookingCols

// CancelBooking cancels a confirmed booking, freeing its time. A booking
// that is not confirmed is ErrNotConfirmed; a missing one ErrNotFound.
func (q *Queries) CancelBooking(ctx context.Context, arg CancelBookingParams) (Booking, error) {
	b, err := scanBooking(q.db.QueryRow(ctx, cancelBooking, arg.TenantID, arg.ID, arg.Reason))
	if err == pgx.ErrNoRows {
		if _, gerr := q.GetBooking(ctx, arg.TenantID, arg.ID); gerr == nil {
			return b, fmt.Errorf("CancelBooking: %w", ErrNotConfirmed)
		}
	}
	return b, mapErr("CancelBooking", err)
}

// name: SetBookingStatus :one
const setBookingStatus = `
UPDATE public.bookings SET status = $3, updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND status = 'confirmed' AND $3 IN ('completed', 'no_show')
RETURNING ` + bookingCols

// SetBookingStatus marks a confirmed booking completed or no_show.
func (q *Queries) SetBookingStatus(ctx context.Context, tenantID, id uuid.UUID, status string) (Booking, error) {
	if status != StatusCompleted && status != StatusNoShow {
		return Booking{}, fmt.Errorf("SetBookingStatus: %w: status %q", ErrInvalid, status)
	}
	b, err := scanBooking(q.db.QueryRow(ctx, setBookingStatus, tenantID, id, status))
	return b, mapErr("SetBookingStatus", err)
}

// RecordPaymentParams are the inputs of RecordPayment.
type RecordPaymentParams struct {
	TenantID    uuid.UUID
	BookingID   uuid.UUID
	AmountCents int64
	Method      string
	Reference   string
}

// name: RecordPayment :one
const recordPayment = `
UPDATE public.bookings SET
    paid_cents = paid_cents + $3,
    payment_status = CASE WHEN paid_cents + $3 >= price_cents THEN 'paid' ELSE 'deposit_paid' END,
    payment_method = $4, payment_reference = NULLIF($5, ''), updated_at = now()
WHERE tenant_id = $1 AND id = $2 AND $3 > 0
RETURNING ` + bookingCols

// RecordPayment adds a payment to a booking and updates its payment
// status (deposit_paid until the price is covered, then paid).
func (q *Queries) RecordPayment(ctx context.Context, arg RecordPaymentParams) (Booking, error) {
	if arg.AmountCents <= 0 {
		return Booking{}, fmt.Errorf("RecordPayment: %w: amount must be positive", ErrInvalid)
	}
	b, err := scanBooking(q.db.QueryRow(ctx, recordPayment, arg.TenantID, arg.BookingID, arg.AmountCents, arg.Method, arg.Reference))
	return b, mapErr("RecordPayment", err)
}

// TimeBlock is public.time_blocks.
type TimeBlock struct {
	TenantID       uuid.UUID
	ID             uuid.UUID
	PractitionerID uuid.UUID
	Kind           string // break, vacation, hold
	StartsAt       time.Time
	EndsAt         time.Time
	Note           string
}

// CreateTimeBlockParams are the inputs of CreateTimeBlock.
type CreateTimeBlockParams struct {
	TenantID       uuid.UUID
	PractitionerID uuid.UUID
	Kind           string
	StartsAt       time.Time
	EndsAt         time.Time
	Note           string
}

// name: CreateTimeBlock :one
const createTimeBlock = `
INSERT INTO public.time_blocks (tenant_id, practitioner_id, kind, starts_at, ends_at, note) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING tenant_id, id, practitioner_id, kind, starts_at, ends_at, note`

// CreateTimeBlock blocks a practitioner's time; overlapping bookings, holds
// or blocks make it ErrSlotTaken.
func (q *Queries) CreateTimeBlock(ctx context.Context, arg CreateTimeBlockParams) (TimeBlock, error) {
	var b TimeBlock
	err := q.db.QueryRow(ctx, createTimeBlock, arg.TenantID, arg.PractitionerID, arg.Kind, arg.StartsAt, arg.EndsAt, arg.Note).
		Scan(&b.TenantID, &b.ID, &b.PractitionerID, &b.Kind, &b.StartsAt, &b.EndsAt, &b.Note)
	return b, mapErr("CreateTimeBlock", err)
}

// name: DeleteTimeBlock :execrows
const deleteTimeBlock = `DELETE FROM public.time_blocks WHERE tenant_id = $1 AND id = $2`

// DeleteTimeBlock removes a block; missing is ErrNotFound.
func (q *Queries) DeleteTimeBlock(ctx context.Context, tenantID, id uuid.UUID) error {
	tag, err := q.db.Exec(ctx, deleteTimeBlock, tenantID, id)
	if err != nil {
		return mapErr("DeleteTimeBlock", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("DeleteTimeBlock: %w", ErrNotFound)
	}
	return nil
}

// SetHoursOverrideParams are the inputs of SetHoursOverride: the hours of
// one date, for one practitioner or (PractitionerID nil) the business.
type SetHoursOverrideParams struct {
	TenantID       uuid.UUID
	PractitionerID *uuid.UUID
	Date           string // YYYY-MM-DD
	OpensAt        *string
	ClosesAt       *string
	IsClosed       bool
	Note           string
}

// name: SetHoursOverride :exec
const setHoursOverride = `
INSERT INTO public.business_hours_overrides (tenant_id, practitioner_id, date, opens_at, closes_at, is_closed, note)
VALUES ($1, $2, to_date($3, 'YYYY-MM-DD'), $4::text::time, $5::text::time, $6, $7)
ON CONFLICT (tenant_id, practitioner_id, date) DO UPDATE SET
    opens_at = EXCLUDED.opens_at, closes_at = EXCLUDED.closes_at, is_closed = EXCLUDED.is_closed, note = EXCLUDED.note`

// SetHoursOverride sets date-specific hours.
func (q *Queries) SetHoursOverride(ctx context.Context, arg SetHoursOverrideParams) error {
	_, err := q.db.Exec(ctx, setHoursOverride, arg.TenantID, arg.PractitionerID, arg.Date, arg.OpensAt, arg.ClosesAt, arg.IsClosed, arg.Note)
	return mapErr("SetHoursOverride", err)
}
