-- Hardening (issue 10).

-- The webhook sender works per endpoint (one worker each: a dead endpoint
-- holds up only itself), and prunes finished deliveries by age.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (webhook_id, delivered_at, failed_at, next_attempt_at);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries (created_at);
