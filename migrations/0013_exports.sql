-- Export files: one row per export job, the object it wrote and what it found.
CREATE TABLE exports (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    store_id        uuid NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    job_id          uuid NOT NULL,
    format          text NOT NULL CHECK (format IN ('magento_csv')),
    -- live | approved | live_with_approved
    source          text NOT NULL,
    store_views     text[] NOT NULL,
    strict          boolean NOT NULL DEFAULT false,
    rows            bigint,
    bytes           bigint,
    object_key      text,
    -- Validation findings: duplicate url keys, over-long values, invalid characters, images.
    issues          jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX exports_store ON exports (store_id, created_at DESC);
