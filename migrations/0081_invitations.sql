-- A person is asked before joining a workspace: the invitation is mailed as a link whose token
-- only its hash is kept of. Pending until accepted, declined, revoked or expired (7 days).
CREATE TABLE invitations (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email           citext NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'reviewer', 'viewer')),
    token_hash      bytea NOT NULL UNIQUE,
    invited_by      uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz,
    accepted_by     uuid REFERENCES users(id) ON DELETE SET NULL,
    declined_at     timestamptz,
    revoked_at      timestamptz
);
-- One pending invitation per address and workspace: inviting again replaces it.
CREATE UNIQUE INDEX invitations_pending ON invitations (workspace_id, email)
    WHERE accepted_at IS NULL AND declined_at IS NULL AND revoked_at IS NULL;
CREATE INDEX invitations_workspace ON invitations (workspace_id, created_at);

-- "Forgot password": a single-use link valid 30 minutes, kept as the token's hash.
CREATE TABLE password_resets (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz
);
CREATE INDEX password_resets_user ON password_resets (user_id, created_at);
