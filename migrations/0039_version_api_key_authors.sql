-- Changes made with an API key name the key as their author, so four-eyes review can compare
-- the approver with it (before, such proposals had no author at all). The key was already
-- written into `meta`; open proposals take it from there.
ALTER TABLE product_versions ADD COLUMN author_api_key_id uuid REFERENCES api_keys(id) ON DELETE SET NULL;
CREATE INDEX product_versions_author_api_key ON product_versions (author_api_key_id)
    WHERE author_api_key_id IS NOT NULL;
UPDATE product_versions v SET author_api_key_id = (v.meta ->> 'api_key_id')::uuid
WHERE v.state = 'proposed' AND v.meta ? 'api_key_id'
  AND EXISTS (SELECT 1 FROM api_keys k WHERE k.id::text = v.meta ->> 'api_key_id');
