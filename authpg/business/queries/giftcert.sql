-- name: CreateGiftCertificate :one
INSERT INTO public.gift_certificates (tenant_id, code, initial_amount_cents, balance_cents, purchaser_name, purchaser_email,
    recipient_name, recipient_email, message, expires_at)
VALUES (@tenant_id, @code, @amount_cents::bigint, @amount_cents::bigint, @purchaser_name, sqlc.narg(purchaser_email),
    @recipient_name, sqlc.narg(recipient_email), @message,
    CASE WHEN sqlc.arg(valid_for_seconds)::float8 > 0 THEN now() + sqlc.arg(valid_for_seconds)::float8 * interval '1 second' END)
RETURNING *;

-- name: GetGiftCertificateByCode :one
SELECT * FROM public.gift_certificates WHERE tenant_id = @tenant_id AND upper(code) = upper(@code::text);

-- name: RedeemGiftCertificate :one
-- The balance is checked and decremented by one conditional UPDATE: under
-- concurrency, a waiting UPDATE re-checks "balance_cents >= amount" against
-- the committed balance, so the balance can never go negative (and the
-- CHECK constraint would refuse it anyway). The redemption row is written
-- in the same statement.
WITH debited AS (
    UPDATE public.gift_certificates g SET
        balance_cents = g.balance_cents - @amount_cents::bigint,
        status = CASE WHEN g.balance_cents - @amount_cents::bigint = 0 THEN 'redeemed' ELSE g.status END,
        updated_at = now()
    WHERE g.tenant_id = @tenant_id AND upper(g.code) = upper(@code::text) AND g.status = 'active'
      AND (g.expires_at IS NULL OR g.expires_at > now()) AND g.balance_cents >= @amount_cents::bigint
    RETURNING g.tenant_id, g.id, g.balance_cents
)
INSERT INTO public.gift_certificate_redemptions (tenant_id, gift_certificate_id, booking_id, amount_cents, balance_after_cents, note)
SELECT debited.tenant_id, debited.id, sqlc.narg(booking_id), @amount_cents::bigint, debited.balance_cents, @note
FROM debited
RETURNING *;

-- name: GiftCertificateState :one
SELECT (status = 'active' AND (expires_at IS NULL OR expires_at > now()))::boolean AS usable, balance_cents
FROM public.gift_certificates WHERE tenant_id = @tenant_id AND upper(code) = upper(@code::text);

-- name: ListRedemptions :many
SELECT * FROM public.gift_certificate_redemptions
WHERE tenant_id = @tenant_id AND gift_certificate_id = @gift_certificate_id ORDER BY created_at, id;
