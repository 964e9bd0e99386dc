-- Whether the store's asynchronous bulk API saves each operation in the store view of its URL
-- (NULL until a push's canary told; false with Magento's MySQL queue, which runs every
-- operation in the default store view), and why, with the fix.
ALTER TABLE stores ADD COLUMN bulk_keeps_scope boolean;
ALTER TABLE stores ADD COLUMN bulk_scope_detail text;
