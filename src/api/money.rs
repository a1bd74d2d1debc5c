//! The money API: the wallet and top-ups, tips, gifts, tickets,
//! subscriptions, earnings, payouts and statements. Every request that
//! moves coins takes an `Idempotency-Key` ([`Idempotent`]); errors are
//! `402 insufficient_funds`, `409 idempotency_conflict`, `403 not_allowed`
//! and `422` with a message per field.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use onair_signaling::{ApiError, Client};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{id, AppState, Auth, Idempotent, Opened, Q};
use super::ErrorBody;
use crate::clock::now_ms;
use crate::money::gifts::Gift;
use crate::money::idempotency::Reply;
use crate::money::payments::{Package, Payment, TopUp, TopUpInput};
use crate::money::payouts::{Payout, PayoutRequest};
use crate::money::subscriptions::{PaidSubscription, SubscriptionPurchase};
use crate::money::support::{GiftInput, Sent, Supporter, TipInput};
use crate::money::tickets::{PayWith, Ticket, TicketPurchase};
use crate::money::wallet::{Earnings, EarningsQuery, Statement, StatementQuery, Wallet};

/// The answer to a keyed request: fresh (with `status`), a stored refusal, or a replay.
pub fn reply<T: Serialize>(r: Reply<T>, status: StatusCode) -> Response {
    match r {
        Reply::Fresh(v) => (status, Json(v)).into_response(),
        Reply::Refused(e) => e.into_response(),
        Reply::Replayed(s) => s.into_response(),
    }
}

/// Your balances.
#[utoipa::path(get, path = "/api/wallet", tag = "money", security(("bearer" = [])), responses((status = 200, body = Wallet), (status = 401, body = ErrorBody)))]
pub async fn wallet(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Wallet>, ApiError> {
    app.money.wallet(who.id()).await.map(Json)
}

/// The coin packages on sale.
#[utoipa::path(get, path = "/api/wallet/packages", tag = "money", responses((status = 200, body = [Package])))]
pub async fn packages(State(app): State<AppState>) -> Json<Vec<Package>> {
    Json(app.money.payments.packages())
}

/// Buys coins: makes a payment intent with the provider and answers where
/// to pay. The coins arrive with the provider's verified
/// `payment_intent.succeeded` webhook, never before.
#[utoipa::path(post, path = "/api/wallet/top-ups", tag = "money", security(("bearer" = [])), request_body = TopUpInput,
    params(("Idempotency-Key" = String, Header, description = "A fresh UUID per purchase; the same one to retry it")),
    responses((status = 201, body = TopUp), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 502, description = "The provider failed", body = ErrorBody)))]
pub async fn top_up(State(app): State<AppState>, Auth(who): Auth, req: Idempotent<TopUpInput>) -> Result<Response, ApiError> {
    let (keyed, body) = match req.open_checked(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let (coins, amount, package) = app.money.payments.quote(&body)?;
    let r = app.money.payments.start(keyed, "top_up", coins, amount, package, None, format!("{coins} coins on OnAir")).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// One of your payments (to follow a top-up after the checkout).
#[utoipa::path(get, path = "/api/wallet/top-ups/{intent}", tag = "money", security(("bearer" = [])),
    params(("intent" = String, Path, description = "The intent id")), responses((status = 200, body = Payment), (status = 404, body = ErrorBody)))]
pub async fn payment(State(app): State<AppState>, Auth(who): Auth, Path(intent): Path<String>) -> Result<Json<Payment>, ApiError> {
    let row = crate::money::payments::reconcile::load(&mut *app.pool.acquire().await.map_err(ApiError::internal)?, &intent).await?;
    match row {
        Some(r) if r.user_id == who.id() || who.role() == crate::accounts::Role::Admin => Ok(Json(r.into())),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "payment_not_found", format!("no payment {intent} of yours"))),
    }
}

