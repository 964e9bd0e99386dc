-- Which products a full sync has seen, so the ones it did not can be marked removed without
-- rewriting every product row on every sync.
CREATE TABLE sync_seen (
    job_id      uuid NOT NULL,
    product_id  uuid NOT NULL,
    PRIMARY KEY (job_id, product_id)
);

-- Room on each page for updates that stay on it (HOT), when a product's data changes.
ALTER TABLE products SET (fillfactor = 90);
