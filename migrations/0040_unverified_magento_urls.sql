-- The store URL a Magento callback reports is trusted (the identity link redirects to its host)
-- only once the token exchange that follows has succeeded. Stores that never completed one
-- forget the URL an unverified post left behind.
UPDATE stores SET magento_store_url = NULL WHERE status IN ('pending', 'failed');
