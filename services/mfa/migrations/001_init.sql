-- Runs with search_path set to the mfa schema.

-- A user's bound authenticator. The secret is sealed with AES-256-GCM (nonce || ciphertext),
-- with the user_id as associated data, so a row cannot be copied onto another user.
CREATE TABLE totp_credential (
    user_id text PRIMARY KEY,
    secret_ciphertext bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- The last time step a code was accepted for; a code is good once per user and step.
    last_used_step bigint,
    -- Wrong codes in a row, and the pause they earned (see Settings.max_failed_attempts).
    failed_attempts integer NOT NULL DEFAULT 0,
    locked_until timestamptz
);

-- A set-up in progress: the same secret (and QR) is shown until it is confirmed or expires.
CREATE TABLE pending_enrollment (
    user_id text PRIMARY KEY,
    secret_ciphertext bytea NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Step tokens whose step succeeded here, so none is used twice.
CREATE TABLE consumed_step_token (
    jti text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX consumed_step_token_expires_at ON consumed_step_token (expires_at);
