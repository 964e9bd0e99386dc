-- Which signature base-string rules a store verifies with: 'laminas' (Magento up to 2.4.6) or
-- '2.4.7+'; learned on connect or from the first call the other rules got accepted; NULL until known.
ALTER TABLE stores ADD COLUMN signature_form text CHECK (signature_form IN ('laminas', '2.4.7+'));
