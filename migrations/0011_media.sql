-- Mirrored product images: what the store's gallery entry points at, stored once per content
-- hash under the workspace's prefix in the object store, with the picture's size.
CREATE TABLE media (
    product_id      uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    entry_id        bigint NOT NULL,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    -- The file path in the store's media directory, as the gallery entry names it.
    file            text NOT NULL,
    sha256          bytea NOT NULL,
    bytes           bigint NOT NULL,
    mime            text,
    width           integer,
    height          integer,
    object_key      text NOT NULL,
    fetched_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, entry_id)
);
CREATE INDEX media_sha256 ON media (workspace_id, sha256);
