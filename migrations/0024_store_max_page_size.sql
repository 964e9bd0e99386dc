-- The largest page a store answers (its webapi/validation/maximum_page_size), learned from its
-- 400 "Maximum SearchCriteria pageSize is %max"; NULL while no page was refused.
ALTER TABLE stores ADD COLUMN max_page_size integer CHECK (max_page_size > 0);
