-- Runs with search_path set to the mfa schema.

-- Wrong codes are counted by auth now (docs/architecture.md, "Sign-in throttling"), on every
-- replica at once; mfa's own counters go.
ALTER TABLE totp_credential
    DROP COLUMN failed_attempts,
    DROP COLUMN locked_until;

-- Every code, set-up and reset, with its outcome. Never a code, secret or token.
CREATE TABLE audit_event (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    user_id text,
    username text,
    event text NOT NULL,
    outcome text NOT NULL,
    ip text,
    user_agent text
);

CREATE INDEX audit_event_user_id_at ON audit_event (user_id, at);
