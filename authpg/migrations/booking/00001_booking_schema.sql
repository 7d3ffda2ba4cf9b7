-- +goose Up
-- RLS policies below are exactly what multigres_protect(tbl) creates for a
-- uuid tenant_id column, with public.multigres_context() inlined so these
-- migrations do not depend on the multigres setup SQL.
-- Booking module: clients, bookings, time blocks, business-hours overrides
-- and slot reservations. Depends on the content module (practitioners,
-- services).
--
-- No double booking: every confirmed booking, time block and slot
-- reservation of a practitioner claims its time range in
-- public.schedule_claims, maintained by triggers, whose exclusion
-- constraint refuses any overlap within a tenant and practitioner. The
-- database, not the app, enforces it, including under concurrency.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE public.clients (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    name       text        NOT NULL,
    email      text,
    phone      text,
    notes      text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX clients_tenant_email_key ON public.clients (tenant_id, lower(email));

CREATE TABLE public.bookings (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    practitioner_id     uuid        NOT NULL,
    service_id          uuid,
    client_id           uuid        NOT NULL,
    starts_at           timestamptz NOT NULL,
    ends_at             timestamptz NOT NULL,
    status              text        NOT NULL DEFAULT 'confirmed'
        CHECK (status IN ('confirmed', 'cancelled', 'completed', 'no_show')),
    price_cents         bigint      NOT NULL DEFAULT 0 CHECK (price_cents >= 0),
    paid_cents          bigint      NOT NULL DEFAULT 0 CHECK (paid_cents >= 0),
    payment_status      text        NOT NULL DEFAULT 'unpaid'
        CHECK (payment_status IN ('unpaid', 'deposit_paid', 'paid', 'refunded')),
    payment_method      text,
    payment_reference   text,
    notes               text        NOT NULL DEFAULT '',
    cancelled_at        timestamptz,
    cancellation_reason text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (ends_at > starts_at),
    FOREIGN KEY (tenant_id, practitioner_id) REFERENCES public.practitioners (tenant_id, id),
    FOREIGN KEY (tenant_id, service_id) REFERENCES public.services (tenant_id, id),
    FOREIGN KEY (tenant_id, client_id) REFERENCES public.clients (tenant_id, id)
);
CREATE INDEX bookings_practitioner_time_idx ON public.bookings (tenant_id, practitioner_id, starts_at);

CREATE TABLE public.time_blocks (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    practitioner_id uuid        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('break', 'vacation', 'hold')),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    note            text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (ends_at > starts_at),
    FOREIGN KEY (tenant_id, practitioner_id) REFERENCES public.practitioners (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE public.business_hours_overrides (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    practitioner_id uuid,
    date            date        NOT NULL,
    opens_at        time,
    closes_at       time,
    is_closed       boolean     NOT NULL DEFAULT false,
    note            text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT business_hours_overrides_tenant_date_key UNIQUE NULLS NOT DISTINCT (tenant_id, practitioner_id, date),
    CHECK (is_closed OR (opens_at IS NOT NULL AND closes_at IS NOT NULL AND opens_at < closes_at)),
    FOREIGN KEY (tenant_id, practitioner_id) REFERENCES public.practitioners (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE public.slot_reservations (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    practitioner_id uuid        NOT NULL,
    service_id      uuid,
    client_email    text,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CHECK (ends_at > starts_at),
    FOREIGN KEY (tenant_id, practitioner_id) REFERENCES public.practitioners (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, service_id) REFERENCES public.services (tenant_id, id)
);

CREATE TABLE public.schedule_claims (
    tenant_id       uuid      NOT NULL,
    practitioner_id uuid      NOT NULL,
    source          text      NOT NULL CHECK (source IN ('booking', 'time_block', 'slot_reservation')),
    source_id       uuid      NOT NULL,
    during          tstzrange NOT NULL,
    PRIMARY KEY (tenant_id, source, source_id),
    FOREIGN KEY (tenant_id, practitioner_id) REFERENCES public.practitioners (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT schedule_claims_no_overlap
        EXCLUDE USING gist (tenant_id WITH =, practitioner_id WITH =, during WITH &&)
);

-- +goose StatementBegin
-- Expired holds must not block anyone, but an exclusion constraint cannot
-- mention now(); so before any new claim, the practitioner's expired holds
-- are deleted (database clock), and only then is the overlap checked.
CREATE FUNCTION public.authpg_purge_expired_holds(p_tenant uuid, p_practitioner uuid) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM public.slot_reservations
     WHERE tenant_id = p_tenant AND practitioner_id = p_practitioner AND expires_at <= now();
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION public.authpg_sync_schedule_claim() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    src text := TG_ARGV[0];
    claims boolean;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM public.schedule_claims
         WHERE tenant_id = OLD.tenant_id AND source = src AND source_id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF src = 'booking' THEN
            claims := NEW.status = 'confirmed';
        ELSIF src = 'slot_reservation' THEN
            -- An expired hold claims nothing (and must not: the purge
            -- below would delete this very row, leaving a stale claim).
            claims := NEW.expires_at > now();
        ELSE
            claims := true;
        END IF;
        IF claims THEN
            PERFORM public.authpg_purge_expired_holds(NEW.tenant_id, NEW.practitioner_id);
            INSERT INTO public.schedule_claims (tenant_id, practitioner_id, source, source_id, during)
            VALUES (NEW.tenant_id, NEW.practitioner_id, src, NEW.id, tstzrange(NEW.starts_at, NEW.ends_at, '[)'));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER bookings_schedule_claim AFTER INSERT OR UPDATE OR DELETE ON public.bookings
    FOR EACH ROW EXECUTE FUNCTION public.authpg_sync_schedule_claim('booking');
CREATE TRIGGER time_blocks_schedule_claim AFTER INSERT OR UPDATE OR DELETE ON public.time_blocks
    FOR EACH ROW EXECUTE FUNCTION public.authpg_sync_schedule_claim('time_block');
CREATE TRIGGER slot_reservations_schedule_claim AFTER INSERT OR UPDATE OR DELETE ON public.slot_reservations
    FOR EACH ROW EXECUTE FUNCTION public.authpg_sync_schedule_claim('slot_reservation');

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['clients', 'bookings', 'time_blocks', 'business_hours_overrides', 'slot_reservations', 'schedule_claims'] LOOP
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
DROP TABLE public.schedule_claims, public.slot_reservations, public.business_hours_overrides,
    public.time_blocks, public.bookings, public.clients;
DROP FUNCTION public.authpg_sync_schedule_claim();
DROP FUNCTION public.authpg_purge_expired_holds(uuid, uuid);
