-- +goose Up
-- RLS policies below are exactly what multigres_protect(tbl) creates for a
-- uuid tenant_id column, with public.multigres_context() inlined so these
-- migrations do not depend on the multigres setup SQL.
-- Auth module: admin users, sessions, TOTP secrets, backup codes,
-- invitations and audit events, in schema "auth". Every table is keyed by
-- tenant_id first, every foreign key includes tenant_id, every unique
-- constraint is per tenant, and every table carries the RLS policy that
-- multigres_protect() would create.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE TABLE auth.users (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    handle           text        NOT NULL CHECK (handle <> ''),
    email            text        CHECK (email <> ''),
    display_name     text        NOT NULL DEFAULT '',
    password_hash    text        NOT NULL DEFAULT '',
    pin_hash         text,
    role             text        NOT NULL DEFAULT 'viewer'
        CONSTRAINT users_role_check CHECK (role IN ('viewer', 'editor', 'business_owner', 'developer')),
    is_active        boolean     NOT NULL DEFAULT true,
    totp_enabled     boolean     NOT NULL DEFAULT false,
    needs_onboarding boolean     NOT NULL DEFAULT true,
    onboarding_step  integer     NOT NULL DEFAULT 0 CHECK (onboarding_step >= 0),
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_tenant_handle_key ON auth.users (tenant_id, lower(handle));
CREATE UNIQUE INDEX users_tenant_email_key ON auth.users (tenant_id, lower(email));

CREATE TABLE auth.sessions (
    tenant_id         uuid        NOT NULL,
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id           uuid        NOT NULL,
    ip_address        text,
    user_agent        text,
    metadata          jsonb       NOT NULL DEFAULT '{}',
    temp_totp_secret  text,
    totp_verified     boolean     NOT NULL DEFAULT false,
    expires_at        timestamptz NOT NULL,
    last_activity_at  timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_user_idx ON auth.sessions (tenant_id, user_id);
CREATE INDEX sessions_expires_idx ON auth.sessions (tenant_id, expires_at);

CREATE TABLE auth.totp_secrets (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    handle           text        NOT NULL,
    user_id          uuid,
    encrypted_secret text        NOT NULL,
    iv               text        NOT NULL,
    auth_tag         text        NOT NULL,
    salt             text        NOT NULL,
    last_used_step   bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX totp_secrets_tenant_handle_key ON auth.totp_secrets (tenant_id, lower(handle));

CREATE TABLE auth.backup_codes (
    tenant_id  uuid        NOT NULL,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id    uuid        NOT NULL,
    code_hash  text        NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES auth.users (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX backup_codes_user_idx ON auth.backup_codes (tenant_id, user_id);

CREATE TABLE auth.invitations (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    email       text        NOT NULL CHECK (email <> ''),
    token       text        NOT NULL CHECK (length(token) >= 16),
    role        text        NOT NULL DEFAULT 'viewer'
        CONSTRAINT invitations_role_check CHECK (role IN ('viewer', 'editor', 'business_owner', 'developer')),
    invited_by  uuid,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT invitations_tenant_token_key UNIQUE (tenant_id, token),
    FOREIGN KEY (tenant_id, invited_by) REFERENCES auth.users (tenant_id, id) ON DELETE SET NULL (invited_by)
);

CREATE TABLE auth.audit_events (
    tenant_id      uuid        NOT NULL,
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    event_type     text        NOT NULL CHECK (event_type <> ''),
    -- No foreign keys on purpose: the log outlives the users it mentions.
    user_id        uuid,
    target_user_id uuid,
    severity       text        NOT NULL DEFAULT 'info'
        CHECK (severity IN ('debug', 'info', 'warning', 'error', 'critical')),
    source         text        NOT NULL DEFAULT '',
    ip_address     text,
    user_agent     text,
    details        jsonb       NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_time_idx ON auth.audit_events (tenant_id, created_at DESC);

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'sessions', 'totp_secrets', 'backup_codes', 'invitations', 'audit_events'] LOOP
        EXECUTE format('ALTER TABLE auth.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE auth.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY multigres_tenant_isolation ON auth.%I
            USING (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid))
            WITH CHECK (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid))$p$, t);
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        GRANT USAGE ON SCHEMA auth TO app_user;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth TO app_user;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP SCHEMA auth CASCADE;
