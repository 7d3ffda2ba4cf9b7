package business_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business"
)

type pgxTx = pgx.Tx

func TestGiftCertificates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	q := e.q
	s := newShop(t, q)
	g, err := q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: s.tenant, Code: "SPA-100", AmountCents: 10000, RecipientName: "Pat"})
	if err != nil || g.BalanceCents != 10000 || g.Status != "active" || g.ExpiresAt != nil {
		t.Fatalf("create = %+v, %v", g, err)
	}
	if _, err := q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: s.tenant, Code: "spa-100", AmountCents: 1}); !errors.Is(err, authpg.ErrConflict) {
		t.Fatalf("duplicate code: %v", err)
	}
	bk, _ := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: s.tenant, PractitionerID: s.practitioner.ID,
		ClientID: s.client.ID, StartsAt: at(9, 0), EndsAt: at(10, 0), PriceCents: 9000})
	r, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "spa-100", AmountCents: 9000, BookingID: &bk.ID})
	if err != nil || r.BalanceAfterCents != 1000 || *r.BookingID != bk.ID {
		t.Fatalf("redeem = %+v, %v", r, err)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "SPA-100", AmountCents: 1001}); !errors.Is(err, business.ErrInsufficientBalance) {
		t.Fatalf("overdraw: %v", err)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "SPA-100", AmountCents: 1000}); err != nil {
		t.Fatal(err)
	}
	if got, _ := q.GetGiftCertificateByCode(ctx, s.tenant, "spa-100"); got.BalanceCents != 0 || got.Status != "redeemed" {
		t.Fatalf("used up = %+v", got)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "SPA-100", AmountCents: 1}); !errors.Is(err, business.ErrCertificateInactive) {
		t.Fatalf("redeem used-up: %v", err)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "NOPE", AmountCents: 1}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("unknown code: %v", err)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "SPA-100", AmountCents: 0}); !errors.Is(err, business.ErrInvalid) {
		t.Fatalf("zero amount: %v", err)
	}
	if rs, err := q.ListRedemptions(ctx, s.tenant, g.ID); err != nil || len(rs) != 2 {
		t.Fatalf("redemptions = %v, %v", rs, err)
	}
	// Expiry by the database clock.
	exp, _ := q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: s.tenant, Code: "OLD", AmountCents: 500, ValidFor: time.Hour})
	if exp.ExpiresAt == nil || exp.ExpiresAt.Sub(exp.CreatedAt) != time.Hour {
		t.Fatalf("expiry = %+v", exp)
	}
	if _, err := e.super.Exec(ctx, `UPDATE public.gift_certificates SET expires_at = now() - interval '1 s' WHERE id = $1`, exp.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "OLD", AmountCents: 1}); !errors.Is(err, business.ErrCertificateInactive) {
		t.Fatalf("expired certificate: %v", err)
	}
	// Another tenant cannot redeem it.
	other := newShop(t, q)
	g2, _ := q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: s.tenant, Code: "X", AmountCents: 100})
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: other.tenant, Code: "X", AmountCents: 100}); !errors.Is(err, authpg.ErrNotFound) {
		t.Fatalf("cross-tenant redeem: %v", err)
	}
	// The CHECK constraint is the backstop even for raw SQL.
	if _, err := e.super.Exec(ctx, `UPDATE public.gift_certificates SET balance_cents = -1 WHERE id = $1`, g2.ID); err == nil {
		t.Fatal("negative balance accepted by the database")
	}
}

// TestGiftCertificateConcurrentRedemption: many concurrent redemptions
// never take the balance below zero, and exactly the successful ones are
// debited.
func TestGiftCertificateConcurrentRedemption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	q := e.q
	s := newShop(t, q)
	const initial, amount, n = 10000, 3000, 12 // room for 3 redemptions
	if _, err := q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: s.tenant, Code: "RACE", AmountCents: initial}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: s.tenant, Code: "RACE", AmountCents: amount})
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, business.ErrInsufficientBalance):
			t.Errorf("loser: %v", err)
		}
	}
	g, err := q.GetGiftCertificateByCode(ctx, s.tenant, "RACE")
	if err != nil {
		t.Fatal(err)
	}
	if wins != 3 || g.BalanceCents != initial-3*amount || g.BalanceCents < 0 {
		t.Fatalf("wins = %d, balance = %d", wins, g.BalanceCents)
	}
	rs, _ := q.ListRedemptions(ctx, s.tenant, g.ID)
	var sum int64
	for _, r := range rs {
		sum += r.AmountCents
		if r.BalanceAfterCents < 0 {
			t.Fatalf("negative balance_after: %+v", r)
		}
	}
	if len(rs) != wins || sum != initial-g.BalanceCents {
		t.Fatalf("redemptions %d summing %d; balance %d", len(rs), sum, g.BalanceCents)
	}
}
