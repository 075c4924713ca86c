-- Runs with search_path set to the mfa schema.

-- A set-up in progress belongs to the browser that started it (the step token's `bnd`): a
-- second browser with the password gets a secret of its own, never a copy of the first one's.
-- Confirming one set-up ends them all (MfaStore.confirm_enrollment).
DELETE FROM pending_enrollment;
ALTER TABLE pending_enrollment
    ADD COLUMN browser text NOT NULL,
    DROP CONSTRAINT pending_enrollment_pkey,
    ADD PRIMARY KEY (user_id, browser);
