//! `/api/admin/...` for money (admins): the ledger's invariant check and
//! accounts (who owes what), the gift catalogue, payouts, refunds and
//! promotional coins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use onair_signaling::ApiError;
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{id, AppState, Auth, Body, Idempotent, Opened, Q};
use super::money::reply;
use super::payments::{RefundInput, RefundRequested, ACCEPTED};
use super::ErrorBody;
use crate::accounts::{Principal, Role};
use crate::money::check::Report;
use crate::money::gifts::{self, Gift, GiftInput};
use crate::money::idempotency;
use crate::money::ledger::{self, Account, Code};
use crate::money::payments::Payment;
use crate::money::payouts::{Payout, PayoutDecision, PayoutQuery};
use crate::money::promo::{Granted, PromoGrant};

fn admin(who: &Principal) -> Result<(), ApiError> {
    if who.role() == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("admins only"))
    }
}

/// Checks every invariant of the ledger (debits equal credits per ledger,
/// balances equal their transfers, flags, holds resolved at most once, the
/// features agree with the ledger): `{"ok": bool, ...}`.
#[utoipa::path(get, path = "/api/admin/ledger/check", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Report), (status = 403, body = ErrorBody)))]
pub async fn ledger_check(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Report>, ApiError> {
    admin(&who)?;
    crate::money::check::check(&app.pool).await.map(Json)
}

/// Query of accounts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountsQuery {
    /// A kind: `owed` (default: who owes coins after clawbacks), `wallet`, `earnings`, `revenue`, ...
    pub code: Option<String>,
    /// 1-500, default 100.
    pub limit: Option<i64>,
}

/// Ledger accounts of a kind, largest balance first (admins: `owed` shows
/// who went negative after a refund or dispute).
#[utoipa::path(get, path = "/api/admin/ledger/accounts", tag = "admin", security(("bearer" = [])), params(AccountsQuery),
    responses((status = 200, body = [Account]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn ledger_accounts(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<AccountsQuery>) -> Result<Json<Vec<Account>>, ApiError> {
    admin(&who)?;
    let name = q.code.unwrap_or_else(|| "owed".into());
    let code = Code::parse(&name).ok_or_else(|| crate::money::invalid("code", format!("'{name}' is not an account kind")))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(crate::money::invalid("limit", "must be 1-500"));
    }
    let mut c = app.pool.acquire().await.map_err(ApiError::internal)?;
    let mut accounts = ledger::accounts_by_code(&mut c, code, limit).await?;
    if code == Code::Owed {
        accounts.retain(|a| a.debit_balance() != 0);
    }
    Ok(Json(accounts))
}

/// The whole gift catalogue, disabled gifts included (admins).
#[utoipa::path(get, path = "/api/admin/gifts", tag = "admin", security(("bearer" = [])), responses((status = 200, body = [Gift])))]
pub async fn all_gifts(State(app): State<AppState>, Auth(who): Auth) -> Result<Json<Vec<Gift>>, ApiError> {
    admin(&who)?;
    gifts::list(&app.pool, true).await.map(Json)
}

/// Adds a gift (admins).
#[utoipa::path(post, path = "/api/admin/gifts", tag = "admin", security(("bearer" = [])), request_body = GiftInput,
    responses((status = 201, body = Gift), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_gift(State(app): State<AppState>, Auth(who): Auth, Body(input): Body<GiftInput>) -> Result<(StatusCode, Json<Gift>), ApiError> {
    admin(&who)?;
    Ok((StatusCode::CREATED, Json(gifts::create(&app.money.writer, input).await?)))
}

/// Changes a gift: name, price, animation, tier, order, enabled (admins).
#[utoipa::path(patch, path = "/api/admin/gifts/{gift}", tag = "admin", security(("bearer" = [])), request_body = GiftInput,
    params(("gift" = String, Path, description = "Gift id")), responses((status = 200, body = Gift), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_gift(State(app): State<AppState>, Auth(who): Auth, Path(gift): Path<String>, Body(input): Body<GiftInput>) -> Result<Json<Gift>, ApiError> {
    admin(&who)?;
    gifts::update(&app.money.writer, gift.clone(), input).await?.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "gift_not_found", format!("no gift '{gift}'")))
}

/// Payouts by status (admins).
#[utoipa::path(get, path = "/api/admin/payouts", tag = "admin", security(("bearer" = [])), params(PayoutQuery), responses((status = 200, body = [Payout]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn payouts(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<PayoutQuery>) -> Result<Json<Vec<Payout>>, ApiError> {
    admin(&who)?;
    app.money.payouts(&q).await.map(Json)
}

