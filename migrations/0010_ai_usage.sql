-- What enrichment used, per workspace, provider, model and day (UTC): the basis of the
-- daily token budget and of `GET /workspaces/{ws}/usage`.
CREATE TABLE ai_usage (
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    provider        text NOT NULL,
    model           text NOT NULL,
    day             date NOT NULL,
    requests        bigint NOT NULL DEFAULT 0,
    input_tokens    bigint NOT NULL DEFAULT 0,
    output_tokens   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, day, provider, model)
);
