package business_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business"
)

// The booking flow on a pool (way 1: explicit tenant in every query): hold
// a slot, confirm it, pay with a gift certificate, and see the database
// refuse a double booking.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	q := business.New(pool)
	tenant := uuid.New()

	jo, _ := q.CreatePractitioner(ctx, business.CreatePractitionerParams{TenantID: tenant, Slug: "jo", Name: "Jo"})
	cli, _ := q.CreateClient(ctx, business.CreateClientParams{TenantID: tenant, Name: "Sam"})
	start := time.Date(2031, 5, 1, 15, 0, 0, 0, time.UTC)

	hold, err := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: tenant, PractitionerID: jo.ID,
		StartsAt: start, EndsAt: start.Add(time.Hour), TTL: 10 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	bk, err := q.ConfirmBooking(ctx, business.ConfirmBookingParams{TenantID: tenant, ReservationID: hold.ID,
		ClientID: cli.ID, PriceCents: 9000})
	if err != nil {
		log.Fatal(err)
	}
	_, err = q.CreateBooking(ctx, business.CreateBookingParams{TenantID: tenant, PractitionerID: jo.ID,
		ClientID: cli.ID, StartsAt: start.Add(30 * time.Minute), EndsAt: start.Add(90 * time.Minute)})
	fmt.Println("double booking refused:", errors.Is(err, business.ErrSlotTaken))

	if _, err := q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: tenant, Code: "GIFT-50", AmountCents: 5000}); err != nil {
		log.Fatal(err)
	}
	r, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: tenant, Code: "gift-50",
		AmountCents: 4000, BookingID: &bk.ID})
	if err != nil {
		log.Fatal(err)
	}
	_, err = q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: tenant, Code: "gift-50", AmountCents: 2000})
	fmt.Println("balance left:", r.BalanceAfterCents, "overdraw refused:", errors.Is(err, business.ErrInsufficientBalance))

	bk, _ = q.CancelBooking(ctx, business.CancelBookingParams{TenantID: tenant, ID: bk.ID, Reason: "rescheduled"})
	fmt.Println(bk.Status)
	// Output:
	// double booking refused: true
	// balance left: 1000 overdraw refused: true
	// cancelled
}

// Way 2: the same queries inside authpg.WithTenant on an RLS-bound role.
func Example_withTenant() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("APP_DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	tenant := uuid.New()
	err = authpg.WithTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
		q := business.New(tx)
		if _, err := q.CreateService(ctx, business.CreateServiceParams{TenantID: tenant, Slug: "deep-60",
			Name: "Deep tissue", DurationMinutes: 60, PriceCents: 11000}); err != nil {
			return err
		}
		svcs, err := q.ListActiveServices(ctx, tenant)
		fmt.Println(len(svcs), svcs[0].Name)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: 1 Deep tissue
}