/// Marks a payout paid: its hold is posted (admins).
#[utoipa::path(post, path = "/api/admin/payouts/{payout_id}/paid", tag = "admin", security(("bearer" = [])), request_body = PayoutDecision,
    params(("payout_id" = i64, Path, description = "Payout id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID")),
    responses((status = 200, body = Payout), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn payout_paid(State(app): State<AppState>, Auth(who): Auth, Path(pid): Path<String>, req: Idempotent<PayoutDecision>) -> Result<Response, ApiError> {
    admin(&who)?;
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.money.resolve_payout(who.id(), id(&pid, "payout")?, true, keyed, body.note).await?;
    Ok(reply(r, StatusCode::OK))
}

/// Rejects a payout: its hold is voided, the coins are the creator's again (admins).
#[utoipa::path(post, path = "/api/admin/payouts/{payout_id}/reject", tag = "admin", security(("bearer" = [])), request_body = PayoutDecision,
    params(("payout_id" = i64, Path, description = "Payout id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID")),
    responses((status = 200, body = Payout), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn payout_reject(State(app): State<AppState>, Auth(who): Auth, Path(pid): Path<String>, req: Idempotent<PayoutDecision>) -> Result<Response, ApiError> {
    admin(&who)?;
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let r = app.money.resolve_payout(who.id(), id(&pid, "payout")?, false, keyed, body.note).await?;
    Ok(reply(r, StatusCode::OK))
}

/// Query of payments.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PaymentsQuery {
    /// Buyer (username or id).
    pub user: String,
}

/// A user's payments, newest first (admins).
#[utoipa::path(get, path = "/api/admin/payments", tag = "admin", security(("bearer" = [])), params(PaymentsQuery), responses((status = 200, body = [Payment]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn payments(State(app): State<AppState>, Auth(who): Auth, Q(q): Q<PaymentsQuery>) -> Result<Json<Vec<Payment>>, ApiError> {
    admin(&who)?;
    let u = super::user_named(&app, &q.user).await?;
    let mut c = app.pool.acquire().await.map_err(ApiError::internal)?;
    let rows = crate::money::payments::reconcile::of_user(&mut c, u.id, 200).await?;
    Ok(Json(rows.into_iter().map(Payment::from).collect()))
}

/// Refunds a payment through the provider (admins). The coins are clawed
/// back when the provider's `charge.refunded` webhook arrives (from the
/// wallet; what was spent already becomes the buyer's debt).
#[utoipa::path(post, path = "/api/admin/payments/{intent}/refund", tag = "admin", security(("bearer" = [])), request_body = RefundInput,
    params(("intent" = String, Path, description = "Intent id"), ("Idempotency-Key" = String, Header, description = "A fresh UUID")),
    responses((status = 202, body = RefundRequested), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 502, body = ErrorBody)))]
pub async fn refund(State(app): State<AppState>, Auth(who): Auth, Path(intent): Path<String>, req: Idempotent<RefundInput>) -> Result<Response, ApiError> {
    admin(&who)?;
    let (keyed, body) = match req.open_checked(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let row = crate::money::payments::reconcile::load(&mut *app.pool.acquire().await.map_err(ApiError::internal)?, &intent).await?;
    let row = row.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "payment_not_found", format!("no payment {intent}")))?;
    let amount = body.amount;
    let provider_key = format!("onair-refund-{}-{}", who.id(), keyed.fingerprint.get(..24).unwrap_or_default());
    app.money.payments.provider.refund(&row.id, amount, &provider_key).await?;
    let r = idempotency::run(&app.money.writer, keyed, ACCEPTED, move |_| Box::pin(async move { Ok(RefundRequested::new(row.id, amount)) })).await?;
    Ok(reply(r, ACCEPTED))
}

/// Gives a user promotional coins from the platform's promo pool (admins).
#[utoipa::path(post, path = "/api/admin/promo", tag = "admin", security(("bearer" = [])), request_body = PromoGrant,
    params(("Idempotency-Key" = String, Header, description = "A fresh UUID")),
    responses((status = 201, body = Granted), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn promo(State(app): State<AppState>, Auth(who): Auth, req: Idempotent<PromoGrant>) -> Result<Response, ApiError> {
    admin(&who)?;
    let (keyed, body) = match req.open(&app.pool, who.id()).await? {
        Opened::Replay(s) => return Ok(s.into_response()),
        Opened::Fresh(k, b) => (k, b),
    };
    let u = super::user_named(&app, &body.user).await?;
    let r = app.money.grant_promo(u.id, body.coins, body.reason.clone(), keyed).await?;
    Ok(reply(r, StatusCode::CREATED))
}
