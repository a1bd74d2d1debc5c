-- The admin console and audience geography.

-- Every admin action, for the record: who did what to what, and why.
CREATE TABLE admin_audit (
    id INTEGER PRIMARY KEY,
    actor_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    -- user | stream | report | webhook
    target_type TEXT NOT NULL,
    target_id BIGINT,
    reason TEXT NOT NULL DEFAULT '',
    -- JSON object: what changed.
    detail TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL
);
CREATE INDEX admin_audit_time ON admin_audit (id);
CREATE INDEX admin_audit_actor ON admin_audit (actor_id, id);

-- Viewers' reports of a stream, queued for admins.
-- state: open | resolved | dismissed.
CREATE TABLE stream_reports (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    reporter_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    created_at BIGINT NOT NULL,
    resolved_at BIGINT,
    resolved_by BIGINT,
    resolution TEXT NOT NULL DEFAULT ''
);
CREATE INDEX stream_reports_state ON stream_reports (state, id);
-- One open report per reporter and stream.
CREATE UNIQUE INDEX stream_reports_one_open ON stream_reports (stream_id, reporter_id) WHERE state = 'open';

-- Hosts waiting for (or refused) an admin's approval to stream, when the
-- server requires it (--host-approval). No row: nothing to approve.
-- state: pending | approved | rejected.
CREATE TABLE host_approvals (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by BIGINT,
    note TEXT NOT NULL DEFAULT ''
);

-- Replays an admin took down: unlisted for good, and never saved again.
CREATE TABLE stream_takedowns (
    stream_id BIGINT PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    by_user BIGINT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Where a viewer watched from (country ISO code, region), looked up in the
-- operator's IP database when the stay began; never the IP itself. NULL:
-- no database, or the address is not in it.
ALTER TABLE viewer_sessions ADD COLUMN country TEXT;
ALTER TABLE viewer_sessions ADD COLUMN region TEXT
