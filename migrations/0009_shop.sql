-- Live shopping: a seller's catalogue, the products shown in a stream,
-- flash sales, orders, vouchers and viewers' interactions.
--
-- Stock never oversells: `stock` and a flash sale's `remaining` change only
-- by conditional updates (`... WHERE stock >= $n`, rows affected checked)
-- inside the money writer's transactions, and the CHECKs below are the
-- database's own guard. A flash sale's quantity is taken from the
-- product's stock when the sale is made; what is left when it ends goes
-- back (`settled_at`).

CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    seller_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- Minor units of `currency` (the platform's: one coin each).
    price BIGINT NOT NULL CHECK (price >= 0),
    currency TEXT NOT NULL,
    stock BIGINT NOT NULL CHECK (stock >= 0),
    sku TEXT,
    -- JSON array of image URLs (/images/...).
    images TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX products_seller ON products (seller_id, id);
CREATE UNIQUE INDEX products_sku ON products (seller_id, sku) WHERE sku IS NOT NULL AND deleted_at IS NULL;

-- A stream's shelf. One pinned product per stream, enforced by the database.
CREATE TABLE stream_products (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    live_price BIGINT CHECK (live_price IS NULL OR live_price >= 0),
    pinned INTEGER NOT NULL DEFAULT 0,
    added_at BIGINT NOT NULL,
    pinned_at BIGINT,
    PRIMARY KEY (stream_id, product_id)
);
CREATE UNIQUE INDEX stream_products_one_pinned ON stream_products (stream_id) WHERE pinned = 1;

-- State by time: scheduled (before starts_at - countdown), countdown,
-- active (until ends_at), then ended; sold_out once remaining hit 0.
CREATE TABLE flash_sales (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    price BIGINT NOT NULL CHECK (price >= 0),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    remaining BIGINT NOT NULL CHECK (remaining >= 0 AND remaining <= quantity),
    per_buyer_limit BIGINT NOT NULL CHECK (per_buyer_limit > 0),
    countdown_s BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    countdown_at BIGINT NOT NULL,
    starts_at BIGINT NOT NULL,
    ends_at BIGINT NOT NULL,
    sold_out_at BIGINT,
    -- Ended early by the seller.
    cancelled_at BIGINT,
    -- What was left went back to the product's stock.
    settled_at BIGINT
);
CREATE INDEX flash_sales_stream ON flash_sales (stream_id, product_id, id);
CREATE INDEX flash_sales_open ON flash_sales (settled_at, ends_at);

-- Units each buyer holds in a sale (pending and paid orders), for its per-buyer limit.
CREATE TABLE flash_sale_buyers (
    sale_id BIGINT NOT NULL REFERENCES flash_sales(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    units BIGINT NOT NULL CHECK (units >= 0),
    PRIMARY KEY (sale_id, user_id)
);

CREATE TABLE vouchers (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    seller_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Upper case.
    code TEXT NOT NULL,
    percent_off BIGINT,
    amount_off BIGINT,
    min_order BIGINT NOT NULL DEFAULT 0,
    max_uses BIGINT,
    per_user BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT,
    -- JSON array of product ids, or NULL for every product of the stream.
    products TEXT,
    created_at BIGINT NOT NULL,
    CHECK (max_uses IS NULL OR uses <= max_uses),
    CHECK (uses >= 0),
    UNIQUE (stream_id, code)
);

CREATE TABLE voucher_uses (
    voucher_id BIGINT NOT NULL REFERENCES vouchers(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    uses BIGINT NOT NULL CHECK (uses >= 0),
    PRIMARY KEY (voucher_id, user_id)
);

-- status: pending (stock held until expires_at) | paid | shipped |
-- refunded | expired.
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    stream_id BIGINT REFERENCES streams(id) ON DELETE SET NULL,
    buyer_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seller_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    flash_sale_id BIGINT REFERENCES flash_sales(id) ON DELETE SET NULL,
    voucher_id BIGINT REFERENCES vouchers(id) ON DELETE SET NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    unit_price BIGINT NOT NULL,
    subtotal BIGINT NOT NULL,
    discount BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL CHECK (total >= 0),
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    -- coins | provider
    pay_with TEXT NOT NULL,
    -- The coin spend's base id, or the provider's intent id.
    payment_ref TEXT,
    -- The coin spend (its transfers are `{spend_ref}:n`).
    spend_ref TEXT,
    -- Coins the spend took from promotional coins (refunds go back there),
    -- and the seller's share of it.
    from_promo BIGINT NOT NULL DEFAULT 0,
    creator_coins BIGINT NOT NULL DEFAULT 0,
    -- A carrier's tracking reference, when shipped.
    tracking TEXT,
    shipping TEXT NOT NULL,
    load_test INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    paid_at BIGINT,
    shipped_at BIGINT,
    refunded_at BIGINT,
    expired_at BIGINT,
    restocked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX orders_buyer ON orders (buyer_id, id);
CREATE INDEX orders_seller ON orders (seller_id, status, id);
CREATE INDEX orders_stream ON orders (stream_id, product_id);
CREATE INDEX orders_pending ON orders (status, expires_at);

-- view | click | cart, one per viewer, product, kind and minute.
CREATE TABLE product_interactions (
    stream_id BIGINT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    product_id BIGINT NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    viewer TEXT NOT NULL,
    kind TEXT NOT NULL,
    minute BIGINT NOT NULL,
    user_id BIGINT,
    PRIMARY KEY (stream_id, product_id, viewer, kind, minute)
);
