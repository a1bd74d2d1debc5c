-- Stream filters: the catalogue the studio renders from (in the host's
-- browser: the server never decodes video), who unlocked which premium
-- filter, favourites, ratings and uses (trending).

-- A filter. `effect` names the studio's renderer for it (beauty, lut,
-- vignette, grain, bg_blur, bg_replace, green_screen, makeup, face_sticker,
-- face_warp, sticker, text, frame, voice); `parameters` is a JSON object of
-- its settings; `assets` a JSON array of built-in asset names (LUT images,
-- stickers, backdrops). A host's custom preset has a `creator_id` and a
-- `base_id` (the filter it tunes, whose assets and lock it shares);
-- creator-made premium filters pay their creator a share of each unlock.
CREATE TABLE stream_filters (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    premium INTEGER NOT NULL DEFAULT 0,
    price_coins BIGINT NOT NULL DEFAULT 0,
    effect TEXT NOT NULL,
    parameters TEXT NOT NULL DEFAULT '{}',
    assets TEXT NOT NULL DEFAULT '[]',
    creator_id BIGINT REFERENCES users(id),
    base_id TEXT REFERENCES stream_filters(id),
    public INTEGER NOT NULL DEFAULT 1,
    featured INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    sort BIGINT NOT NULL DEFAULT 100,
    uses BIGINT NOT NULL DEFAULT 0,
    rating_sum BIGINT NOT NULL DEFAULT 0,
    rating_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX stream_filters_category ON stream_filters (category, sort);
CREATE INDEX stream_filters_creator ON stream_filters (creator_id);

-- A premium filter someone paid for: the ledger chain `{purchase_id}:n`.
CREATE TABLE stream_filter_unlocks (
    user_id BIGINT NOT NULL REFERENCES users(id),
    filter_id TEXT NOT NULL REFERENCES stream_filters(id),
    purchase_id TEXT NOT NULL,
    price_coins BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

CREATE TABLE stream_filter_favorites (
    user_id BIGINT NOT NULL REFERENCES users(id),
    filter_id TEXT NOT NULL REFERENCES stream_filters(id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- One rating per user and filter, changeable; the filter keeps the sum and count.
CREATE TABLE stream_filter_ratings (
    user_id BIGINT NOT NULL REFERENCES users(id),
    filter_id TEXT NOT NULL REFERENCES stream_filters(id),
    stars INTEGER NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

-- Each apply: what trending counts (recent uses) and analytics read.
CREATE TABLE stream_filter_uses (
    id INTEGER PRIMARY KEY,
    filter_id TEXT NOT NULL REFERENCES stream_filters(id),
    user_id BIGINT NOT NULL REFERENCES users(id),
    stream_id BIGINT,
    load_test INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE INDEX stream_filter_uses_recent ON stream_filter_uses (created_at, filter_id);

-- The seeded catalogue.
INSERT INTO stream_filters (id, name, category, description, premium, price_coins, effect, parameters, assets, featured, sort, created_at, updated_at) VALUES
('beauty_natural', 'Natural', 'beauty', 'Light skin smoothing that keeps detail', 0, 0, 'beauty', '{"smoothing": 35, "brightness": 5, "skin_tone": 0, "sharpen": 10}', '[]', 1, 10, 0, 0),
('beauty_soft_focus', 'Soft focus', 'beauty', 'Strong smoothing for a soft look', 0, 0, 'beauty', '{"smoothing": 75, "brightness": 8, "skin_tone": 5, "sharpen": 0}', '[]', 0, 20, 0, 0),
('beauty_glow', 'Glow', 'beauty', 'Brighter, warmer skin', 0, 0, 'beauty', '{"smoothing": 45, "brightness": 20, "skin_tone": 15, "sharpen": 5}', '[]', 0, 30, 0, 0),
('beauty_bright', 'Bright', 'beauty', 'Lifts a dim room', 0, 0, 'beauty', '{"smoothing": 20, "brightness": 35, "skin_tone": 0, "sharpen": 10}', '[]', 0, 40, 0, 0),
('beauty_sharp_hd', 'Sharp HD', 'beauty', 'Crisper detail, no smoothing', 0, 0, 'beauty', '{"smoothing": 0, "brightness": 0, "skin_tone": 0, "sharpen": 60}', '[]', 0, 50, 0, 0),
('beauty_porcelain', 'Porcelain', 'beauty', 'Studio-grade smoothing with cool skin tone', 1, 50, 'beauty', '{"smoothing": 90, "brightness": 15, "skin_tone": -20, "sharpen": 20}', '[]', 1, 60, 0, 0),
('look_vintage', 'Vintage', 'color', 'Faded sepia film', 0, 0, 'lut', '{"strength": 100}', '["lut_vintage.png"]', 1, 10, 0, 0),
('look_warm', 'Warm', 'color', 'Golden-hour warmth', 0, 0, 'lut', '{"strength": 100}', '["lut_warm.png"]', 0, 20, 0, 0),
('look_cool', 'Cool', 'color', 'Crisp blue tones', 0, 0, 'lut', '{"strength": 100}', '["lut_cool.png"]', 0, 30, 0, 0),
('look_mono', 'Mono', 'color', 'Black and white', 0, 0, 'lut', '{"strength": 100}', '["lut_mono.png"]', 0, 40, 0, 0),
('look_cinematic', 'Cinematic', 'color', 'Teal shadows, warm highlights', 1, 80, 'lut', '{"strength": 100}', '["lut_cinematic.png"]', 1, 50, 0, 0),
('look_teal_orange', 'Teal and orange', 'color', 'The blockbuster grade', 1, 60, 'lut', '{"strength": 100}', '["lut_teal_orange.png"]', 0, 60, 0, 0),
('look_noir', 'Noir', 'color', 'High-contrast black and white', 1, 40, 'lut', '{"strength": 100}', '["lut_noir.png"]', 0, 70, 0, 0),
('fx_vignette', 'Vignette', 'color', 'Darker corners', 0, 0, 'vignette', '{"strength": 50}', '[]', 0, 80, 0, 0),
('fx_grain', 'Film grain', 'color', 'Moving film grain', 0, 0, 'grain', '{"strength": 30}', '[]', 0, 90, 0, 0),
('bg_blur_light', 'Background blur', 'background', 'Softly blurs what is behind you', 0, 0, 'bg_blur', '{"strength": 40}', '[]', 1, 10, 0, 0),
('bg_blur_strong', 'Strong blur', 'background', 'Hides the room', 0, 0, 'bg_blur', '{"strength": 90}', '[]', 0, 20, 0, 0),
('bg_green_screen', 'Green screen', 'background', 'Keys out a green backdrop', 0, 0, 'green_screen', '{"key_color": "#00ff00", "tolerance": 40, "backdrop": "backdrop_studio.png"}', '["backdrop_studio.png"]', 0, 30, 0, 0),
('bg_studio', 'Studio backdrop', 'background', 'Replaces your room with a lit studio', 1, 100, 'bg_replace', '{"strength": 100}', '["backdrop_studio.png"]', 0, 40, 0, 0),
('makeup_rose_lips', 'Rose lips', 'makeup', 'A rose lip tint', 0, 0, 'makeup', '{"lips": "#c2185b", "strength": 50}', '[]', 0, 10, 0, 0),
('makeup_coral_blush', 'Coral blush', 'makeup', 'Coral cheeks', 0, 0, 'makeup', '{"cheeks": "#ff7f50", "strength": 40}', '[]', 0, 20, 0, 0),
('makeup_bold_brows', 'Bold brows', 'makeup', 'Defined brows', 1, 30, 'makeup', '{"brows": "#3e2723", "strength": 60}', '[]', 0, 30, 0, 0),
('makeup_glam', 'Glam', 'makeup', 'Lips, blush and liner together', 1, 120, 'makeup', '{"lips": "#b71c1c", "cheeks": "#f48fb1", "liner": "#000000", "strength": 70}', '[]', 1, 40, 0, 0),
('ar_cat_ears', 'Cat ears', 'ar', 'Ears that follow your head', 0, 0, 'face_sticker', '{"anchor": "forehead", "scale": 100}', '["sticker_cat_ears.svg"]', 1, 10, 0, 0),
('ar_sunglasses', 'Sunglasses', 'ar', 'Shades on your eyes', 0, 0, 'face_sticker', '{"anchor": "eyes", "scale": 100}', '["sticker_sunglasses.svg"]', 0, 20, 0, 0),
('ar_face_slim', 'Face slim', 'ar', 'A slimmer jaw (mesh warp)', 1, 60, 'face_warp', '{"slim": 40, "eyes": 0}', '[]', 0, 30, 0, 0),
('ar_big_eyes', 'Big eyes', 'ar', 'Larger eyes (mesh warp)', 1, 60, 'face_warp', '{"slim": 0, "eyes": 40}', '[]', 0, 40, 0, 0),
('overlay_caption', 'Caption', 'overlay', 'Your text on the video, placed by dragging', 0, 0, 'text', '{"text": "Hello!", "color": "#ffffff", "size": 48, "x": 0.5, "y": 0.85}', '[]', 0, 10, 0, 0),
('overlay_heart', 'Heart sticker', 'overlay', 'A heart, placed by dragging', 0, 0, 'sticker', '{"x": 0.85, "y": 0.2, "scale": 100}', '["sticker_heart.svg"]', 0, 20, 0, 0),
('overlay_star', 'Star sticker', 'overlay', 'A star, placed by dragging', 0, 0, 'sticker', '{"x": 0.15, "y": 0.2, "scale": 100}', '["sticker_star.svg"]', 0, 30, 0, 0),
('overlay_neon_frame', 'Neon frame', 'overlay', 'A glowing frame around the picture', 1, 30, 'frame', '{"strength": 100}', '["frame_neon.svg"]', 1, 40, 0, 0),
('voice_chipmunk', 'Chipmunk', 'voice', 'Pitch up', 0, 0, 'voice', '{"mode": "pitch", "semitones": 5}', '[]', 0, 10, 0, 0),
('voice_deep', 'Deep', 'voice', 'Pitch down', 0, 0, 'voice', '{"mode": "pitch", "semitones": -5}', '[]', 0, 20, 0, 0),
('voice_robot', 'Robot', 'voice', 'A ring-modulated robot voice', 0, 0, 'voice', '{"mode": "robot", "frequency": 50}', '[]', 1, 30, 0, 0),
('voice_alien', 'Alien', 'voice', 'Robot and pitched up', 1, 20, 'voice', '{"mode": "robot", "frequency": 90, "semitones": 4}', '[]', 0, 40, 0, 0)
