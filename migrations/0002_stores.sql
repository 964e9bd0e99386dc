-- Connected stores and their (encrypted) connection credentials.

CREATE TABLE stores (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name                text NOT NULL,
    platform            text NOT NULL DEFAULT 'magento',
    base_url            text NOT NULL,
    status              text NOT NULL CHECK (status IN ('pending', 'active', 'needs_reauth', 'failed', 'disconnected')),
    -- Why the store is not active (Magento's oauth_problem, a refused signature…), for people.
    status_detail       text,
    signature_method    text NOT NULL DEFAULT 'hmac-sha256' CHECK (signature_method IN ('hmac-sha256', 'hmac-sha1')),
    -- AES-256-GCM sealed JSON {consumer_key, consumer_secret, access_token, access_token_secret}; NULL once disconnected.
    credentials         bytea,
    -- SHA-256 of the unguessable token in the callback and identity URLs (lookup) and the token
    -- itself, sealed, so the owner can be shown the URLs again.
    link_token_hash     bytea NOT NULL UNIQUE,
    link_token          bytea NOT NULL,
    -- True while one Magento callback may be accepted; a callback consumes it.
    callback_armed      boolean NOT NULL DEFAULT false,
    -- The handshake in flight: consumer key/secret and verifier from Magento's post, sealed.
    handshake           bytea,
    handshake_started_at timestamptz,
    magento_store_url   text,
    store_views         jsonb NOT NULL DEFAULT '[]'::jsonb,
    requests_per_second integer NOT NULL DEFAULT 4 CHECK (requests_per_second BETWEEN 1 AND 1000),
    max_concurrency     integer NOT NULL DEFAULT 4 CHECK (max_concurrency BETWEEN 1 AND 64),
    created_by          uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    connected_at        timestamptz,
    disconnected_at     timestamptz
);
CREATE INDEX stores_workspace ON stores (workspace_id, id);
CREATE INDEX stores_disconnected ON stores (disconnected_at) WHERE status = 'disconnected';
CREATE TRIGGER stores_updated_at BEFORE UPDATE ON stores FOR EACH ROW EXECUTE FUNCTION set_updated_at();