/// Your statement: every ledger line on your accounts, newest first, with
/// the balance after it.
#[utoipa::path(get, path = "/api/me/transactions", tag = "money", security(("bearer" = [])), params(StatementQuery),
    responses((status = 200, body = Statement), (status = 422, body = ErrorBody)))]
pub async fn transactions(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<StatementQuery>) -> Result<Json<Statement>, ApiError> {
    let mut c = app.pool.acquire().await.map_err(ApiError::internal)?;
    crate::money::wallet::statement(&mut c, who.id(), &q).await.map(Json)
}

/// The gift catalogue.
#[utoipa::path(get, path = "/api/gifts", tag = "money", responses((status = 200, body = [Gift])))]
pub async fn gifts(State(app): State<AppState>) -> Result<Json<Vec<Gift>>, ApiError> {
    crate::money::gifts::list(&app.pool, false).await.map(Json)
}

/// Tips the host of a live stream: a `tip` event and a line in chat.
#[utoipa::path(post, path = "/api/streams/{id}/tips", tag = "money", security(("bearer" = [])), request_body = TipInput,
    params(("id" = i64, Path, description = "Stream id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per tip")),
    responses((status = 201, body = Sent), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn tip(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, req: Idempotent<TipInput>) -> Result<Response, ApiError> {
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.money.tip(&who, id(&sid, "stream")?, keyed, body).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// Sends gifts to the host of a live stream: a `gift` event the pages animate.
#[utoipa::path(post, path = "/api/streams/{id}/gifts", tag = "money", security(("bearer" = [])), request_body = GiftInput,
    params(("id" = i64, Path, description = "Stream id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per send")),
    responses((status = 201, body = Sent), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn gift(State(app): State<AppState>, Auth(who): Auth, client: Client, Path(sid): Path<String>, req: Idempotent<GiftInput>) -> Result<Response, ApiError> {
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.money.gift(&who, id(&sid, "stream")?, keyed, body, client.load_test).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// Query of supporters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SupportersQuery {
    /// 1-100, default 10.
    pub limit: Option<i64>,
}

/// A stream's top supporters.
#[derive(Debug, Serialize, ToSchema)]
pub struct Supporters {
    /// Stream.
    pub stream_id: i64,
    /// Most coins first.
    pub supporters: Vec<Supporter>,
}

/// A stream's top supporters (tips and gifts).
#[utoipa::path(get, path = "/api/streams/{id}/supporters", tag = "money", params(("id" = i64, Path, description = "Stream id"), SupportersQuery),
    responses((status = 200, body = Supporters), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn supporters(State(app): State<AppState>, Path(sid): Path<String>, Q(q): Q<SupportersQuery>) -> Result<Json<Supporters>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    Ok(Json(Supporters { stream_id: s.id, supporters: app.money.supporters(s.id, q.limit.unwrap_or(10)).await? }))
}

/// Buys a ticket to a ticketed stream: with coins (`201` + the ticket), or
/// through the provider (`pay_with: provider`: `201` + the payment to make;
/// the ticket is bought when it succeeds). Gives access to WHEP and the
/// replay; refunded if the stream is cancelled or never starts.
#[utoipa::path(post, path = "/api/streams/{id}/tickets/purchase", tag = "money", security(("bearer" = [])), request_body = TicketPurchase,
    params(("id" = i64, Path, description = "Stream id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per purchase")),
    responses((status = 201, body = Ticket), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "Not ticketed, over, or already held", body = ErrorBody)))]
