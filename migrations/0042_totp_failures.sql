-- Wrong two-factor codes per account within the current hour (from the first one), so
-- guessing codes is limited however many processes answer logins.
ALTER TABLE users
    ADD COLUMN totp_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN totp_failures_since timestamptz;
