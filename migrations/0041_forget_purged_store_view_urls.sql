-- The retention sweep forgot a disconnected store's URL but kept each store view's base and
-- media URL, which are the store's URL too. Stores swept before the sweep forgot them lose
-- them now.
UPDATE stores SET store_views = COALESCE((
    SELECT jsonb_agg(v || '{"base_url": null, "base_media_url": null}' ORDER BY n)
    FROM jsonb_array_elements(store_views) WITH ORDINALITY e(v, n)), '[]'::jsonb)
WHERE connection_purged_at IS NOT NULL;
