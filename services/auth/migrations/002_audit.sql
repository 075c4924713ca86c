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
CREATE INDEX audit_event_user ON audit_event (user_id, at);
