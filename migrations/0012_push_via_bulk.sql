-- Whether pushes to this store go through Magento's asynchronous bulk API.
ALTER TABLE stores ADD COLUMN push_via_bulk boolean NOT NULL DEFAULT false;
