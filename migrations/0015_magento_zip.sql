-- The CSV with its pictures, as one ZIP.
ALTER TABLE exports DROP CONSTRAINT exports_format_check;
ALTER TABLE exports ADD CONSTRAINT exports_format_check CHECK (format IN ('magento_csv', 'magento_zip', 'google_feed'));
