-- Indexes for reading products and their versions (list filters, open proposals, history).

-- Versions waiting for or past a review decision. Pulls write only 'live' and 'superseded'
-- rows, which this index leaves out: it stays small next to the history and costs a sync
-- nothing. It answers the list's `state` filter, the open-proposal counts, the detail's
-- latest proposal per scope, and the search for proposals a new one supersedes.
CREATE INDEX product_versions_review ON product_versions (product_id, state, store_view, id DESC)
    WHERE state IN ('draft', 'proposed', 'approved', 'rejected', 'pushed', 'conflict', 'failed');

-- Listing removed products walks only the removed ones.
CREATE INDEX products_store_removed ON products (store_id, sku) WHERE removed_at IS NOT NULL;

-- What the list's `missing` filter looks for, per version, among the standard content fields:
-- in the default scope, the fields it leaves absent or empty; in a store view, the fields it
-- overrides with an empty value (anything else a view inherits). Only the content decides, so
-- the function is immutable and can be indexed, and ANALYZE keeps statistics of how common
-- each gap is, so the planner can tell a rare gap (start from this index) from a common one
-- (walk the SKU order). A single expression, so PostgreSQL inlines it: checking a row costs a
-- few field lookups, not a function call.
CREATE FUNCTION catalog_content_gaps(store_view text, content jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_remove(ARRAY[
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'description', '') = ''
                       ELSE content -> 'fields' ->> 'description' = '' END THEN 'description' END,
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'meta_description', '') = ''
                       ELSE content -> 'fields' ->> 'meta_description' = '' END THEN 'meta_description' END,
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'meta_keyword', '') = ''
                       ELSE content -> 'fields' ->> 'meta_keyword' = '' END THEN 'meta_keyword' END,
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'meta_title', '') = ''
                       ELSE content -> 'fields' ->> 'meta_title' = '' END THEN 'meta_title' END,
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'name', '') = ''
                       ELSE content -> 'fields' ->> 'name' = '' END THEN 'name' END,
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'short_description', '') = ''
                       ELSE content -> 'fields' ->> 'short_description' = '' END THEN 'short_description' END,
        CASE WHEN CASE WHEN store_view = 'all' THEN coalesce(content -> 'fields' ->> 'url_key', '') = ''
                       ELSE content -> 'fields' ->> 'url_key' = '' END THEN 'url_key' END
    ]::text[], NULL)
$$;
CREATE INDEX product_versions_gaps ON product_versions USING gin (catalog_content_gaps(store_view, content));

-- From a version to the products it is live for (the `missing` filter starting from the gaps).
CREATE INDEX product_live_version ON product_live (version_id);
