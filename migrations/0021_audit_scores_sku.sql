-- "Lowest score first, then SKU" is read straight from one index: the SKU is copied beside the
-- score (a product's SKU never changes; it is how the store and catalogd name it). Sorting the
-- whole run by (score, SKU) on every page cost ~150 ms at 100,000 products.
ALTER TABLE audit_scores ADD COLUMN sku text;
UPDATE audit_scores a SET sku = p.sku FROM products p WHERE p.id = a.product_id;
ALTER TABLE audit_scores ALTER COLUMN sku SET NOT NULL;
DROP INDEX audit_scores_order;
CREATE INDEX audit_scores_order ON audit_scores (run_id, score, sku);
