package business_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business"
)

func TestBookingFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	q := e.q
	s := newShop(t, q)

	hold, err := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		ServiceID: &s.service.ID, StartsAt: at(10, 0), EndsAt: at(11, 0), TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if hold.ExpiresAt.Sub(hold.CreatedAt) != 10*time.Minute {
		t.Fatalf("hold TTL = %v", hold.ExpiresAt.Sub(hold.CreatedAt))
	}
	// A live hold blocks others.
	if _, err := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		StartsAt: at(10, 30), EndsAt: at(11, 30), TTL: time.Minute}); !errors.Is(err, business.ErrSlotTaken) {
		t.Fatalf("overlapping hold: %v", err)
	}
	b, err := q.ConfirmBooking(ctx, business.ConfirmBookingParams{TenantID: s.tenant, ReservationID: hold.ID, ClientID: s.client.ID, PriceCents: 9000})
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != business.StatusConfirmed || !b.StartsAt.Equal(at(10, 0)) || *b.ServiceID != s.service.ID || b.PaymentStatus != "unpaid" {
		t.Fatalf("booking = %+v", b)
	}
	// The hold is consumed: confirming again fails.
	if _, err := q.ConfirmBooking(ctx, business.ConfirmBookingParams{TenantID: s.tenant, ReservationID: hold.ID, ClientID: s.client.ID}); !errors.Is(err, business.ErrHoldExpired) {
		t.Fatalf("second confirm: %v", err)
	}
	// Adjacent slots are fine ([) ranges).
	if _, err := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		ClientID: s.client.ID, StartsAt: at(11, 0), EndsAt: at(12, 0)}); err != nil {
		t.Fatalf("adjacent booking: %v", err)
	}
	// Payments: deposit, then paid.
	p, err := q.RecordPayment(ctx, business.RecordPaymentParams{TenantID: s.tenant, BookingID: b.ID, AmountCents: 3000, Method: "card"})
	if err != nil || p.PaymentStatus != "deposit_paid" || p.PaidCents != 3000 {
		t.Fatalf("deposit = %+v, %v", p, err)
	}
	p, err = q.RecordPayment(ctx, business.RecordPaymentParams{TenantID: s.tenant, BookingID: b.ID, AmountCents: 6000, Method: "giftcert", Reference: "GC-1"})
	if err != nil || p.PaymentStatus != "paid" || *p.PaymentReference != "GC-1" {
		t.Fatalf("paid = %+v, %v", p, err)
	}
	list, err := q.ListBookings(ctx, business.ListBookingsParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID, From: at(0, 0), To: at(23, 0)})
	if err != nil || len(list) != 2 || list[0].ID != b.ID {
		t.Fatalf("ListBookings = %v, %v", list, err)
	}
	// Cancel frees the time for a new booking.
	c, err := q.CancelBooking(ctx, business.CancelBookingParams{TenantID: s.tenant, ID: b.ID, Reason: "sick"})
	if err != nil || c.Status != business.StatusCancelled || c.CancelledAt == nil || *c.CancellationReason != "sick" {
		t.Fatalf("cancel = %+v, %v", c, err)
	}
	if _, err := q.CancelBooking(ctx, business.CancelBookingParams{TenantID: s.tenant, ID: b.ID}); !errors.Is(err, business.ErrNotConfirmed) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := q.CancelBooking(ctx, business.CancelBookingParams{TenantID: s.tenant, ID: uuid.New()}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("cancel missing: %v", err)
	}
	rebook, err := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		ClientID: s.client.ID, StartsAt: at(10, 0), EndsAt: at(11, 0)})
	if err != nil {
		t.Fatalf("rebook after cancel: %v", err)
	}
	done, err := q.SetBookingStatus(ctx, s.tenant, rebook.ID, business.StatusCompleted)
	if err != nil || done.Status != business.StatusCompleted {
		t.Fatalf("complete = %+v, %v", done, err)
	}
	// Only completed/no_show are valid targets.
	if _, err := q.SetBookingStatus(ctx, s.tenant, rebook.ID, "confirmed"); !errors.Is(err, business.ErrInvalid) {
		t.Fatalf("bad status: %v", err)
	}

	// Expired holds neither block nor confirm (database clock).
	h2, err := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		StartsAt: at(14, 0), EndsAt: at(15, 0), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.super.Exec(ctx, `UPDATE public.slot_reservations SET expires_at = now() - interval '1 s' WHERE id = $1`, h2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.ConfirmBooking(ctx, business.ConfirmBookingParams{TenantID: s.tenant, ReservationID: h2.ID, ClientID: s.client.ID}); !errors.Is(err, business.ErrHoldExpired) {
		t.Fatalf("confirm expired hold: %v", err)
	}
	if _, err := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		ClientID: s.client.ID, StartsAt: at(14, 0), EndsAt: at(15, 0)}); err != nil {
		t.Fatalf("expired hold blocked a booking: %v", err)
	}
	h3, _ := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID, StartsAt: at(16, 0), EndsAt: at(17, 0), TTL: time.Minute})
	if err := q.ReleaseSlot(ctx, s.tenant, h3.ID); err != nil {
		t.Fatal(err)
	}
	if err := q.ReleaseSlot(ctx, s.tenant, h3.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("second release: %v", err)
	}
	h4, _ := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID, StartsAt: at(16, 0), EndsAt: at(17, 0), TTL: time.Minute})
	if _, err := e.super.Exec(ctx, `UPDATE public.slot_reservations SET expires_at = now() - interval '1 s' WHERE id = $1`, h4.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := q.PurgeExpiredHolds(ctx, s.tenant); err != nil || n != 1 {
		t.Fatalf("PurgeExpiredHolds = %d, %v", n, err)
	}

	// Content and intake queries.
	prof, err := q.UpsertBusinessProfile(ctx, business.UpsertBusinessProfileParams{TenantID: s.tenant, Name: "Kneady", TimeZone: "America/New_York"})
	if err != nil || prof.TimeZone != "America/New_York" {
		t.Fatalf("profile = %+v, %v", prof, err)
	}
	if _, err := q.UpsertBusinessProfile(ctx, business.UpsertBusinessProfileParams{TenantID: s.tenant, Name: "Kneady 2"}); err != nil {
		t.Fatal(err)
	}
	if got, err := q.GetBusinessProfile(ctx, s.tenant); err != nil || got.Name != "Kneady 2" || got.TimeZone != "UTC" {
		t.Fatalf("GetBusinessProfile = %+v, %v", got, err)
	}
	if svcs, err := q.ListActiveServices(ctx, s.tenant); err != nil || len(svcs) != 1 {
		t.Fatalf("services = %v, %v", svcs, err)
	}
	nine, five := "09:00", "17:00"
	if err := q.SetBusinessHours(ctx, business.SetBusinessHoursParams{TenantID: s.tenant, DayOfWeek: 1, OpensAt: &nine, ClosesAt: &five}); err != nil {
		t.Fatal(err)
	}
	if err := q.SetBusinessHours(ctx, business.SetBusinessHoursParams{TenantID: s.tenant, DayOfWeek: 1, OpensAt: &five, ClosesAt: &nine}); !errors.Is(err, business.ErrInvalid) {
		t.Fatalf("closing before opening: %v", err)
	}
	if err := q.SetHoursOverride(ctx, business.SetHoursOverrideParams{TenantID: s.tenant, Date: "2031-12-25", IsClosed: true, Note: "holiday"}); err != nil {
		t.Fatal(err)
	}
	if err := q.SetHoursOverride(ctx, business.SetHoursOverrideParams{TenantID: s.tenant, Date: "2031-12-25", IsClosed: true, Note: "again"}); err != nil {
		t.Fatalf("override upsert (NULLS NOT DISTINCT): %v", err)
	}
	if _, err := q.CreateReview(ctx, business.CreateReviewParams{TenantID: s.tenant, AuthorName: "A", Rating: 6}); !errors.Is(err, business.ErrInvalid) {
		t.Fatalf("rating 6: %v", err)
	}
	if _, err := q.CreateReview(ctx, business.CreateReviewParams{TenantID: s.tenant, AuthorName: "A", Rating: 5, IsPublished: true}); err != nil {
		t.Fatal(err)
	}
	form, err := q.CreateIntakeSubmission(ctx, business.CreateIntakeSubmissionParams{TenantID: s.tenant, ClientID: &s.client.ID,
		BookingID: &rebook.ID, FullName: "Cli", Answers: map[string]any{"allergies": "none"}, Consent: true})
	if err != nil || form.ConsentAt == nil || form.Answers["allergies"] != "none" || form.FormVersion != "1" {
		t.Fatalf("intake = %+v, %v", form, err)
	}
	if forms, err := q.ListIntakeSubmissionsByClient(ctx, s.tenant, s.client.ID); err != nil || len(forms) != 1 {
		t.Fatalf("intake list = %v, %v", forms, err)
	}
}

