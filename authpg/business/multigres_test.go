package business_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/multigres-proxy/multigres/authpg"
	"github.com/multigres-proxy/multigres/authpg/business"
	"github.com/multigres-proxy/multigres/internal/pgtest"
	"github.com/multigres-proxy/multigres/internal/proxytest"
)

// TestThroughMultigres runs the booking flow with the tenant fixed by the
// proxy connection (way 3): the tenant's own flow works, the exclusion
// constraint still refuses double booking, and queries naming another
// tenant find nothing and change nothing.
func TestThroughMultigres(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	pg := pgtest.Shared()
	proxytest.Setup(t, pg, e.db)
	if _, err := e.super.Exec(ctx, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_user`); err != nil {
		t.Fatal(err)
	}
	p := proxytest.StartProxy(t, pg, nil)
	victim := newShop(t, e.q) // another tenant's data, via the superuser
	vb, err := e.q.CreateBooking(ctx, business.CreateBookingParams{TenantID: victim.tenant, PractitionerID: victim.practitioner.ID,
		ClientID: victim.client.ID, StartsAt: at(9, 0), EndsAt: at(10, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.CreateGiftCertificate(ctx, business.CreateGiftCertificateParams{TenantID: victim.tenant, Code: "V", AmountCents: 100}); err != nil {
		t.Fatal(err)
	}

	mine := uuid.New()
	cfg, _ := pgxpool.ParseConfig(proxytest.URL(p.Addr, proxytest.AppUser+"."+mine.String(), proxytest.AppUserPassword, e.db))
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	q := business.New(pool)

	s := newShopFor(t, q, mine)
	hold, err := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: mine, PractitionerID: s.practitioner.ID,
		StartsAt: at(9, 0), EndsAt: at(10, 0), TTL: time.Minute})
	if err != nil {
		t.Fatalf("hold through multigres: %v", err)
	}
	bk, err := q.ConfirmBooking(ctx, business.ConfirmBookingParams{TenantID: mine, ReservationID: hold.ID, ClientID: s.client.ID})
	if err != nil {
		t.Fatalf("confirm through multigres: %v", err)
	}
	if _, err := q.CreateBooking(ctx, business.CreateBookingParams{TenantID: mine, PractitionerID: s.practitioner.ID,
		ClientID: s.client.ID, StartsAt: at(9, 30), EndsAt: at(10, 30)}); !errors.Is(err, business.ErrSlotTaken) {
		t.Fatalf("double booking through multigres: %v", err)
	}
	if _, err := q.CancelBooking(ctx, business.CancelBookingParams{TenantID: mine, ID: bk.ID}); err != nil {
		t.Fatal(err)
	}

	// Naming the other tenant: nothing found, nothing changed.
	if _, err := q.GetBooking(ctx, victim.tenant, vb.ID); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("read other tenant's booking: %v", err)
	}
	if _, err := q.CancelBooking(ctx, business.CancelBookingParams{TenantID: victim.tenant, ID: vb.ID}); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("cancel other tenant's booking: %v", err)
	}
	if _, err := q.RedeemGiftCertificate(ctx, business.RedeemGiftCertificateParams{TenantID: victim.tenant, Code: "V", AmountCents: 100}); !errors.Is(err, authpg.ErrNotFound) {
		t.Errorf("redeem other tenant's certificate: %v", err)
	}
	if _, err := q.CreateClient(ctx, business.CreateClientParams{TenantID: victim.tenant, Name: "forged"}); !errors.Is(err, business.ErrForbidden) {
		t.Errorf("insert into other tenant: %v", err)
	}
	if _, err := q.HoldSlot(ctx, business.HoldSlotParams{TenantID: victim.tenant, PractitionerID: victim.practitioner.ID,
		StartsAt: at(12, 0), EndsAt: at(13, 0), TTL: time.Minute}); err == nil {
		t.Error("hold on other tenant's practitioner succeeded")
	}
	got, err := e.q.GetBooking(ctx, victim.tenant, vb.ID)
	if err != nil || got.Status != business.StatusConfirmed {
		t.Fatalf("victim booking = %+v, %v", got, err)
	}
	g, _ := e.q.GetGiftCertificateByCode(ctx, victim.tenant, "V")
	if g.BalanceCents != 100 {
		t.Fatalf("victim certificate balance = %d", g.BalanceCents)
	}
	var n int
	if err := e.super.QueryRow(ctx, `SELECT count(*) FROM public.clients WHERE tenant_id = $1`, victim.tenant).Scan(&n); err != nil || n != 1 {
		t.Fatalf("victim clients = %d, %v", n, err)
	}
}
