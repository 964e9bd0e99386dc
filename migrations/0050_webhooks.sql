-- Webhook endpoints, one delivery per event and endpoint, and every attempt to deliver it.

CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    url             text NOT NULL,
    -- Event types the endpoint receives (`review.ready`, `job.failed`, …).
    events          text[] NOT NULL,
    description     text NOT NULL DEFAULT '',
    -- The signing secret's raw bytes, sealed with the master key (`webhooks.secret:<id>`).
    secret          bytea NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    -- Start of the current run of failed attempts; NULL after a success.
    failing_since   timestamptz,
    created_by      uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, id);
CREATE TRIGGER webhooks_updated_at BEFORE UPDATE ON webhooks FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One message to one endpoint. Its id is the `webhook-id` of every attempt, and `body` is sent
-- byte for byte the same each time, so receivers can deduplicate and verify.
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    event_id        uuid,
    event_type      text NOT NULL,
    body            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    -- A dispatcher holding the delivery while it sends; another takes it over after this.
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    -- Why the delivery failed without a further attempt (endpoint disabled).
    given_up_reason text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
-- An event is queued once per endpoint however often its fan-out runs.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    id              uuid PRIMARY KEY,
    delivery_id     uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at    timestamptz NOT NULL,
    duration_ms     integer NOT NULL,
    succeeded       boolean NOT NULL,
    response_status integer,
    -- The first KiB of the answer, as text.
    response_body   text,
    error           text
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempted_at);
