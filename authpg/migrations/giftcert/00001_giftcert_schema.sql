-- +goose Up
-- RLS policies below are exactly what multigres_protect(tbl) creates for a
-- uuid tenant_id column, with public.multigres_context() inlined so these
-- migrations do not depend on the multigres setup SQL.
-- Gift-certificate module. Depends on booking (a redemption may pay for a
-- booking). The balance can never go negative: the CHECK refuses it even if
-- application code forgot the guard in its UPDATE.
CREATE TABLE public.gift_certificates (
    tenant_id            uuid        NOT NULL,
    id                   uuid        NOT NULL DEFAULT gen_random_uuid(),
    code                 text        NOT NULL CHECK (code <> ''),
    initial_amount_cents bigint      NOT NULL CHECK (initial_amount_cents > 0),
    balance_cents        bigint      NOT NULL,
    status               text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'redeemed', 'void')),
    purchaser_name       text        NOT NULL DEFAULT '',
    purchaser_email      text,
    recipient_name       text        NOT NULL DEFAULT '',
    recipient_email      text,
    message              text        NOT NULL DEFAULT '',
    payment_reference    text,
    expires_at           timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT gift_certificates_balance_check CHECK (balance_cents >= 0 AND balance_cents <= initial_amount_cents)
);
CREATE UNIQUE INDEX gift_certificates_tenant_code_key ON public.gift_certificates (tenant_id, upper(code));

CREATE TABLE public.gift_certificate_redemptions (
    tenant_id           uuid        NOT NULL,
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    gift_certificate_id uuid        NOT NULL,
    booking_id          uuid,
    amount_cents        bigint      NOT NULL CHECK (amount_cents > 0),
    balance_after_cents bigint      NOT NULL CHECK (balance_after_cents >= 0),
    note                text        NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, gift_certificate_id) REFERENCES public.gift_certificates (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, booking_id) REFERENCES public.bookings (tenant_id, id) ON DELETE SET NULL (booking_id)
);

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['gift_certificates', 'gift_certificate_redemptions'] LOOP
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
DROP TABLE public.gift_certificate_redemptions, public.gift_certificates;
