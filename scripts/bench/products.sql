-- Fills one store of workspace :'ws' with :n synthetic products, shaped like a synced catalog:
-- every product live in the default scope and in the store views fr and de (fr with a few
-- overrides, de mostly inheriting), half with an older superseded pull, and a few percent
-- with proposals. Fields go missing at known rates:
--   meta_description: absent for every 10th product, empty for every 37th, overridden empty in de for every 50th
--   short_description: absent for one product in 1000
--   material (a content attribute): absent for one product in 1000
\set ON_ERROR_STOP on

CREATE OR REPLACE FUNCTION pg_temp.uuid_at(ts timestamptz) RETURNS uuid LANGUAGE sql AS $$
    -- Time-ordered like the daemon's v7 ids: milliseconds first, then random bits.
    SELECT encode(overlay(uuid_send(gen_random_uuid())
                          PLACING substring(int8send((extract(epoch FROM ts) * 1000)::bigint) FROM 3)
                          FROM 1 FOR 6), 'hex')::uuid
$$;

CREATE OR REPLACE FUNCTION pg_temp.sha256(j jsonb) RETURNS bytea LANGUAGE sql AS $$
    SELECT sha256(convert_to(j::text, 'UTF8'))
$$;

INSERT INTO stores (id, workspace_id, name, base_url, status, link_token_hash, link_token, store_views, content_attributes)
VALUES (:'store', :'ws', 'Bench shop', 'https://bench.example.com/', 'active',
        sha256(convert_to(:'store', 'UTF8')), '\x00',
        '[{"code":"fr","id":2,"name":"French","website_id":1,"locale":"fr_FR","base_url":null,"base_media_url":null},
          {"code":"de","id":3,"name":"German","website_id":1,"locale":"de_DE","base_url":null,"base_media_url":null}]',
        '{material}');

CREATE TEMP TABLE words AS SELECT
    ARRAY['Red','Blue','Green','Black','White','Grey','Navy','Olive','Sand','Rose'] AS colours,
    ARRAY['cotton','wool','linen','silk','denim','fleece','hemp','bamboo'] AS materials,
    ARRAY['tee','shirt','hoodie','cap','sock','scarf','jacket','mug','bag','blanket','lamp'] AS kinds;

CREATE TEMP TABLE gen AS
SELECT i,
       pg_temp.uuid_at(now() - interval '30 days' + i * interval '1 ms') AS product_id,
       'SKU-' || lpad(i::text, 6, '0') AS sku,
       w.colours[i % 10 + 1] || ' ' || w.materials[i % 8 + 1] || ' ' || w.kinds[i % 11 + 1] || ' ' || i AS name,
       w.materials[i % 8 + 1] AS material
FROM generate_series(1, :n) AS i, words w;

INSERT INTO products (id, workspace_id, store_id, sku, remote_id, type_id, name, attributes, remote_updated_at, first_seen_at, removed_at)
SELECT product_id, :'ws', :'store', sku, i, 'simple', name,
       jsonb_build_object('price', 10 + i % 90, 'status', 1, 'visibility', 4, 'category_ids', jsonb_build_array(i % 40)),
       now() - (i % 1000) * interval '1 hour', now() - interval '30 days',
       CASE WHEN i % 500 = 0 THEN now() END
FROM gen;

