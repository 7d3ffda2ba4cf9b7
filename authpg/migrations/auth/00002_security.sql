-- +goose Up
-- Security upgrade of the auth module:
--  * TOTP secrets are keyed by user id instead of handle (a rename no longer
--    loses the secret, and a new user taking an old handle no longer
--    inherits one); key_id names the key a row is sealed with (NULL: the
--    legacy passphrase format).
--  * Invitation tokens are stored as hex SHA-256 (token_hash).
--  * Enrolment secrets held in sessions are encrypted by the application
--    from now on; plaintext ones are cleared (an enrolment in progress has
--    to start again).
--  * auth.attempt_limits holds failed-attempt counters.
-- The tables FORCE row-level security, which binds even their owner: lift
-- it while existing rows are rewritten, so that a migrating owner without
-- BYPASSRLS sees every tenant's rows, and put it back at the end (all in
-- this migration's transaction).
ALTER TABLE auth.totp_secrets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.sessions NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.users NO FORCE ROW LEVEL SECURITY;

-- A row saved before its user existed has no user_id: take the user that
-- has the handle now. Rows still without a user cannot belong to anyone.
UPDATE auth.totp_secrets t SET user_id = u.id
FROM auth.users u
WHERE t.user_id IS NULL AND u.tenant_id = t.tenant_id AND lower(u.handle) = lower(t.handle);
DELETE FROM auth.totp_secrets WHERE user_id IS NULL;
-- A user renamed and enrolled again under the new handle had two rows:
-- keep the newest.
DELETE FROM auth.totp_secrets t
USING auth.totp_secrets n
WHERE n.tenant_id = t.tenant_id AND n.user_id = t.user_id
  AND (n.updated_at, n.id) > (t.updated_at, t.id);
DROP INDEX auth.totp_secrets_tenant_handle_key;
ALTER TABLE auth.totp_secrets
    DROP COLUMN handle,
    ALTER COLUMN user_id SET NOT NULL,
    ADD COLUMN key_id text;
CREATE UNIQUE INDEX totp_secrets_tenant_user_key ON auth.totp_secrets (tenant_id, user_id);

ALTER TABLE auth.invitations RENAME COLUMN token TO token_hash;
ALTER TABLE auth.invitations RENAME CONSTRAINT invitations_tenant_token_key TO invitations_tenant_token_hash_key;
UPDATE auth.invitations SET token_hash = encode(sha256(convert_to(token_hash, 'UTF8')), 'hex');

UPDATE auth.sessions SET temp_totp_secret = NULL WHERE temp_totp_secret IS NOT NULL;

CREATE TABLE auth.attempt_limits (
    tenant_id         uuid        NOT NULL,
    kind              text        NOT NULL CHECK (kind IN ('password', 'totp', 'backup_code')),
    -- A user id, or for passwords the lower-cased login name nobody has.
    subject           text        NOT NULL,
    failures          integer     NOT NULL CHECK (failures > 0),
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz,
    PRIMARY KEY (tenant_id, kind, subject)
);

ALTER TABLE auth.totp_secrets FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.users FORCE ROW LEVEL SECURITY;

ALTER TABLE auth.attempt_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE auth.attempt_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY multigres_tenant_isolation ON auth.attempt_limits
    USING (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(pg_catalog.current_setting('app.current_tenant_id', true), '')::uuid));

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON auth.attempt_limits TO app_user;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- Hashed invitation tokens cannot be turned back into tokens, and rows
-- sealed with a key cannot be read by the previous code: both are
-- dropped.
ALTER TABLE auth.totp_secrets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations NO FORCE ROW LEVEL SECURITY;
DROP TABLE auth.attempt_limits;
DELETE FROM auth.invitations;
ALTER TABLE auth.invitations RENAME CONSTRAINT invitations_tenant_token_hash_key TO invitations_tenant_token_key;
ALTER TABLE auth.invitations RENAME COLUMN token_hash TO token;
DELETE FROM auth.totp_secrets WHERE key_id IS NOT NULL;
DROP INDEX auth.totp_secrets_tenant_user_key;
ALTER TABLE auth.totp_secrets DROP COLUMN key_id, ADD COLUMN handle text;
UPDATE auth.totp_secrets t SET handle = u.handle FROM auth.users u
WHERE u.tenant_id = t.tenant_id AND u.id = t.user_id;
ALTER TABLE auth.totp_secrets ALTER COLUMN handle SET NOT NULL, ALTER COLUMN user_id DROP NOT NULL;
CREATE UNIQUE INDEX totp_secrets_tenant_handle_key ON auth.totp_secrets (tenant_id, lower(handle));
ALTER TABLE auth.totp_secrets FORCE ROW LEVEL SECURITY;
ALTER TABLE auth.invitations FORCE ROW LEVEL SECURITY;
