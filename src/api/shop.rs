//! The shop API: the catalogue (`/api/products`), a stream's shelf, pins,
//! live prices, flash sales, vouchers and interactions
//! (`/api/streams/{id}/...`), orders (`Idempotency-Key`), the seller's
//! and buyer's order lists, and the figures.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onair_signaling::{ApiError, Client};

use super::extract::{id, AppState, Auth, Body, Idempotent, MaybeAuth, Opened, Q};
use super::money::reply;
use super::ErrorBody;
use crate::images::ImageFile;
use crate::money::idempotency::Reply;
use crate::shop::analytics::{ShopAnalytics, Top, TopQuery};
use crate::shop::catalogue::{NewProduct, Product, ProductPatch, ProductQuery};
use crate::shop::flash_sales::{FlashSale, NewFlashSale};
use crate::shop::interactions::{InteractionInput, InteractionTaken};
use crate::shop::orders::{NewOrder, Order, OrderQuery, RefundInput, ShipInput};
use crate::shop::shelf::{LivePrice, ShelfAdd, ShelfItem};
use crate::shop::vouchers::{NewVoucher, Voucher};
use crate::streams::access;

/// Products: a seller's (`seller`), else your own.
#[utoipa::path(get, path = "/api/products", tag = "shop", params(ProductQuery),
    responses((status = 200, body = [Product]), (status = 400, body = ErrorBody), (status = 401, description = "No seller named and no login", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_products(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Q(q): Q<ProductQuery>) -> Result<Json<Vec<Product>>, ApiError> {
    let seller = match (&q.seller, &who) {
        (Some(name), _) => super::user_named(&app, name).await?.id,
        (None, Some(w)) => w.id(),
        (None, None) => return Err(ApiError::unauthorized("name a seller, or log in to list your own products")),
    };
    app.shop.products(seller, q.limit, q.offset).await.map(Json)
}

/// Creates a product (hosts).
#[utoipa::path(post, path = "/api/products", tag = "shop", security(("bearer" = [])), request_body = NewProduct,
    responses((status = 201, body = Product), (status = 400, description = "validation", body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "sku_taken", body = ErrorBody)))]
pub async fn create_product(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<NewProduct>) -> Result<(StatusCode, Json<Product>), ApiError> {
    Ok((StatusCode::CREATED, Json(app.shop.create_product(&who, input).await?)))
}

/// A product, with the stock left.
#[utoipa::path(get, path = "/api/products/{id}", tag = "shop", params(("id" = i64, Path, description = "Product id")),
    responses((status = 200, body = Product), (status = 404, description = "product_not_found", body = ErrorBody)))]
pub async fn get_product(State(app): State<AppState>, Path(pid): Path<String>) -> Result<Json<Product>, ApiError> {
    let pid = id(&pid, "product")?;
    let p = crate::shop::catalogue::read(&app.pool, pid).await?.filter(|p| !p.deleted).ok_or_else(|| crate::shop::catalogue::no_product(pid))?;
    Ok(Json(p))
}

/// Changes a product (its seller). A new price is announced (`price_changed`) where it shows.
#[utoipa::path(patch, path = "/api/products/{id}", tag = "shop", security(("bearer" = [])), request_body = ProductPatch, params(("id" = i64, Path, description = "Product id")),
    responses((status = 200, body = Product), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "sku_taken", body = ErrorBody)))]
pub async fn update_product(State(app): State<AppState>, Auth(who): Auth, Path(pid): Path<String>, Body(patch): Body<ProductPatch>) -> Result<Json<Product>, ApiError> {
    app.shop.update_product(&who, id(&pid, "product")?, patch).await.map(Json)
}

/// Deletes a product (its seller): hidden and taken off every shelf; its orders keep it.
#[utoipa::path(delete, path = "/api/products/{id}", tag = "shop", security(("bearer" = [])), params(("id" = i64, Path, description = "Product id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_product(State(app): State<AppState>, Auth(who): Auth, Path(pid): Path<String>) -> Result<StatusCode, ApiError> {
    app.shop.delete_product(&who, id(&pid, "product")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a picture to a product (its seller): a JPEG, PNG or WebP of at
/// most 2 MiB and 16-4096 px a side, as the body with its `Content-Type`.
#[utoipa::path(post, path = "/api/products/{id}/images", tag = "shop", security(("bearer" = [])), params(("id" = i64, Path, description = "Product id")),
    request_body(content((ImageFile = "image/jpeg"), (ImageFile = "image/png"), (ImageFile = "image/webp")), description = "The image"),
    responses((status = 201, body = Product), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "too_many_images", body = ErrorBody),
              (status = 413, description = "image_too_large", body = ErrorBody), (status = 415, description = "unsupported_image", body = ErrorBody), (status = 422, description = "bad_image, bad_image_size", body = ErrorBody)))]
