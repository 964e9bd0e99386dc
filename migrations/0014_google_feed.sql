-- Google Merchant Center feeds are exports too.
ALTER TABLE exports DROP CONSTRAINT exports_format_check;
ALTER TABLE exports ADD CONSTRAINT exports_format_check CHECK (format IN ('magento_csv', 'google_feed'));
