-- name: CreateClient :one
INSERT INTO public.clients (tenant_id, name, email, phone, notes)
VALUES (@tenant_id, @name, sqlc.narg(email), sqlc.narg(phone), @notes)
RETURNING *;

-- name: HoldSlot :one
INSERT INTO public.slot_reservations (tenant_id, practitioner_id, service_id, client_email, starts_at, ends_at, expires_at)
VALUES (@tenant_id, @practitioner_id, sqlc.narg(service_id), sqlc.narg(client_email), @starts_at, @ends_at,
        now() + sqlc.arg(ttl_seconds)::float8 * interval '1 second')
RETURNING *;

-- name: ReleaseSlot :execrows
DELETE FROM public.slot_reservations WHERE tenant_id = @tenant_id AND id = @id;

-- name: PurgeExpiredHolds :execrows
DELETE FROM public.slot_reservations WHERE tenant_id = @tenant_id AND expires_at <= now();

-- name: ConfirmBooking :one
-- One statement: the live hold is deleted (its claim released) and the
-- confirmed booking inserted (claiming the same range) atomically.
WITH held AS (
    DELETE FROM public.slot_reservations r
    WHERE r.tenant_id = @tenant_id AND r.id = @reservation_id AND r.expires_at > now()
    RETURNING r.tenant_id, r.practitioner_id, r.service_id, r.starts_at, r.ends_at
)
INSERT INTO public.bookings (tenant_id, practitioner_id, service_id, client_id, starts_at, ends_at, status, price_cents, notes)
SELECT held.tenant_id, held.practitioner_id, held.service_id, @client_id, held.starts_at, held.ends_at, 'confirmed',
       @price_cents, @notes
FROM held
RETURNING *;

-- name: CreateBooking :one
INSERT INTO public.bookings (tenant_id, practitioner_id, service_id, client_id, starts_at, ends_at, status, price_cents, notes)
VALUES (@tenant_id, @practitioner_id, sqlc.narg(service_id), @client_id, @starts_at, @ends_at, 'confirmed', @price_cents, @notes)
RETURNING *;

-- name: GetBooking :one
SELECT * FROM public.bookings WHERE tenant_id = @tenant_id AND id = @id;

-- name: ListBookings :many
SELECT * FROM public.bookings
WHERE tenant_id = @tenant_id AND practitioner_id = @practitioner_id AND starts_at < @until AND ends_at > @since
ORDER BY starts_at, id;

-- name: CancelBooking :one
UPDATE public.bookings
SET status = 'cancelled', cancelled_at = now(), cancellation_reason = NULLIF(@reason::text, ''), updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id AND status = 'confirmed'
RETURNING *;

-- name: SetBookingStatus :one
UPDATE public.bookings SET status = @status, updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id AND status = 'confirmed' AND @status::text IN ('completed', 'no_show')
RETURNING *;

-- name: RecordPayment :one
UPDATE public.bookings SET
    paid_cents = paid_cents + @amount_cents::bigint,
    payment_status = CASE WHEN paid_cents + @amount_cents::bigint >= price_cents THEN 'paid' ELSE 'deposit_paid' END,
    payment_method = @method::text, payment_reference = NULLIF(@reference::text, ''), updated_at = now()
WHERE tenant_id = @tenant_id AND id = @id AND @amount_cents::bigint > 0
RETURNING *;

-- name: CreateTimeBlock :one
INSERT INTO public.time_blocks (tenant_id, practitioner_id, kind, starts_at, ends_at, note)
VALUES (@tenant_id, @practitioner_id, @kind, @starts_at, @ends_at, @note)
RETURNING *;

-- name: DeleteTimeBlock :execrows
DELETE FROM public.time_blocks WHERE tenant_id = @tenant_id AND id = @id;

-- name: SetHoursOverride :exec
INSERT INTO public.business_hours_overrides (tenant_id, practitioner_id, date, opens_at, closes_at, is_closed, note)
VALUES (@tenant_id, sqlc.narg(practitioner_id), to_date(@day::text, 'YYYY-MM-DD'), sqlc.narg(opens_at)::text::time,
        sqlc.narg(closes_at)::text::time, @is_closed, @note)
ON CONFLICT (tenant_id, practitioner_id, date) DO UPDATE SET
    opens_at = EXCLUDED.opens_at, closes_at = EXCLUDED.closes_at, is_closed = EXCLUDED.is_closed, note = EXCLUDED.note;
