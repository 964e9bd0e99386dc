-- Catalog audits: one run per audit job, its findings, and each audited product's score.

CREATE TABLE audit_runs (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    store_id        uuid NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    job_id          uuid NOT NULL,
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    -- Which products: {} for all, or {"products": [...]} / {"q": ...}.
    filter          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The rules and thresholds in force when the run started.
    config          jsonb NOT NULL,
    products        bigint NOT NULL DEFAULT 0,
    findings        bigint NOT NULL DEFAULT 0,
    -- Mean of the product scores, 0–100.
    score           double precision,
    -- {"by_rule": {rule: count}, "by_severity": {severity: count}}
    counts          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The store's previous finished run and what changed since: fixed, new, unchanged.
    previous_run_id uuid REFERENCES audit_runs(id) ON DELETE SET NULL,
    comparison      jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    duration_ms     bigint
);
CREATE INDEX audit_runs_store ON audit_runs (store_id, created_at DESC);
CREATE INDEX audit_runs_job ON audit_runs (job_id);

-- Rows are written once, with their run, and read by run.
CREATE TABLE audit_findings (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES audit_runs(id) ON DELETE CASCADE,
    product_id  uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    store_view  text NOT NULL,
    rule        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('error', 'warning', 'info')),
    field       text NOT NULL,
    message     text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- The findings list (filtered by rule, or not) in id order, and "products with finding X".
CREATE INDEX audit_findings_run_rule ON audit_findings (run_id, rule, id);
CREATE INDEX audit_findings_run_product ON audit_findings (run_id, product_id);

CREATE TABLE audit_scores (
    run_id      uuid NOT NULL REFERENCES audit_runs(id) ON DELETE CASCADE,
    product_id  uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    score       smallint NOT NULL CHECK (score BETWEEN 0 AND 100),
    findings    integer NOT NULL,
    PRIMARY KEY (run_id, product_id)
);
-- Worst products first, and the list's score filter.
CREATE INDEX audit_scores_order ON audit_scores (run_id, score, product_id);

-- The run the product list's score and finding filters read.
ALTER TABLE stores ADD COLUMN last_audit_run uuid REFERENCES audit_runs(id) ON DELETE SET NULL;