pub async fn buy_ticket(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, req: Idempotent<TicketPurchase>) -> Result<Response, ApiError> {
    let stream_id = id(&sid, "stream")?;
    let (keyed, body) = match req.open_checked(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    if body.pay_with == PayWith::Provider {
        let price = app.money.ticket_price(who.id(), stream_id).await?;
        let target = serde_json::json!({ "stream_id": stream_id });
        let r = app.money.payments.start(keyed, "ticket", price, price, None, Some(target), format!("A ticket to stream {stream_id} on OnAir")).await?;
        return Ok(reply(r, StatusCode::CREATED));
    }
    let r = app.money.buy_ticket(who.id(), stream_id, keyed).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// Subscribes to a host's channel (monthly, renewed until cancelled): with
/// coins, or through the provider (`pay_with: provider`).
#[utoipa::path(post, path = "/api/channels/{host}/subscriptions/purchase", tag = "money", security(("bearer" = [])), request_body = SubscriptionPurchase,
    params(("host" = String, Path, description = "Host username or id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID per purchase")),
    responses((status = 201, body = PaidSubscription), (status = 402, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn subscribe(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, req: Idempotent<SubscriptionPurchase>) -> Result<Response, ApiError> {
    let (keyed, body) = match req.open_checked(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let host = super::user_named(&app, &host).await?;
    if !host.role.can_host() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "user_not_found", format!("{} is not a host", host.username)));
    }
    if body.pay_with == PayWith::Provider {
        if !crate::money::subscriptions::PLANS.contains(&body.plan.as_str()) {
            return Err(crate::money::invalid("plan", "one of: monthly"));
        }
        if host.id == who.id() {
            return Err(crate::money::not_allowed("you cannot subscribe to yourself"));
        }
        let price = app.money.settings.subscription_price;
        let target = serde_json::json!({ "host_id": host.id, "plan": body.plan });
        let r = app.money.payments.start(keyed, "subscription", price, price, None, Some(target), format!("A month of {}'s channel on OnAir", host.username)).await?;
        return Ok(reply(r, StatusCode::CREATED));
    }
    let r = app.money.subscribe(who.id(), host.id, keyed, &body.plan).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// Cancels your subscription to a host at the end of its period.
#[utoipa::path(post, path = "/api/channels/{host}/subscriptions/cancel", tag = "money", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID")),
    responses((status = 200, body = PaidSubscription), (status = 404, body = ErrorBody)))]
pub async fn unsubscribe(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, req: Idempotent<serde_json::Value>) -> Result<Response, ApiError> {
    let (keyed, _) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let host = super::user_named(&app, &host).await?;
    let r = app.money.cancel_subscription(who.id(), host.id, keyed).await?;
    Ok(reply(r, StatusCode::OK))
}

/// Your running paid subscriptions.
#[utoipa::path(get, path = "/api/me/subscriptions", tag = "money", security(("bearer" = [])), responses((status = 200, body = [PaidSubscription])))]
pub async fn my_subscriptions(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<PaidSubscription>>, ApiError> {
    app.money.subscriptions_of(who.id(), now_ms()).await.map(Json)
}

/// Your earnings as a creator: by day, by stream and by kind.
#[utoipa::path(get, path = "/api/me/earnings", tag = "money", security(("bearer" = [])), params(EarningsQuery),
    responses((status = 200, body = Earnings), (status = 422, body = ErrorBody)))]
pub async fn earnings(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<EarningsQuery>) -> Result<Json<Earnings>, ApiError> {
    app.money.earnings(who.id(), &q, now_ms()).await.map(Json)
}

/// Asks for a payout of earnings: held until an admin pays or rejects it.
#[utoipa::path(post, path = "/api/me/payouts", tag = "money", security(("bearer" = [])), request_body = PayoutRequest,
    params(("Idempotency-Key" = String, Header, description = "A fresh UUID per request")),
    responses((status = 201, body = Payout), (status = 402, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn request_payout(State(app): State<AppState>, Auth(who): Auth, req: Idempotent<PayoutRequest>) -> Result<Response, ApiError> {
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.money.request_payout(who.id(), keyed, body.amount).await?;
    Ok(reply(r, StatusCode::CREATED))
}

/// Your payouts.
#[utoipa::path(get, path = "/api/me/payouts", tag = "money", security(("bearer" = [])), responses((status = 200, body = [Payout])))]
pub async fn my_payouts(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<Payout>>, ApiError> {
    app.money.payouts_of(who.id()).await.map(Json)
}
