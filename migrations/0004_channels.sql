-- Channels: a host's page (/c/{username}) with a bio and an avatar, the
-- defaults a publish with nothing prepared goes live with, categories, and
-- uploaded images (thumbnails, avatars) stored as files under the data
-- directory and named by their content.

ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar_url TEXT;

ALTER TABLE streams ADD COLUMN category TEXT NOT NULL DEFAULT '';

-- What an OBS publish without a prepared stream goes live with. `record`
-- is the host's choice for when recording exists (nothing is recorded yet).
CREATE TABLE channel_defaults (
    host_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',
    thumbnail_url TEXT,
    -- public | subscribers
    visibility TEXT NOT NULL DEFAULT 'public',
    record INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
