-- Runs with search_path set to the mfa schema.

-- A code that matched a step ahead of ours earned a clock-skew hint and was refused. Were it
-- accepted when its step comes, each guess would cover 21 steps instead of 3: so its step is
-- kept here and never accepted (services/mfa/enrollment.py, Enrollment.verify).
ALTER TABLE totp_credential ADD COLUMN hinted_steps bigint[] NOT NULL DEFAULT '{}';
