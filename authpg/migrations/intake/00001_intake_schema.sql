-- +goose Up
-- RLS policies below are exactly what multigres_protect(tbl) creates for a
-- uuid tenant_id column, with public.multigres_context() inlined so these
-- migrations do not depend on the multigres setup SQL.
-- Intake module: patient intake forms. Depends on booking (clients,
-- bookings).
CREATE TABLE public.intake_submissions (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    client_id    uuid,
    booking_id   uuid,
    full_name    text        NOT NULL,
    email        text,
    phone        text,
    form_version text        NOT NULL DEFAULT '1',
    answers      jsonb       NOT NULL DEFAULT '{}',
    consent_at   timestamptz,
    reviewed_at  timestamptz,
    submitted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, client_id) REFERENCES public.clients (tenant_id, id) ON DELETE SET NULL (client_id),
    FOREIGN KEY (tenant_id, booking_id) REFERENCES public.bookings (tenant_id, id) ON DELETE SET NULL (booking_id)
);
CREATE INDEX intake_submissions_client_idx ON public.intake_submissions (tenant_id, client_id);

ALTER TABLE public.intake_submissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.intake_submissions FORCE ROW LEVEL SECURITY;
CREATE POLICY multigres_tenant_isolation ON public.intake_submissions
    USING (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid));

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON public.intake_submissions TO app_user;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE public.intake_submissions;
