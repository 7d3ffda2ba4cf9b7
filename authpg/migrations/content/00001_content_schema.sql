-- +goose Up
-- RLS policies below are exactly what multigres_protect(tbl) creates for a
-- uuid tenant_id column, with public.multigres_context() inlined so these
-- migrations do not depend on the multigres setup SQL.
-- Content module (CMS): business profile, services, business hours,
-- reviews and practitioners, in schema public, all keyed by tenant_id.
CREATE TABLE public.business_profile (
    tenant_id   uuid        NOT NULL PRIMARY KEY,
    name        text        NOT NULL,
    tagline     text        NOT NULL DEFAULT '',
    description text        NOT NULL DEFAULT '',
    phone       text,
    email       text,
    address     text,
    time_zone   text        NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.services (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    slug             text        NOT NULL,
    name             text        NOT NULL,
    description      text        NOT NULL DEFAULT '',
    duration_minutes integer     NOT NULL CHECK (duration_minutes > 0),
    price_cents      bigint      NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    is_active        boolean     NOT NULL DEFAULT true,
    sort_order       integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT services_tenant_slug_key UNIQUE (tenant_id, slug)
);

CREATE TABLE public.business_hours (
    tenant_id   uuid    NOT NULL,
    id          uuid    NOT NULL DEFAULT gen_random_uuid(),
    day_of_week integer NOT NULL CHECK (day_of_week BETWEEN 0 AND 6),
    opens_at    time,
    closes_at   time,
    is_closed   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT business_hours_tenant_day_key UNIQUE (tenant_id, day_of_week),
    CHECK (is_closed OR (opens_at IS NOT NULL AND closes_at IS NOT NULL AND opens_at < closes_at))
);

CREATE TABLE public.reviews (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    author_name  text        NOT NULL,
    rating       integer     NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body         text        NOT NULL DEFAULT '',
    is_published boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE public.practitioners (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    slug       text        NOT NULL,
    name       text        NOT NULL,
    title      text        NOT NULL DEFAULT '',
    bio        text        NOT NULL DEFAULT '',
    is_active  boolean     NOT NULL DEFAULT true,
    sort_order integer     NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT practitioners_tenant_slug_key UNIQUE (tenant_id, slug)
);

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['business_profile', 'services', 'business_hours', 'reviews', 'practitioners'] LOOP
        EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE public.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY multigres_tenant_isolation ON public.%I
            USING (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid))
            WITH CHECK (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid))$p$, t);
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO app_user', t);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE public.practitioners, public.reviews, public.business_hours, public.services, public.business_profile;
