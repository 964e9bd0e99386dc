-- API permissions a store's integration lacks (Magento's 401 "The consumer isn't authorized to
-- access %resources."): one entry per resource, {"resource", "step", "detail", "since"}, kept
-- until a job of that step succeeds again or the store is authorised anew.
ALTER TABLE stores ADD COLUMN missing_permissions jsonb NOT NULL DEFAULT '[]'::jsonb;