// TestDoubleBookingRefusedByDatabase: overlapping bookings, time blocks and
// live holds of one practitioner are refused by the exclusion constraint,
// also when app code does not check and requests race.
func TestDoubleBookingRefusedByDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	q := e.q
	s := newShop(t, q)
	book := func(from, to time.Time) error {
		_, err := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
			ClientID: s.client.ID, StartsAt: from, EndsAt: to})
		return err
	}
	if err := book(at(9, 0), at(10, 0)); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string][2]time.Time{
		"same":     {at(9, 0), at(10, 0)},
		"inside":   {at(9, 15), at(9, 45)},
		"around":   {at(8, 0), at(11, 0)},
		"overlaps": {at(9, 59), at(10, 30)},
	} {
		if err := book(r[0], r[1]); !errors.Is(err, business.ErrSlotTaken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Even raw SQL that skips every app check is refused.
	_, err := e.super.Exec(ctx, `INSERT INTO public.bookings (tenant_id, practitioner_id, client_id, starts_at, ends_at)
		VALUES ($1, $2, $3, $4, $5)`, s.tenant, s.practitioner.ID, s.client.ID, at(9, 30), at(9, 45))
	if err == nil {
		t.Fatal("raw overlapping insert accepted")
	}
	// Time blocks count too, both ways.
	if _, err := q.CreateTimeBlock(ctx, business.CreateTimeBlockParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		Kind: "break", StartsAt: at(9, 30), EndsAt: at(9, 45)}); !errors.Is(err, business.ErrSlotTaken) {
		t.Fatalf("block over booking: %v", err)
	}
	blk, err := q.CreateTimeBlock(ctx, business.CreateTimeBlockParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		Kind: "vacation", StartsAt: at(12, 0), EndsAt: at(18, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := book(at(13, 0), at(14, 0)); !errors.Is(err, business.ErrSlotTaken) {
		t.Fatalf("booking over vacation: %v", err)
	}
	if _, err := q.CreateTimeBlock(ctx, business.CreateTimeBlockParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		Kind: "nap", StartsAt: at(20, 0), EndsAt: at(21, 0)}); !errors.Is(err, business.ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
	if err := q.DeleteTimeBlock(ctx, s.tenant, blk.ID); err != nil {
		t.Fatal(err)
	}
	if err := book(at(13, 0), at(14, 0)); err != nil {
		t.Fatalf("after deleting the block: %v", err)
	}
	// Another practitioner is free at the same time.
	other, _ := q.CreatePractitioner(ctx, business.CreatePractitionerParams{TenantID: s.tenant, Slug: "al", Name: "Al"})
	if _, err := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: s.tenant, PractitionerID: other.ID,
		ClientID: s.client.ID, StartsAt: at(9, 0), EndsAt: at(10, 0)}); err != nil {
		t.Fatalf("other practitioner: %v", err)
	}

	// Racing requests for one slot: exactly one wins.
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			var err error
			if i%2 == 0 {
				err = book(at(15, 0), at(16, 0))
			} else {
				_, err = q.HoldSlot(ctx, business.HoldSlotParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
					StartsAt: at(15, 30), EndsAt: at(16, 30), TTL: time.Minute})
			}
			errs <- err
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, business.ErrSlotTaken):
			t.Errorf("loser: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d racing requests won, want 1", wins)
	}
}

