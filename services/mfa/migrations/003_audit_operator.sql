-- Runs with search_path set to the mfa schema.

-- Who did an admin action (ssoctl's --operator, the support user's name), and why.
ALTER TABLE audit_event
    ADD COLUMN operator text,
    ADD COLUMN reason text;
