-- Runs with search_path set to the mfa schema.

-- Ten single-use recovery codes per user (services/mfa/recovery_codes.py). Only an HMAC-SHA-256
-- of each code (keyed, bound to the user) is stored; a code is spent by setting used_at, once.
CREATE TABLE recovery_code (
    user_id text NOT NULL,
    code_hash bytea NOT NULL,
    created_at timestamptz NOT NULL,
    used_at timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- A set just made at the first set-up, kept for its one display: sealed with the secret box
-- (AES-256-GCM, bound to the user and the sign-in step), deleted when the customer goes on,
-- and worth nothing after the step's expiry.
CREATE TABLE recovery_code_display (
    user_id text NOT NULL,
    step_jti text NOT NULL,
    sealed_codes bytea NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, step_jti)
);

CREATE INDEX recovery_code_display_expires_at ON recovery_code_display (expires_at);
