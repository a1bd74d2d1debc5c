-- Stream keys authorise WHIP publishing. Only a hash of the key is stored;
-- the key itself is shown once, when created. Accounts (owner_id) come later.
CREATE TABLE stream_keys (
    id INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX stream_keys_stream ON stream_keys (stream)
