-- Each content attribute's scope in the store, as GET /V1/products/attributes/{code} reports it
-- ({"description": "store", "material": "global", …}): read by every sync, and by a push or dry
-- run for the attributes not known yet. A store-view value of a global attribute is refused.
ALTER TABLE stores ADD COLUMN attribute_scopes jsonb NOT NULL DEFAULT '{}'::jsonb;
