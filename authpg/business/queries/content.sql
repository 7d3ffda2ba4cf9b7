-- name: UpsertBusinessProfile :one
INSERT INTO public.business_profile (tenant_id, name, tagline, description, phone, email, address, time_zone)
VALUES (@tenant_id, @name, @tagline, @description, sqlc.narg(phone), sqlc.narg(email), sqlc.narg(address),
        COALESCE(NULLIF(@time_zone::text, ''), 'UTC'))
ON CONFLICT (tenant_id) DO UPDATE SET
    name = EXCLUDED.name, tagline = EXCLUDED.tagline, description = EXCLUDED.description,
    phone = EXCLUDED.phone, email = EXCLUDED.email, address = EXCLUDED.address,
    time_zone = EXCLUDED.time_zone, updated_at = now()
RETURNING *;

-- name: GetBusinessProfile :one
SELECT * FROM public.business_profile WHERE tenant_id = @tenant_id;

-- name: CreateService :one
INSERT INTO public.services (tenant_id, slug, name, description, duration_minutes, price_cents, sort_order)
VALUES (@tenant_id, @slug, @name, @description, @duration_minutes, @price_cents, @sort_order)
RETURNING *;

-- name: ListActiveServices :many
SELECT * FROM public.services WHERE tenant_id = @tenant_id AND is_active ORDER BY sort_order, name;

-- name: CreatePractitioner :one
INSERT INTO public.practitioners (tenant_id, slug, name, title, bio)
VALUES (@tenant_id, @slug, @name, @title, @bio)
RETURNING *;

-- name: SetBusinessHours :exec
INSERT INTO public.business_hours (tenant_id, day_of_week, opens_at, closes_at, is_closed)
VALUES (@tenant_id, @day_of_week, sqlc.narg(opens_at)::text::time, sqlc.narg(closes_at)::text::time, @is_closed)
ON CONFLICT (tenant_id, day_of_week) DO UPDATE SET
    opens_at = EXCLUDED.opens_at, closes_at = EXCLUDED.closes_at, is_closed = EXCLUDED.is_closed;

-- name: CreateReview :one
INSERT INTO public.reviews (tenant_id, author_name, rating, body, is_published)
VALUES (@tenant_id, @author_name, @rating, @body, @is_published)
RETURNING *;
