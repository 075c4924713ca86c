-- Runs with search_path set to the mfa schema.

-- A refused replay of a consumed step token is audited once, not once per request
-- (services/common/step_tokens.py, ConsumedStepTokens.first_replay).
ALTER TABLE consumed_step_token ADD COLUMN replay_reported boolean NOT NULL DEFAULT false;
