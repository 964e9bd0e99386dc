-- A running job is leased by one worker; an expired lease means its worker died and the job
-- may be taken over (resuming from its checkpoint).
ALTER TABLE job_runs
    ADD COLUMN lease_owner text,
    ADD COLUMN lease_until timestamptz;
CREATE INDEX job_runs_expired_leases ON job_runs (lease_until) WHERE status = 'running';
