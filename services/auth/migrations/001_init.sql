CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username text NOT NULL,
    -- Sign-in compares names case-insensitively: 'Alice' and 'alice' are one account.
    username_key text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
    client_id text PRIMARY KEY,
    secret_hash text NOT NULL,
    redirect_uris text[] NOT NULL,
    post_logout_redirect_uris text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE authorization_code (
    code_hash text PRIMARY KEY,
    client_id text NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    redirect_uri text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    username text NOT NULL,
    sid text NOT NULL,
    nonce text,
    scope text NOT NULL,
    code_challenge text NOT NULL,
    auth_time bigint NOT NULL,
    amr text[] NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    -- The access token the exchange issued, so a replayed code can revoke it.
    access_token_jti text
);
CREATE INDEX authorization_code_expires ON authorization_code (expires_at);

CREATE TABLE revoked_token (
    jti text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE TABLE consumed_step_token (
    jti text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX consumed_step_token_expires ON consumed_step_token (expires_at);
