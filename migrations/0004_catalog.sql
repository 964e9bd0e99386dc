-- Products, their immutable versions per scope, and what is live now.

ALTER TABLE stores
    ADD COLUMN sync_watermark timestamptz,
    ADD COLUMN last_sync_job uuid,
    ADD COLUMN last_synced_at timestamptz,
    -- Attribute codes beyond the standard ones that are treated as editable content.
    ADD COLUMN content_attributes text[] NOT NULL DEFAULT '{}';

CREATE TABLE products (
    id                  uuid PRIMARY KEY,
    workspace_id        uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    store_id            uuid NOT NULL REFERENCES stores(id) ON DELETE CASCADE,
    sku                 text NOT NULL,
    remote_id           bigint,
    type_id             text,
    -- The default-scope name, kept beside the versions for listing and search.
    name                text,
    -- Non-content data as last pulled (price, status, visibility, categories, other attributes).
    attributes          jsonb NOT NULL DEFAULT '{}'::jsonb,
    attributes_hash     bytea,
    -- Parse warnings of the last pull (odd values Magento sent).
    warnings            jsonb NOT NULL DEFAULT '[]'::jsonb,
    remote_updated_at   timestamptz,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_job       uuid,
    -- Set when a full sync no longer finds the product; it is never silently dropped.
    removed_at          timestamptz,
    UNIQUE (store_id, sku)
);
CREATE INDEX products_store_id ON products (store_id, id);
CREATE INDEX products_store_remote ON products (store_id, remote_id);

-- Every state of every product's content in one scope: 'all' (Magento's default values) or a
-- store view code. Store-view versions hold only what differs from the default (overrides);
-- everything else is inherited. Rows are never updated except for their review state.
CREATE TABLE product_versions (
    id              uuid PRIMARY KEY,
    product_id      uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    store_view      text NOT NULL,
    content         jsonb NOT NULL,
    content_hash    bytea NOT NULL,
    parent_id       uuid REFERENCES product_versions(id) ON DELETE SET NULL,
    origin          text NOT NULL CHECK (origin IN ('pull', 'ai', 'human', 'rollback', 'push')),
    state           text NOT NULL CHECK (state IN ('live', 'draft', 'proposed', 'approved', 'rejected',
                                                   'pushed', 'superseded', 'conflict', 'failed')),
    author_user_id  uuid REFERENCES users(id) ON DELETE SET NULL,
    job_id          uuid,
    note            text,
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    decided_by      uuid REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX product_versions_product ON product_versions (product_id, store_view, id DESC);
CREATE INDEX product_versions_open ON product_versions (workspace_id, state) WHERE state IN ('proposed', 'approved', 'conflict');

-- The live version of each product in each scope: what the store shows now, as last pulled or pushed.
CREATE TABLE product_live (
    product_id      uuid NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    store_view      text NOT NULL,
    version_id      uuid NOT NULL REFERENCES product_versions(id),
    content_hash    bytea NOT NULL,
    PRIMARY KEY (product_id, store_view)
);

CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX products_search_trgm ON products USING gin ((lower(sku) || ' ' || lower(coalesce(name, ''))) gin_trgm_ops);
