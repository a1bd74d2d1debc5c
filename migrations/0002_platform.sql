-- The platform's foundation: accounts, streams, chat, analytics, webhooks.
--
-- Portable SQL: the same statements run on SQLite and PostgreSQL except the
-- integer primary keys (INTEGER PRIMARY KEY here, BIGSERIAL there). Times are
-- Unix milliseconds in BIGINT columns; flags are INTEGER 0/1; money (coins)
-- is an integer. Commerce and monetization tables come in later migrations and
-- reference users(id) and streams(id).

-- People. A host is a user whose role allows publishing; the username is
-- also the channel name (/watch/{username}).
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT UNIQUE,
    display_name TEXT NOT NULL,
    -- Argon2id PHC string; NULL for accounts made by the CLI (no login until set).
    password_hash TEXT,
    role TEXT NOT NULL DEFAULT 'viewer',
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

-- One row per login. Refresh tokens rotate inside it; access tokens name it
-- (the JWT `sid`), so logging out ends both.
CREATE TABLE auth_sessions (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    user_agent TEXT,
    ip TEXT
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);

-- Every refresh token ever issued (hashed). A used one presented again means
-- it leaked: its whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id BIGINT NOT NULL REFERENCES auth_sessions(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);

-- Hosts' CLI-era keys become accounts: one host per stream name.
INSERT INTO users (username, display_name, role, created_at)
    SELECT lower(stream), MIN(stream), 'host', MIN(created_at) FROM stream_keys GROUP BY lower(stream);

-- Stream keys now belong to a host, not to a stream name.
CREATE TABLE host_stream_keys (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label TEXT NOT NULL DEFAULT 'default',
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX host_stream_keys_user ON host_stream_keys (user_id);
INSERT INTO host_stream_keys (user_id, label, key_hash, key_prefix, created_at, revoked_at)
    SELECT u.id, 'default', k.key_hash, k.key_prefix, k.created_at, k.revoked_at
    FROM stream_keys k JOIN users u ON u.username = lower(k.stream);
DROP TABLE stream_keys;

-- A broadcast. Recurring broadcasts are a series: one row per occurrence,
-- the next one made when the current one goes live, ends or is cancelled.
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    host_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    series_id BIGINT,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    thumbnail_url TEXT,
    -- public | subscribers | ticketed
    visibility TEXT NOT NULL DEFAULT 'public',
    ticket_price BIGINT,
    -- scheduled | live | ended | archived | cancelled | error
    state TEXT NOT NULL,
    -- While live: waiting (started by API, no media yet) | receiving | reconnecting
    media_state TEXT,
    scheduled_at BIGINT,
    -- Recurrence of the series: daily | weekly, days as 'mon,wed', local time 'HH:MM', IANA zone.
    recur_freq TEXT,
    recur_days TEXT,
    recur_time TEXT,
    timezone TEXT,
    recur_until BIGINT,
    started_at BIGINT,
    media_started_at BIGINT,
    ended_at BIGINT,
    end_reason TEXT,
    error TEXT,
    peak_viewers BIGINT NOT NULL DEFAULT 0,
    likes BIGINT NOT NULL DEFAULT 0,
    chat_messages BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX streams_host ON streams (host_id, state);
CREATE INDEX streams_state ON streams (state, scheduled_at);
-- One live stream per host at a time, enforced by the database itself.
CREATE UNIQUE INDEX streams_one_live_per_host ON streams (host_id) WHERE state = 'live';

CREATE TABLE reminders (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    notified_at BIGINT,
    PRIMARY KEY (stream_id, user_id)
);

CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    host_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (follower_id, host_id)
);
CREATE INDEX follows_host ON follows (host_id);

-- Subscriptions to a host. `source` is 'gift' (granted by the host) until the
-- payment side adds 'purchase'.
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    host_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tier INTEGER NOT NULL DEFAULT 1,
    source TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    cancelled_at BIGINT
);
CREATE INDEX subscriptions_user_host ON subscriptions (user_id, host_id, expires_at);

-- Tickets to a ticketed stream (price in coins; 0 for a host's gift).
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    price BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (stream_id, user_id)
);

-- A host's chat moderators (global moderators and admins need no row).
CREATE TABLE channel_moderators (
    host_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, user_id)
);

-- Chat rules of a host's channel (every stream of theirs).
CREATE TABLE chat_settings (
    host_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    slow_mode_seconds INTEGER NOT NULL DEFAULT 0,
    subscribers_only INTEGER NOT NULL DEFAULT 0,
    -- NULL: off; N: only users following for at least N minutes.
    followers_only_minutes INTEGER,
    -- One word or phrase a line.
    banned_words TEXT NOT NULL DEFAULT '',
    updated_at BIGINT NOT NULL
);

-- Who may not chat in a channel now: banned (no end) or timed out until a time.
CREATE TABLE chat_restrictions (
    host_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    banned INTEGER NOT NULL DEFAULT 0,
    timeout_until BIGINT,
    reason TEXT NOT NULL DEFAULT '',
    by_user BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (host_id, user_id)
);

-- What moderators did, for the record.
CREATE TABLE moderation_log (
    id INTEGER PRIMARY KEY,
    host_id BIGINT NOT NULL,
    stream_id BIGINT,
    actor_id BIGINT NOT NULL,
    target_user_id BIGINT,
    message_id BIGINT,
    action TEXT NOT NULL,
    seconds BIGINT,
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX moderation_log_host ON moderation_log (host_id, id);

-- kind: chat | reaction | system | product_highlight. `data` is JSON
-- (a product highlight's product). Deleted messages stay, marked.
CREATE TABLE chat_messages (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    data TEXT,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    deleted_by BIGINT
);
CREATE INDEX chat_messages_stream ON chat_messages (stream_id, id);

-- One row per viewer per continuous stay (any number of tabs and WebRTC
-- sessions of the same viewer count once). Load-test clients are recorded
-- but flagged, and left out of every public figure.
CREATE TABLE viewer_sessions (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    viewer_key TEXT NOT NULL,
    user_id BIGINT,
    device TEXT NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '',
    webrtc INTEGER NOT NULL DEFAULT 0,
    load_test INTEGER NOT NULL DEFAULT 0,
    joined_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    left_at BIGINT
);
CREATE INDEX viewer_sessions_stream ON viewer_sessions (stream_id, joined_at);

-- Outbound webhooks (signed, retried until delivered or given up).
CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- Comma-separated event names, or '*'.
    events TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);
CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id BIGINT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    failed_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivered_at, failed_at, next_attempt_at);

-- Server secrets and other settings made on first run.
CREATE TABLE server_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