pub async fn add_product_image(State(app): State<AppState>, Auth(who): Auth, Path(pid): Path<String>, headers: HeaderMap, body: axum::body::Body) -> Result<(StatusCode, Json<Product>), ApiError> {
    let pid = id(&pid, "product")?;
    app.shop.own_product(&who, pid).await?;
    let data = super::image_body(body).await?;
    let p = app.shop.add_image(&who, pid, headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), &data).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// A stream's shelf: its products, the pinned one first, with their price
/// in the stream and their latest flash sale.
#[utoipa::path(get, path = "/api/streams/{id}/products", tag = "shop", params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = [ShelfItem]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn shelf(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>) -> Result<Json<Vec<ShelfItem>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    crate::shop::shelf::list(&app.pool, s.id, crate::clock::now_ms()).await.map(Json)
}

/// Puts one of the host's products on the stream's shelf, optionally at a
/// live-only price (the host and moderators): `201`, or `200` with the
/// live price set when it was there. A `product_added` event.
#[utoipa::path(post, path = "/api/streams/{id}/products", tag = "shop", security(("bearer" = [])), request_body = ShelfAdd, params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = ShelfItem), (status = 200, description = "Already there: its live price set", body = ShelfItem), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "stream_over", body = ErrorBody)))]
pub async fn add_to_shelf(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<ShelfAdd>) -> Result<(StatusCode, Json<ShelfItem>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    let (item, added) = app.shop.add_to_shelf(&s, &who, input).await?;
    Ok((if added { StatusCode::CREATED } else { StatusCode::OK }, Json(item)))
}

/// Sets (or clears, with null) a product's live price in the stream: a `price_changed` event.
#[utoipa::path(patch, path = "/api/streams/{id}/products/{product}", tag = "shop", security(("bearer" = [])), request_body = LivePrice,
    params(("id" = i64, Path, description = "Stream id"), ("product" = i64, Path, description = "Product id")),
    responses((status = 200, body = ShelfItem), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "product_not_on_shelf", body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_live_price(State(app): State<AppState>, Auth(who): Auth, Path((sid, pid)): Path<(String, String)>, Body(input): Body<LivePrice>) -> Result<Json<ShelfItem>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.shop.set_live_price(&s, &who, id(&pid, "product")?, input).await.map(Json)
}

