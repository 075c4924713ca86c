-- Support staff are accounts with the role 'support' (the support desk lets only them in).
ALTER TABLE users
    ADD COLUMN role text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'support'));

-- Finding a customer by the start of their name (the support desk, ssoctl).
CREATE INDEX users_username_key_prefix ON users (username_key text_pattern_ops);

-- Who did an admin action (ssoctl's --operator, the support user's name), and why.
ALTER TABLE audit_event
    ADD COLUMN operator text,
    ADD COLUMN reason text;
