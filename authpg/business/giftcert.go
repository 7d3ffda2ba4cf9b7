package business

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// GiftCertificate is public.gift_certificates. Amounts are in cents.
type GiftCertificate struct {
	TenantID           uuid.UUID
	ID                 uuid.UUID
	Code               string
	InitialAmountCents int64
	BalanceCents       int64
	Status             string // active, redeemed, void
	PurchaserName      string
	PurchaserEmail     *string
	RecipientName      string
	RecipientEmail     *string
	Message            string
	ExpiresAt          *time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

const giftCols = `tenant_id, id, code, initial_amount_cents, balance_cents, status, purchaser_name, purchaser_email,
    recipient_name, recipient_email, message, expires_at, created_at, updated_at`

func scanGift(r pgx.Row) (GiftCertificate, error) {
	var g GiftCertificate
	err := r.Scan(&g.TenantID, &g.ID, &g.Code, &g.InitialAmountCents, &g.BalanceCents, &g.Status, &g.PurchaserName,
		&g.PurchaserEmail, &g.RecipientName, &g.RecipientEmail, &g.Message, &g.ExpiresAt, &g.CreatedAt, &g.UpdatedAt)
	return g, err
}

// CreateGiftCertificateParams are the inputs of CreateGiftCertificate.
// ValidFor, when positive, sets the expiry from the database's now().
type CreateGiftCertificateParams struct {
	TenantID       uuid.UUID
	Code           string
	AmountCents    int64
	PurchaserName  string
	PurchaserEmail *string
	RecipientName  string
	RecipientEmail *string
	Message        string
	ValidFor       time.Duration
}

// name: CreateGiftCertificate :one
const createGiftCertificate = `
INSERT INTO public.gift_certificates (tenant_id, code, initial_amount_cents, balance_cents, purchaser_name, purchaser_email,
    recipient_name, recipient_email, message, expires_at)
VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8,
    CASE WHEN $9::double precision > 0 THEN now() + $9::double precision * interval '1 second' END)
RETURNING ` + giftCols

// CreateGiftCertificate issues a certificate whose balance is its amount.
func (q *Queries) CreateGiftCertificate(ctx context.Context, arg CreateGiftCertificateParams) (GiftCertificate, error) {
	g, err := scanGift(q.db.QueryRow(ctx, createGiftCertificate, arg.TenantID, arg.Code, arg.AmountCents, arg.PurchaserName,
		arg.PurchaserEmail, arg.RecipientName, arg.RecipientEmail, arg.Message, arg.ValidFor.Seconds()))
	return g, mapErr("CreateGiftCertificate", err)
}

// name: GetGiftCertificateByCode :one
const getGiftCertificateByCode = `SELECT ` + giftCols + ` FROM public.gift_certificates
WHERE tenant_id = $1 AND upper(code) = upper($2)`

// GetGiftCertificateByCode finds a certificate by code, case-insensitively.
func (q *Queries) GetGiftCertificateByCode(ctx context.Context, tenantID uuid.UUID, code string) (GiftCertificate, error) {
	g, err := scanGift(q.db.QueryRow(ctx, getGiftCertificateByCode, tenantID, code))
	return g, mapErr("GetGiftCertificateByCode", err)
}

// Redemption is public.gift_certificate_redemptions.
type Redemption struct {
	TenantID          uuid.UUID
	ID                uuid.UUID
	GiftCertificateID uuid.UUID
	BookingID         *uuid.UUID
	AmountCents       int64
	BalanceAfterCents int64
	Note              string
	CreatedAt         time.Time
}

// RedeemGiftCertificateParams are the inputs of RedeemGiftCertificate.
type RedeemGiftCertificateParams struct {
	TenantID    uuid.UUID
	Code        string
	AmountCents int64
	BookingID   *uuid.UUID
	Note        string
}

// name: RedeemGiftCertificate :one
// The balance is checked and decremented by one conditional UPDATE: under
// concurrency, a waiting UPDATE re-checks "balance_cents >= amount" against
// the committed balance, so the balance can never go negative (and the
// CHECK constraint would refuse it anyway). The redemption row is written
// in the same statement.
const redeemGiftCertificate = `
WITH debited AS (
    UPDATE public.gift_certificates SET
        balance_cents = balance_cents - $3,
        status = CASE WHEN balance_cents - $3 = 0 THEN 'redeemed' ELSE status END,
        updated_at = now()
    WHERE tenant_id = $1 AND upper(code) = upper($2) AND status = 'active'
      AND (expires_at IS NULL OR expires_at > now()) AND balance_cents >= $3
    RETURNING tenant_id, id, balance_cents
)
INSERT INTO public.gift_certificate_redemptions (tenant_id, gift_certificate_id, booking_id, amount_cents, balance_after_cents, note)
SELECT tenant_id, id, $4, $3, balance_cents, $5 FROM debited
RETURNING tenant_id, id, gift_certificate_id, booking_id, amount_cents, balance_after_cents, note, created_at`

// RedeemGiftCertificate spends AmountCents of a certificate. Errors:
// ErrInsufficientBalance, ErrCertificateInactive (expired, void, used up),
// ErrNotFound.
func (q *Queries) RedeemGiftCertificate(ctx context.Context, arg RedeemGiftCertificateParams) (Redemption, error) {
	if arg.AmountCents <= 0 {
		return Redemption{}, fmt.Errorf("RedeemGiftCertificate: %w: amount must be positive", ErrInvalid)
	}
	var r Redemption
	err := q.db.QueryRow(ctx, redeemGiftCertificate, arg.TenantID, arg.Code, arg.AmountCents, arg.BookingID, arg.Note).
		Scan(&r.TenantID, &r.ID, &r.GiftCertificateID, &r.BookingID, &r.AmountCents, &r.BalanceAfterCents, &r.Note, &r.CreatedAt)
	if err != pgx.ErrNoRows {
		return r, mapErr("RedeemGiftCertificate", err)
	}
	// Nothing debited: say why.
	var active bool
	var balance int64
	cerr := q.db.QueryRow(ctx, `SELECT status = 'active' AND (expires_at IS NULL OR expires_at > now()), balance_cents
		FROM public.gift_certificates WHERE tenant_id = $1 AND upper(code) = upper($2)`, arg.TenantID, arg.Code).Scan(&active, &balance)
	switch {
	case cerr != nil:
		return r, mapErr("RedeemGiftCertificate", cerr)
	case !active:
		return r, fmt.Errorf("RedeemGiftCertificate: %w", ErrCertificateInactive)
	default:
		return r, fmt.Errorf("RedeemGiftCertificate: %w (balance %d, wanted %d)", ErrInsufficientBalance, balance, arg.AmountCents)
	}
}

// name: ListRedemptions :many
const listRedemptions = `
SELECT tenant_id, id, gift_certificate_id, booking_id, amount_cents, balance_after_cents, note, created_at
FROM public.gift_certificate_redemptions WHERE tenant_id = $1 AND gift_certificate_id = $2 ORDER BY created_at, id`

// ListRedemptions lists a certificate's redemptions, oldest first.
func (q *Queries) ListRedemptions(ctx context.Context, tenantID, certificateID uuid.UUID) ([]Redemption, error) {
	rows, err := q.db.Query(ctx, listRedemptions, tenantID, certificateID)
	if err != nil {
		return nil, mapErr("ListRedemptions", err)
	}
	return collect(rows, func(row pgx.Row) (Redemption, error) {
		var r Redemption
		err := row.Scan(&r.TenantID, &r.ID, &r.GiftCertificateID, &r.BookingID, &r.AmountCents, &r.BalanceAfterCents, &r.Note, &r.CreatedAt)
		return r, err
	}, "ListRedemptions")
}