/// Takes a product off the stream's shelf: a `product_removed` event.
#[utoipa::path(delete, path = "/api/streams/{id}/products/{product}", tag = "shop", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("product" = i64, Path, description = "Product id")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_from_shelf(State(app): State<AppState>, Auth(who): Auth, Path((sid, pid)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.shop.remove_from_shelf(&s, &who, id(&pid, "product")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pins a product (one at a time) and highlights it in chat: a `product_pinned` event.
#[utoipa::path(post, path = "/api/streams/{id}/products/{product}/pin", tag = "shop", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("product" = i64, Path, description = "Product id")),
    responses((status = 200, body = ShelfItem), (status = 403, body = ErrorBody), (status = 404, description = "product_not_on_shelf", body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pin(State(app): State<AppState>, Auth(who): Auth, Path((sid, pid)): Path<(String, String)>) -> Result<Json<ShelfItem>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.shop.pin(&s, &who, id(&pid, "product")?).await.map(Json)
}

/// Unpins it: a `product_pinned` event with no product.
#[utoipa::path(delete, path = "/api/streams/{id}/products/{product}/pin", tag = "shop", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("product" = i64, Path, description = "Product id")),
    responses((status = 204, description = "Unpinned"), (status = 403, body = ErrorBody), (status = 404, description = "not_pinned", body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn unpin(State(app): State<AppState>, Auth(who): Auth, Path((sid, pid)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.shop.unpin(&s, &who, id(&pid, "product")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a flash sale of a product in the stream (the host and
/// moderators): its quantity leaves the product's stock now; a countdown
/// of 10-300 s, then open for `duration_s`. `flash_sale` events.
#[utoipa::path(post, path = "/api/streams/{id}/products/{product}/flash-sales", tag = "shop", security(("bearer" = [])), request_body = NewFlashSale,
    params(("id" = i64, Path, description = "Stream id"), ("product" = i64, Path, description = "Product id")),
    responses((status = 201, body = FlashSale), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "sale_running, insufficient_stock, stream_over", body = ErrorBody)))]
pub async fn start_flash_sale(State(app): State<AppState>, Auth(who): Auth, Path((sid, pid)): Path<(String, String)>, Body(input): Body<NewFlashSale>) -> Result<(StatusCode, Json<FlashSale>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    Ok((StatusCode::CREATED, Json(app.shop.start_flash_sale(&s, &who, id(&pid, "product")?, input).await?)))
}

/// A stream's flash sales, oldest first, with their state now.
#[utoipa::path(get, path = "/api/streams/{id}/flash-sales", tag = "shop", params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = [FlashSale]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn flash_sales(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>) -> Result<Json<Vec<FlashSale>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    crate::shop::flash_sales::list(&app.pool, s.id, crate::clock::now_ms()).await.map(Json)
}

/// Records a viewer's interaction with a product on the shelf: once per
/// viewer, product, kind and minute; load-test clients' are not recorded.
#[utoipa::path(post, path = "/api/streams/{id}/products/{product}/interactions", tag = "shop", request_body = InteractionInput,
    params(("id" = i64, Path, description = "Stream id"), ("product" = i64, Path, description = "Product id"), ("X-OnAir-Viewer" = Option<String>, Header, description = "The page's viewer key")),
    responses((status = 200, body = InteractionTaken), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn interact(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, client: Client, Path((sid, pid)): Path<(String, String)>, Body(input): Body<InteractionInput>) -> Result<Json<InteractionTaken>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    let viewer = match (&who, &client.viewer_key, client.ip) {
        (Some(w), _, _) => format!("u{}", w.id()),
        (None, Some(k), _) => format!("k{k}"),
        (None, None, Some(ip)) => format!("a{}", crate::client_addr::Network::of(ip)),
        (None, None, None) => "anonymous".to_owned(),
    };
    app.shop.interact(s.id, id(&pid, "product")?, &input.kind, &viewer, who.map(|w| w.id()), client.load_test, crate::clock::now_ms()).await.map(Json)
}

/// Drops a voucher in the stream (the host and moderators): a `voucher` event.
#[utoipa::path(post, path = "/api/streams/{id}/vouchers", tag = "shop", security(("bearer" = [])), request_body = NewVoucher, params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = Voucher), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "voucher_exists, stream_over", body = ErrorBody)))]
pub async fn create_voucher(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(input): Body<NewVoucher>) -> Result<(StatusCode, Json<Voucher>), ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    Ok((StatusCode::CREATED, Json(app.shop.create_voucher(&s, &who, input).await?)))
}

/// The vouchers dropped in a stream, with their uses.
#[utoipa::path(get, path = "/api/streams/{id}/vouchers", tag = "shop", params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = [Voucher]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn vouchers(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>) -> Result<Json<Vec<Voucher>>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    crate::shop::vouchers::list(&app.pool, s.id).await.map(Json)
}

/// Orders a product of a live stream's shelf. Stock is taken at once;
/// `pay_with: coins` (default) pays from the wallet in the same
/// transaction (`201`, `paid`); `pay_with: provider` holds the stock for
/// 10 minutes and answers the payment to make (`pending`; paid by its
/// webhook, else it expires and the stock returns).
#[utoipa::path(post, path = "/api/streams/{id}/orders", tag = "shop", security(("bearer" = [])), request_body = NewOrder,
    params(("id" = i64, Path, description = "Stream id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per order; the same one to retry it")),
    responses((status = 201, body = Order), (status = 402, description = "insufficient_funds", body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "product_not_on_shelf, flash_sale_not_found", body = ErrorBody),
              (status = 409, description = "sold_out, limit_reached, sale_not_started, sale_ended, insufficient_stock, stream_not_live, idempotency_conflict", body = ErrorBody),
              (status = 422, description = "voucher_invalid, validation", body = ErrorBody), (status = 502, description = "The provider failed", body = ErrorBody)))]
pub async fn place_order(State(app): State<AppState>, Auth(who): Auth, client: Client, Path(sid): Path<String>, req: Idempotent<NewOrder>) -> Result<Response, ApiError> {
    let stream_id = id(&sid, "stream")?;
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let s = app.stream_cached(stream_id).await?;
    let r = app.shop.place_order(&s, &who, keyed.clone(), body, client.load_test).await?;
    // A provider order gets its payment (also on a retry that finds it without one).
    let order = match r {
        Reply::Fresh(o) => o,
        Reply::Replayed(stored) if stored.status == 201 => match serde_json::from_str::<Order>(&stored.body) {
            Ok(o) if o.payment.is_none() && o.status == "pending" => o,
            _ => return Ok(stored.into_response()),
        },
        other => return Ok(reply(other, StatusCode::CREATED)),
    };
    let order = app.shop.ensure_payment(order, &keyed).await?;
    Ok((StatusCode::CREATED, Json(order)).into_response())
}

