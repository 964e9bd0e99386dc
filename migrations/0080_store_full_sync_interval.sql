-- Incremental syncs find products by `updated_at`, which Magento's "Update attributes" mass
-- action does not move (Catalog/Model/ResourceModel/Product/Action.php, updateAttributes). A
-- pipeline's sync step runs a full sync once the last full one is older than this many days.
ALTER TABLE stores
    ADD COLUMN full_sync_every_days integer NOT NULL DEFAULT 7
        CHECK (full_sync_every_days BETWEEN 1 AND 365),
    ADD COLUMN last_full_sync_at timestamptz;

-- A store synced before this column existed may never have had a full sync; its first
-- pipeline sync finds out by running one.
