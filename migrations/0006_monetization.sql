-- What people do with coins, on the ledger of 0005: payments through a
-- provider, gifts, paid tickets and subscriptions, payouts.

-- A payment intent OnAir made with its provider (Stripe, or the built-in
-- development provider), and what the ledger holds for it. The provider's
-- events move `status`, `amount_refunded` and the dispute; every event is
-- followed by a reconciliation that brings the ledger to what the intent
-- now deserves (coins_credited, fiat_booked), by adjusting transfers whose
-- ids derive from the intent: one intent credits once, whatever arrives.
CREATE TABLE payment_intents (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id),
    -- top_up | ticket | subscription
    purpose TEXT NOT NULL,
    -- JSON: what a ticket or subscription payment buys.
    target TEXT,
    package TEXT,
    coins BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- The provider's status as last heard (Stripe's names).
    status TEXT NOT NULL,
    amount_received BIGINT NOT NULL DEFAULT 0,
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    charge_id TEXT,
    -- The dispute's status (Stripe's names) and the time of its latest event.
    dispute_status TEXT,
    dispute_event_at BIGINT,
    -- Net coins the ledger gave for it, and net money booked in clearing.
    coins_credited BIGINT NOT NULL DEFAULT 0,
    fiat_booked BIGINT NOT NULL DEFAULT 0,
    adjustments INTEGER NOT NULL DEFAULT 0,
    -- The purchase a ticket or subscription payment made, once made.
    fulfilled TEXT,
    checkout_url TEXT,
    client_secret TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX payment_intents_user ON payment_intents (user_id, created_at);
CREATE INDEX payment_intents_charge ON payment_intents (charge_id);

-- Provider events already handled (duplicates are answered, not redone).
CREATE TABLE payment_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    intent_id TEXT,
    created BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);

-- The development provider's own books, as Stripe would keep them: its
-- intents and the events it still has to deliver.
CREATE TABLE dev_payment_intents (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL,
    charge_id TEXT,
    amount_refunded BIGINT NOT NULL DEFAULT 0,
    dispute_id TEXT,
    dispute_status TEXT,
    created BIGINT NOT NULL
);
CREATE INDEX dev_payment_intents_key ON dev_payment_intents (idempotency_key, created);
CREATE TABLE dev_payment_events (
    id TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX dev_payment_events_due ON dev_payment_events (delivered_at, next_attempt_at);

-- The gift catalogue (admins edit it). `animation` is a path under /static.
CREATE TABLE gifts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    coins BIGINT NOT NULL,
    animation TEXT NOT NULL,
    tier INTEGER NOT NULL,
    sort INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    updated_at BIGINT NOT NULL
);
INSERT INTO gifts (id, name, coins, animation, tier, sort, updated_at) VALUES
    ('rose', 'Rose', 1, '/static/gifts/rose.svg', 1, 10, 0),
    ('heart', 'Heart', 5, '/static/gifts/heart.svg', 1, 20, 0),
    ('coffee', 'Coffee', 10, '/static/gifts/coffee.svg', 1, 30, 0),
    ('star', 'Shooting star', 50, '/static/gifts/star.svg', 2, 40, 0),
    ('fireworks', 'Fireworks', 100, '/static/gifts/fireworks.svg', 2, 50, 0),
    ('rocket', 'Rocket', 500, '/static/gifts/rocket.svg', 3, 60, 0),
    ('crown', 'Crown', 1000, '/static/gifts/crown.svg', 3, 70, 0),
    ('galaxy', 'Galaxy', 5000, '/static/gifts/galaxy.svg', 4, 80, 0);

-- Tickets bought with coins: `status` held (coins on hold until the stream
-- goes live) | active | refunded; `hold_ids` names the ledger holds.
ALTER TABLE tickets ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE tickets ADD COLUMN purchase_id TEXT;
ALTER TABLE tickets ADD COLUMN hold_ids TEXT;
ALTER TABLE tickets ADD COLUMN refunded_at BIGINT;

-- Paid subscriptions: a plan and price, renewed by the scheduler from a
-- ledger hold placed before the period ends, until cancelled.
ALTER TABLE subscriptions ADD COLUMN plan TEXT;
ALTER TABLE subscriptions ADD COLUMN price BIGINT;
ALTER TABLE subscriptions ADD COLUMN auto_renew INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN renewal_hold_ids TEXT;
ALTER TABLE subscriptions ADD COLUMN periods INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subscriptions_renewal ON subscriptions (auto_renew, expires_at);

-- A creator's request to cash out earnings: a ledger hold until an admin
-- marks it paid (posted) or rejects it (voided).
CREATE TABLE payouts (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    amount BIGINT NOT NULL,
    hold_id TEXT NOT NULL UNIQUE,
    -- pending | paid | rejected
    status TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by BIGINT
);
CREATE INDEX payouts_user ON payouts (user_id, id);
CREATE INDEX payouts_status ON payouts (status, id)
