-- Nightly (or any cron) pipelines per store.
CREATE TABLE schedules (
    store_id        uuid PRIMARY KEY REFERENCES stores(id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    cron            text NOT NULL,
    timezone        text NOT NULL,
    pipeline        jsonb NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    next_run_at     timestamptz NOT NULL,
    last_run_at     timestamptz,
    last_job_id     uuid,
    created_by      uuid REFERENCES users(id) ON DELETE SET NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;
CREATE TRIGGER schedules_updated_at BEFORE UPDATE ON schedules FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A schedule tick starts at most one job per store, whatever number of processes saw it.
CREATE UNIQUE INDEX job_runs_one_per_tick ON job_runs (store_id, schedule_tick) WHERE schedule_tick IS NOT NULL;
