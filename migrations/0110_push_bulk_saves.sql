-- A bulk push's product saves, each written once when planned: the body sent to Magento and
-- how its outcome is judged. The job's checkpoint names only the proposals, so saving it after
-- every step stays small however many saves wait for Magento's consumer.
CREATE TABLE push_bulk_saves (
    job_id      uuid NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    proposal_id uuid NOT NULL,
    body        jsonb NOT NULL,
    judged_by   jsonb NOT NULL,
    PRIMARY KEY (job_id, proposal_id)
);
