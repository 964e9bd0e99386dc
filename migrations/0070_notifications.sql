-- Notifications: events written with what caused them, fanned out by a queued job to webhook
-- deliveries, mail and in-app notices; outgoing mail sent by its own queued job.

-- The steps of one pipeline run share the id of its first job, so the run can be summed up
-- when it ends.
ALTER TABLE job_runs ADD COLUMN pipeline_id uuid;
CREATE INDEX job_runs_pipeline ON job_runs (pipeline_id) WHERE pipeline_id IS NOT NULL;

CREATE TABLE events (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind            text NOT NULL,
    store_id        uuid REFERENCES stores(id) ON DELETE CASCADE,
    job_id          uuid,
    -- One line for people ("12 proposals wait for review in Demo store").
    summary         text NOT NULL,
    -- What webhooks receive as `data` and what mail is composed from.
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- An event raised again for the same cause (a retried transaction) is kept once.
    dedupe_key      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When its fan-out task was last queued: a task lost with a crashed worker is queued
    -- again by the scheduler's sweep.
    fan_out_queued_at timestamptz NOT NULL DEFAULT now(),
    -- Set by the fan-out job once deliveries, mail and notices are queued.
    fanned_out_at   timestamptz
);
CREATE INDEX events_workspace ON events (workspace_id, id DESC);
CREATE INDEX events_age ON events (created_at);
CREATE INDEX events_waiting ON events (created_at) WHERE fanned_out_at IS NULL;
CREATE UNIQUE INDEX events_dedupe ON events (workspace_id, dedupe_key) WHERE dedupe_key IS NOT NULL;

-- A person's choice for one kind of event in one workspace; without a row, their role's default.
CREATE TABLE notification_preferences (
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind            text NOT NULL,
    email           boolean NOT NULL,
    -- For `review.ready`: one mail a day listing every run instead of one mail per run.
    digest          boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, workspace_id, kind)
);
CREATE TRIGGER notification_preferences_updated_at BEFORE UPDATE ON notification_preferences
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- In-app notices: one per person and event.
CREATE TABLE notifications (
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event_id        uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz,
    PRIMARY KEY (user_id, event_id)
);
CREATE INDEX notifications_unread ON notifications (user_id, workspace_id, event_id DESC) WHERE read_at IS NULL;
CREATE INDEX notifications_workspace ON notifications (user_id, workspace_id, event_id DESC);

-- Events waiting for a person's daily digest mail.
CREATE TABLE notification_digest_items (
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event_id        uuid NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);

-- Every message catalogd sends, queued in the transaction that decided to send it.
CREATE TABLE outgoing_mail (
    id              uuid PRIMARY KEY,
    -- The same key queues one message however often it is asked for.
    idempotency_key text NOT NULL UNIQUE,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    body_text       text NOT NULL,
    body_html       text,
    -- RFC 8058 one-click unsubscribe URL, sent as List-Unsubscribe.
    unsubscribe_url text,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A sender holding the message while it talks to the server; another takes over after this.
    lease_until     timestamptz,
    -- When its sending task was last queued (see events.fan_out_queued_at).
    queued_at       timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    -- Where the message went: the SMTP server, or the file it was written to.
    sent_via        text
);
CREATE INDEX outgoing_mail_pending ON outgoing_mail (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outgoing_mail_age ON outgoing_mail (created_at);
