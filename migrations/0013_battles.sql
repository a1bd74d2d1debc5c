-- PK battles: two live hosts head to head for 1-10 minutes; gifts (and,
-- in the like modes, likes) score for the host they are sent to.
--
-- state: invited | countdown | active | ended | declined | cancelled |
-- expired | aborted. Times are Unix milliseconds from the server's clock;
-- starts_at and ends_at are fixed when the invitation is accepted (the
-- countdown is 3 s), and a gift scores iff its ledger transfer's
-- commit-order timestamp (ns) is in [starts_at, ends_at).
CREATE TABLE battles (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    -- gifts | likes | gifts_and_likes
    mode TEXT NOT NULL,
    -- rule.gift: only this gift scores
    rule_gift TEXT,
    duration_s BIGINT NOT NULL,
    -- a 30 s punishment phase after the end, with the link kept
    punishment INTEGER NOT NULL DEFAULT 0,
    challenger_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    opponent_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    answered_at BIGINT,
    starts_at BIGINT,
    ends_at BIGINT,
    ended_at BIGINT,
    -- when the link comes down (the end, or the end of the punishment)
    release_at BIGINT,
    winner_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    -- coins paid to the winner from the promo pool (0: none or a draw)
    reward_coins BIGINT NOT NULL DEFAULT 0,
    reward_badge TEXT,
    -- the two rooms are linked in the media core
    linked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX battles_state ON battles (state, id);

-- The two sides: 0 the challenger, 1 the opponent. busy = 1 while the
-- battle holds its host (invited, countdown, active, punishment): a host
-- is in one battle at a time.
CREATE TABLE battle_sides (
    battle_id BIGINT NOT NULL REFERENCES battles(id) ON DELETE CASCADE,
    side INTEGER NOT NULL,
    host_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    score BIGINT NOT NULL DEFAULT 0,
    busy INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (battle_id, side)
);
CREATE UNIQUE INDEX battle_sides_one_per_host ON battle_sides (host_id) WHERE busy = 1;
CREATE INDEX battle_sides_stream ON battle_sides (stream_id, busy);
CREATE INDEX battle_sides_host ON battle_sides (host_id, battle_id);

-- Points each supporter scored for a side.
CREATE TABLE battle_supporters (
    battle_id BIGINT NOT NULL REFERENCES battles(id) ON DELETE CASCADE,
    side INTEGER NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    points BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (battle_id, side, user_id)
);
CREATE INDEX battle_supporters_top ON battle_supporters (battle_id, side, points);

-- Leaderboards, kept incrementally: one row per board, period, bucket
-- (the day, week or month in the configured time zone, or 'all') and
-- user, updated in the transaction of what it counts.
-- hosts: points (battle points scored), coins (gift coins received), wins;
-- supporters: coins (gift coins given).
CREATE TABLE leaderboard_counters (
    board TEXT NOT NULL,
    period TEXT NOT NULL,
    bucket TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    points BIGINT NOT NULL DEFAULT 0,
    coins BIGINT NOT NULL DEFAULT 0,
    wins BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (board, period, bucket, user_id)
);
CREATE INDEX leaderboard_points ON leaderboard_counters (board, period, bucket, points, coins);
CREATE INDEX leaderboard_coins ON leaderboard_counters (board, period, bucket, coins);
