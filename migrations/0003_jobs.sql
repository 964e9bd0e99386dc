-- The user-visible record of every job; apalis keeps its own queue tables in schema `apalis`.

CREATE TABLE job_runs (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    store_id            uuid REFERENCES stores(id) ON DELETE CASCADE,
    kind                text NOT NULL,
    params              jsonb NOT NULL DEFAULT '{}'::jsonb,
    status              text NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    progress_done       bigint NOT NULL DEFAULT 0,
    progress_total      bigint,
    counters            jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Where a resumed run continues; written in the same transaction as the work it records.
    checkpoint          jsonb,
    error               text,
    cancel_requested    boolean NOT NULL DEFAULT false,
    attempts            integer NOT NULL DEFAULT 0,
    created_by          uuid REFERENCES users(id) ON DELETE SET NULL,
    created_by_api_key  uuid REFERENCES api_keys(id) ON DELETE SET NULL,
    -- The schedule run that started it, if any.
    schedule_tick       timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_runs_workspace ON job_runs (workspace_id, id DESC);
CREATE INDEX job_runs_store_active ON job_runs (store_id, kind) WHERE status IN ('queued', 'running');
CREATE TRIGGER job_runs_updated_at BEFORE UPDATE ON job_runs FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE job_logs (
    id          bigserial PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    level       text NOT NULL,
    message     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_logs_job ON job_logs (job_id, id);
CREATE INDEX job_logs_age ON job_logs (created_at);
