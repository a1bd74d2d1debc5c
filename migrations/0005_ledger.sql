-- The money ledger (after TigerBeetle's model) and idempotency keys.
--
-- Accounts hold integer balances on one ledger (COIN, or a currency such
-- as USD in minor units) as four running sums; transfers are immutable rows
-- that move an amount from a debit account to a credit account on the same
-- ledger. A mistake is corrected by another transfer, never by an edit:
-- nothing here is ever updated except the accounts' running sums, and
-- nothing is ever deleted except expired idempotency keys and the index of
-- open pending transfers.

-- An account. Its id is derived from what it is ('u42:wallet:COIN',
-- 'platform:revenue:COIN'), so every writer names the same account the same
-- way without a lookup. owner_id 0 is the platform.
CREATE TABLE ledger_accounts (
    id TEXT PRIMARY KEY,
    owner_id BIGINT NOT NULL,
    code TEXT NOT NULL,
    ledger TEXT NOT NULL,
    -- Balance constraints, checked by every transfer (TigerBeetle's flags).
    debits_must_not_exceed_credits INTEGER NOT NULL DEFAULT 0,
    credits_must_not_exceed_debits INTEGER NOT NULL DEFAULT 0,
    debits_pending BIGINT NOT NULL DEFAULT 0,
    debits_posted BIGINT NOT NULL DEFAULT 0,
    credits_pending BIGINT NOT NULL DEFAULT 0,
    credits_posted BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (owner_id, code, ledger)
);

-- A transfer. `id` is chosen by the writer (derived from an idempotency
-- key, a payment intent, a pending transfer...) and makes it idempotent.
-- phase: single (posted at once) | pending (a hold) | post | void; a post or
-- void names its pending transfer in pending_id, which is unique: a hold
-- resolves at most once. `timestamp` (ns) is unique and increases in commit
-- order. *_balance_after: the account's posted balance (credits - debits)
-- after this transfer, so a statement reconciles line by line.
CREATE TABLE ledger_transfers (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    debit_account_id TEXT NOT NULL REFERENCES ledger_accounts(id),
    credit_account_id TEXT NOT NULL REFERENCES ledger_accounts(id),
    amount BIGINT NOT NULL,
    ledger TEXT NOT NULL,
    code TEXT NOT NULL,
    phase TEXT NOT NULL,
    pending_id TEXT,
    timeout_at BIGINT,
    linked INTEGER NOT NULL DEFAULT 0,
    user_id BIGINT,
    stream_id BIGINT,
    reference TEXT,
    debit_balance_after BIGINT NOT NULL,
    credit_balance_after BIGINT NOT NULL,
    timestamp BIGINT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_transfers_resolves_once ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, seq);
CREATE INDEX ledger_transfers_stream ON ledger_transfers (stream_id, code);
CREATE INDEX ledger_transfers_reference ON ledger_transfers (reference);

-- Pending transfers not yet posted or voided (an index for the sweeper; the
-- invariant check proves it matches the transfers).
CREATE TABLE ledger_pending (
    transfer_id TEXT PRIMARY KEY REFERENCES ledger_transfers(id),
    timeout_at BIGINT
);
CREATE INDEX ledger_pending_timeout ON ledger_pending (timeout_at);

-- Stripe's idempotency keys: the first response to a (user, key) is stored
-- with a fingerprint of the request and replayed for 24 hours.
CREATE TABLE idempotency_keys (
    user_id BIGINT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)
