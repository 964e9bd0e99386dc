-- Two-factor login, account deletion, retention sweeps.

-- TOTP (RFC 6238): the shared secret sealed with the master key (context `users.totp_secret:<id>`),
-- set when enrolment starts and effective once `totp_enabled_at` is set by a confirmed code.
-- `totp_last_step` is the last accepted time step, so a code is accepted once.
ALTER TABLE users
    ADD COLUMN totp_secret      bytea,
    ADD COLUMN totp_enabled_at  timestamptz,
    ADD COLUMN totp_last_step   bigint;

-- Single-use recovery codes, stored as SHA-256 only.
CREATE TABLE totp_recovery_codes (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz,
    UNIQUE (user_id, code_hash)
);

-- A workspace whose only owner deleted their account: nobody can reach it any more and the
-- retention sweep deletes it, its rows and its objects.
ALTER TABLE workspaces ADD COLUMN deletion_requested_at timestamptz;
CREATE INDEX workspaces_deletion ON workspaces (deletion_requested_at)
    WHERE deletion_requested_at IS NOT NULL;

-- A disconnected store's connection details are forgotten 30 days after disconnection; its
-- products and versions stay until deleted.
ALTER TABLE stores ADD COLUMN connection_purged_at timestamptz;

-- Usage older than the retention period, summed per month: no per-day rows are kept for it.
CREATE TABLE ai_usage_monthly (
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    provider        text NOT NULL,
    model           text NOT NULL,
    month           date NOT NULL CHECK (extract(day FROM month) = 1),
    requests        bigint NOT NULL DEFAULT 0,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, month, provider, model)
);

CREATE INDEX sessions_age ON sessions (created_at);
CREATE INDEX audit_log_age ON audit_log (created_at) WHERE client_addr IS NOT NULL;

-- The audit log stays append-only; the one further change allowed is forgetting the client
-- address of an old entry (request-log retention), which only ever sets it to NULL.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    IF NEW.id <> OLD.id
        OR NEW.workspace_id IS DISTINCT FROM OLD.workspace_id
        OR NEW.action <> OLD.action
        OR NEW.target_type IS DISTINCT FROM OLD.target_type
        OR NEW.target_id IS DISTINCT FROM OLD.target_id
        OR (NEW.client_addr IS DISTINCT FROM OLD.client_addr AND NEW.client_addr IS NOT NULL)
        OR NEW.details <> OLD.details
        OR NEW.created_at <> OLD.created_at
        OR (NEW.actor_user_id IS DISTINCT FROM OLD.actor_user_id AND NEW.actor_user_id IS NOT NULL)
        OR (NEW.actor_api_key_id IS DISTINCT FROM OLD.actor_api_key_id AND NEW.actor_api_key_id IS NOT NULL)
    THEN
        RAISE EXCEPTION 'audit_log rows cannot be modified';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

-- Daemon-wide periodic tasks (the retention sweep): one row each, claimed by a conditional
-- update so one process runs a task per interval however many run `serve`.
CREATE TABLE maintenance_runs (
    task                text PRIMARY KEY,
    last_started_at     timestamptz NOT NULL,
    last_finished_at    timestamptz,
    last_report         jsonb
);
