-- The workspace archive (data portability) is an export of a whole workspace, not of a store.
ALTER TABLE exports ALTER COLUMN store_id DROP NOT NULL;
ALTER TABLE exports DROP CONSTRAINT exports_format_check;
ALTER TABLE exports ADD CONSTRAINT exports_format_check
    CHECK (format IN ('magento_csv', 'magento_zip', 'google_feed', 'workspace_archive'));
ALTER TABLE exports ADD CONSTRAINT exports_store_unless_archive
    CHECK ((store_id IS NULL) = (format = 'workspace_archive'));
CREATE INDEX exports_workspace ON exports (workspace_id, created_at DESC);
