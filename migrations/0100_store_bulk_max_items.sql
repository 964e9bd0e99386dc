-- The most product saves a bulk push puts in one bulk (Magento schedules every item within the
-- submitting request).
ALTER TABLE stores ADD COLUMN bulk_max_items integer NOT NULL DEFAULT 500
    CHECK (bulk_max_items BETWEEN 1 AND 5000);