// TestBusinessTenantIsolation: a tenant cannot book another tenant's
// practitioner (foreign keys include tenant_id), cannot read its rows, and
// under RLS (authpg.WithTenant on a non-bypass role) cannot insert rows
// for another tenant.
var errRollback = errors.New("rollback")

func TestBusinessTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	a := newShop(t, e.q)
	b := newShop(t, e.q)
	if _, err := e.q.CreateBooking(ctx, business.CreateBookingParams{TenantID: b.tenant, PractitionerID: a.practitioner.ID,
		ClientID: b.client.ID, StartsAt: at(9, 0), EndsAt: at(10, 0)}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("booking A's practitioner as B: %v", err)
	}
	bk, err := e.q.CreateBooking(ctx, business.CreateBookingParams{TenantID: a.tenant, PractitionerID: a.practitioner.ID,
		ClientID: a.client.ID, StartsAt: at(9, 0), EndsAt: at(10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	// Same time, same practitioner slug, other tenant: independent.
	if _, err := e.q.CreateBooking(ctx, business.CreateBookingParams{TenantID: b.tenant, PractitionerID: b.practitioner.ID,
		ClientID: b.client.ID, StartsAt: at(9, 0), EndsAt: at(10, 0)}); err != nil {
		t.Fatalf("tenant B's own booking: %v", err)
	}
	if _, err := e.q.GetBooking(ctx, b.tenant, bk.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("B reads A's booking: %v", err)
	}
	if _, err := e.q.CancelBooking(ctx, business.CancelBookingParams{TenantID: b.tenant, ID: bk.ID}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("B cancels A's booking: %v", err)
	}
	// Mode 2: RLS on a connection bound to B hides A even when the query
	// names A.
	err = authpg.WithTenant(ctx, e.app, b.tenant, func(tx pgxTx) error {
		q := business.New(e.app).WithTx(tx)
		if _, err := q.GetBooking(ctx, a.tenant, bk.ID); !errors.Is(err, authpg.ErrNotFound) {
			t.Errorf("RLS: B reads A's booking: %v", err)
		}
		// Last: the refused insert aborts the transaction.
		if _, err := q.CreateClient(ctx, business.CreateClientParams{TenantID: a.tenant, Name: "forged"}); !errors.Is(err, business.ErrForbidden) {
			t.Errorf("RLS: B inserts into A: %v", err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if got, _ := e.q.GetBooking(ctx, a.tenant, bk.ID); got.Status != business.StatusConfirmed {
		t.Fatal("A's booking changed")
	}
}
