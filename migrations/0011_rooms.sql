-- Co-host rooms: every stream is a room of up to nine hosts.
--
-- A stream's room settings: its kind of session, whether hosts may talk
-- peer to peer (`auto`) or always through the SFU (`sfu`), and how many
-- hosts it takes (2-9, the primary host included).
ALTER TABLE streams ADD COLUMN session_type TEXT NOT NULL DEFAULT 'solo';
ALTER TABLE streams ADD COLUMN topology TEXT NOT NULL DEFAULT 'auto';
ALTER TABLE streams ADD COLUMN max_hosts INTEGER NOT NULL DEFAULT 9;

-- The hosts of a room besides its primary (the stream's host), and the
-- primary's own row once something about it is stored (its mutes).
-- state: active (in the room) | left (left by themself) | removed (kicked):
-- a host who left or was removed cannot publish into this room again.
-- permissions: a comma-separated set of invite, mute_others, layout.
CREATE TABLE room_hosts (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- primary | cohost
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    permissions TEXT NOT NULL DEFAULT '',
    audio_muted INTEGER NOT NULL DEFAULT 0,
    video_muted INTEGER NOT NULL DEFAULT 0,
    joined_at BIGINT NOT NULL,
    left_at BIGINT,
    PRIMARY KEY (stream_id, user_id)
);
CREATE INDEX room_hosts_user ON room_hosts (user_id, state);

-- Invitations to co-host, open for ten minutes.
-- state: pending | accepted | declined
CREATE TABLE room_invitations (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    invited_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);

-- Hosts asking to join a room. state: pending | approved | rejected
CREATE TABLE room_join_requests (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    PRIMARY KEY (stream_id, user_id)
);

-- A room's layout (kind grid | spotlight | sidebar | pip; the focus host and
-- the preferred order by username; order is a JSON array).
CREATE TABLE room_layouts (
    stream_id BIGINT PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    focus TEXT,
    host_order TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL
);