CREATE TEMP TABLE contents AS
SELECT g.*,
       jsonb_build_object('fields',
           jsonb_strip_nulls(jsonb_build_object(
               'name', name,
               'description', '<p>Our ' || name || ' is made from soft ' || material || ' and finished by hand. '
                              || 'It keeps its shape wash after wash and comes in ten colours.</p><ul><li>Care: 30°C</li><li>Made in Portugal</li></ul>',
               'short_description', CASE WHEN i % 1000 = 1 THEN NULL ELSE 'A ' || lower(name) || ' for every day.' END,
               'meta_title', name || ' | Bench shop',
               'meta_description', CASE WHEN i % 10 = 0 THEN NULL WHEN i % 37 = 0 THEN '' ELSE 'Buy the ' || name || ' online.' END,
               'url_key', lower(replace(name, ' ', '-')),
               'material', CASE WHEN i % 1000 = 1 THEN NULL ELSE material END)),
           'media', jsonb_build_array(
               jsonb_build_object('entry_id', i * 2, 'file', '/s/k/' || sku || '-1.jpg', 'label', name, 'position', 1,
                                  'disabled', false, 'roles', jsonb_build_array('image', 'small_image', 'thumbnail')),
               jsonb_build_object('entry_id', i * 2 + 1, 'file', '/s/k/' || sku || '-2.jpg', 'label', NULL, 'position', 2,
                                  'disabled', false, 'roles', jsonb_build_array()))) AS default_content,
       jsonb_build_object('fields', jsonb_strip_nulls(jsonb_build_object(
           'name', 'FR ' || name,
           'meta_description', CASE WHEN i % 3 = 0 THEN 'Achetez ' || name || ' en ligne.' END))) AS fr_content,
       jsonb_build_object('fields', CASE WHEN i % 50 = 0 THEN '{"meta_description": ""}'::jsonb ELSE '{}'::jsonb END) AS de_content
FROM gen g;

-- An older pull of every other product, superseded by the live one.
INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash, origin, state, created_at)
SELECT pg_temp.uuid_at(now() - interval '20 days' + i * interval '1 ms'), product_id, :'ws', 'all',
       jsonb_set(default_content, '{fields,name}', to_jsonb(name || ' (old)')),
       pg_temp.sha256(default_content || '{"old":1}'), 'pull', 'superseded', now() - interval '20 days'
FROM contents WHERE i % 2 = 0;

CREATE TEMP TABLE live AS
SELECT product_id, scope, pg_temp.uuid_at(now() - interval '10 days' + i * interval '1 ms') AS version_id, content
FROM contents,
     LATERAL (VALUES ('all', default_content), ('fr', fr_content), ('de', de_content)) AS s(scope, content);

INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash, parent_id, origin, state, created_at)
SELECT l.version_id, l.product_id, :'ws', l.scope, l.content, pg_temp.sha256(l.content),
       (SELECT o.id FROM product_versions o WHERE o.product_id = l.product_id AND o.store_view = l.scope),
       'pull', 'live', now() - interval '10 days'
FROM live l;

INSERT INTO product_live (product_id, store_view, version_id, content_hash)
SELECT product_id, scope, version_id, pg_temp.sha256(content) FROM live;

-- Proposals: AI in fr for 2 %, approved human edits for 0.5 %, rejected AI for 1 %.
INSERT INTO product_versions (id, product_id, workspace_id, store_view, content, content_hash, parent_id, origin, state, created_at)
SELECT pg_temp.uuid_at(now() - interval '1 day' + c.i * interval '1 ms'), c.product_id, :'ws', p.scope,
       p.content, pg_temp.sha256(p.content), l.version_id, p.origin, p.state, now() - interval '1 day'
FROM contents c
CROSS JOIN LATERAL (VALUES
    ('fr', jsonb_set(c.fr_content, '{fields,meta_description}', to_jsonb('Le ' || c.name || ', doux et durable.')), 'ai', 'proposed', c.i % 50 = 1),
    ('all', jsonb_set(c.default_content, '{fields,meta_title}', to_jsonb(c.name || ' – hand finished')), 'human', 'approved', c.i % 200 = 7),
    ('all', jsonb_set(c.default_content, '{fields,meta_title}', '"Nope"'), 'ai', 'rejected', c.i % 100 = 3)
) AS p(scope, content, origin, state, wanted)
JOIN live l ON l.product_id = c.product_id AND l.scope = p.scope
WHERE p.wanted;

ANALYZE products;
ANALYZE product_versions;
ANALYZE product_live;
