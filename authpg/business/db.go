// Package business holds typed, tenant-scoped queries over the business
// tables (content, booking, giftcert, intake) that authpg.Migrate creates.
//
// The SQL lives in queries/*.sql and is compiled by sqlc (sqlc.yaml, schema
// read from the goose migrations) into internal/sqlcdb; regenerate with
// `sqlc generate` in this directory. This package wraps the generated
// queries: it maps driver errors to typed ones (ErrSlotTaken,
// ErrInsufficientBalance, authpg.ErrNotFound, ...), converts durations to
// the seconds the SQL expects, and re-exports the generated row and param
// types. Every statement takes the tenant and filters on it, and the tables'
// RLS policies apply on top, so the queries work the three ways authpg does
// (direct, authpg.WithTenant, through multigres).
//
// Each multi-step operation of the booking flow is a single SQL statement
// (data-modifying CTEs), so it is atomic without a client transaction:
// HoldSlot, ConfirmBooking (hold → booking), CancelBooking and
// RedeemGiftCertificate (balance checked and decremented in one UPDATE).
// Double booking is refused by the database's exclusion constraint on
// public.schedule_claims; that surfaces here as ErrSlotTaken.
package business

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business/internal/sqlcdb"
)

// DBTX is what Queries runs on, as in sqlc: a pool, a connection or a
// transaction.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ DBTX = (*pgxpool.Pool)(nil)
	_ DBTX = (*pgx.Conn)(nil)
	_ DBTX = (pgx.Tx)(nil)
)

// Queries runs the typed queries.
type Queries struct{ q *sqlcdb.Queries }

// New returns Queries over db (authpg.SQLDB(*sql.DB) works too).
func New(db DBTX) *Queries { return &Queries{q: sqlcdb.New(db)} }

// WithTx returns Queries running on tx.
func (q *Queries) WithTx(tx pgx.Tx) *Queries { return &Queries{q: q.q.WithTx(tx)} }

// Errors. Not-found is authpg.ErrNotFound, so errors.Is works the same
// across both packages.
var (
	ErrNotFound            = authpg.ErrNotFound
	ErrSlotTaken           = errors.New("business: the practitioner is already booked, blocked or held at that time")
	ErrHoldExpired         = errors.New("business: the slot hold has expired or does not exist")
	ErrInsufficientBalance = errors.New("business: gift certificate balance is too low")
	ErrCertificateInactive = errors.New("business: gift certificate is expired, void or fully redeemed")
	ErrNotConfirmed        = errors.New("business: booking is not confirmed")
	ErrInvalid             = errors.New("business: invalid input")
	ErrForbidden           = authpg.ErrForbidden
)

func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23P01": // exclusion_violation
			return fmt.Errorf("%s: %w", op, ErrSlotTaken)
		case "23503":
			return fmt.Errorf("%s: referenced row: %w", op, ErrNotFound)
		case "23505":
			return fmt.Errorf("%s: %w (%s)", op, authpg.ErrConflict, pe.ConstraintName)
		case "23514", "22007", "22008", "22P02":
			return fmt.Errorf("%s: %w: %s", op, ErrInvalid, pe.Message)
		case "42501":
			if strings.Contains(pe.Message, "row-level security") {
				return fmt.Errorf("%s: %w", op, ErrForbidden)
			}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// checkTenant refuses the all-zero tenant, the value of an unset
// uuid.UUID field: without it a params struct whose TenantID was forgotten
// would file rows under a tenant nobody owns.
func checkTenant(op string, id uuid.UUID) error {
	if id == uuid.Nil {
		return fmt.Errorf("%s: %w", op, authpg.ErrInvalidTenant)
	}
	return nil
}