/// An order (its buyer, its seller, admins).
#[utoipa::path(get, path = "/api/orders/{id}", tag = "shop", security(("bearer" = [])), params(("id" = i64, Path, description = "Order id")),
    responses((status = 200, body = Order), (status = 404, description = "order_not_found", body = ErrorBody)))]
pub async fn get_order(State(app): State<AppState>, Auth(who): Auth, Path(oid): Path<String>) -> Result<Json<Order>, ApiError> {
    app.shop.order_for(&who, id(&oid, "order")?).await.map(Json)
}

/// Your orders (as a buyer), newest first.
#[utoipa::path(get, path = "/api/me/orders", tag = "shop", security(("bearer" = [])), params(OrderQuery),
    responses((status = 200, body = [Order]), (status = 400, body = ErrorBody)))]
pub async fn my_orders(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<OrderQuery>) -> Result<Json<Vec<Order>>, ApiError> {
    app.shop.buyer_orders(who.id(), q.before, q.limit).await.map(Json)
}

/// The orders of your products (as a seller), newest first.
#[utoipa::path(get, path = "/api/shop/orders", tag = "shop", security(("bearer" = [])), params(OrderQuery),
    responses((status = 200, body = [Order]), (status = 400, body = ErrorBody)))]
pub async fn seller_orders(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<OrderQuery>) -> Result<Json<Vec<Order>>, ApiError> {
    app.shop.seller_orders(who.id(), &q).await.map(Json)
}

/// Marks a paid order shipped (its seller).
#[utoipa::path(post, path = "/api/shop/orders/{id}/ship", tag = "shop", security(("bearer" = [])), request_body = ShipInput, params(("id" = i64, Path, description = "Order id")),
    responses((status = 200, body = Order), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "order_not_paid", body = ErrorBody)))]
pub async fn ship_order(State(app): State<AppState>, Auth(who): Auth, Path(oid): Path<String>, input: Option<Body<ShipInput>>) -> Result<Json<Order>, ApiError> {
    app.shop.ship(&who, id(&oid, "order")?, input.map(|b| b.0).unwrap_or_default()).await.map(Json)
}

/// Refunds a paid or shipped order in coins (its seller), from their
/// earnings and the platform's share back to the pockets it was paid
/// from; `restock` returns its units to stock.
#[utoipa::path(post, path = "/api/shop/orders/{id}/refund", tag = "shop", security(("bearer" = [])), request_body = RefundInput,
    params(("id" = i64, Path, description = "Order id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per refund")),
    responses((status = 200, body = Order), (status = 402, description = "insufficient_funds: the seller's earnings were paid out", body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "order_not_paid, idempotency_conflict", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn refund_order(State(app): State<AppState>, Auth(who): Auth, Path(oid): Path<String>, req: Idempotent<RefundInput>) -> Result<Response, ApiError> {
    let oid = id(&oid, "order")?;
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.shop.refund(&who, oid, keyed, body).await?;
    Ok(reply(r, StatusCode::OK))
}

/// A stream's shop figures (its host and moderators): per product views,
/// clicks, cart adds, orders, units, revenue and conversion; its flash
/// sales' sell-through.
#[utoipa::path(get, path = "/api/streams/{id}/shop/analytics", tag = "shop", security(("bearer" = [])), params(("id" = i64, Path, description = "Stream id")),
    responses((status = 200, body = ShopAnalytics), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn shop_analytics(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>) -> Result<Json<ShopAnalytics>, ApiError> {
    let s = app.owned_stream(id(&sid, "stream")?, &who, true).await?;
    crate::shop::analytics::stream(&app.pool, s.id, &app.money.settings.currency, crate::clock::now_ms()).await.map(Json)
}

/// The top live-shopping sessions and products by revenue over a period.
#[utoipa::path(get, path = "/api/shop/top", tag = "shop", params(TopQuery), responses((status = 200, body = Top), (status = 400, body = ErrorBody)))]
pub async fn top(State(app): State<AppState>, Q(q): Q<TopQuery>) -> Result<Json<Top>, ApiError> {
    crate::shop::analytics::top(&app.pool, &q, crate::clock::now_ms()).await.map(Json)
}
