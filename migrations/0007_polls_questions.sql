-- Polls and Q&A during a stream.
--
-- A poll has 2-6 options (a JSON array of strings) and is open until closed
-- by hand, by its timer (`closes_at`) or by the stream's end. One vote per
-- user, changeable while the poll is open. Load-test clients' votes are
-- stored, flagged, and never counted. The final counts are kept with the
-- poll (`results`, a JSON array), and snapshots while it runs
-- (`poll_snapshots`), so a replay can show the poll at its moment.

CREATE TABLE polls (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    question TEXT NOT NULL,
    options TEXT NOT NULL,
    subscribers_only INTEGER NOT NULL DEFAULT 0,
    duration_s BIGINT,
    -- open | closed
    state TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    closes_at BIGINT,
    closed_at BIGINT,
    -- host (by hand) | timer | stream_ended
    close_reason TEXT,
    results TEXT
);
CREATE INDEX polls_stream ON polls (stream_id, id);
-- One open poll per stream at a time, enforced by the database.
CREATE UNIQUE INDEX polls_one_open ON polls (stream_id) WHERE state = 'open';

CREATE TABLE poll_votes (
    poll_id BIGINT NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    option_idx INTEGER NOT NULL,
    load_test INTEGER NOT NULL DEFAULT 0,
    voted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (poll_id, user_id)
);

-- The counts as viewers saw them (at most one a second while votes come in).
CREATE TABLE poll_snapshots (
    id INTEGER PRIMARY KEY,
    poll_id BIGINT NOT NULL REFERENCES polls(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    votes TEXT NOT NULL
);
CREATE INDEX poll_snapshots_poll ON poll_snapshots (poll_id, at);

-- Viewers' questions. state: open | answering | answered | hidden.
-- `upvotes` counts real users' upvotes (load tests' are kept, not counted).
CREATE TABLE questions (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open',
    upvotes BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    answering_at BIGINT,
    answered_at BIGINT,
    hidden_at BIGINT,
    updated_by BIGINT
);
CREATE INDEX questions_stream ON questions (stream_id, state, upvotes);
-- One question "answering now" per stream.
CREATE UNIQUE INDEX questions_one_answering ON questions (stream_id) WHERE state = 'answering';

CREATE TABLE question_upvotes (
    question_id BIGINT NOT NULL REFERENCES questions(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    load_test INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (question_id, user_id)
)
