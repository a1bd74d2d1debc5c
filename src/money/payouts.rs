//! Payouts: a creator asks to cash out earnings; the coins are held (a
//! pending transfer from their earnings to the platform's payouts) until an
//! admin marks the payout paid (posted) or rejects it (voided: the coins
//! are available again). Paying the creator happens outside OnAir.

use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::idempotency::{self, Keyed, Reply};
use super::ledger::{self, AccountRef, Code, NewTransfer, COIN};
use super::spend;
use super::{invalid, Money, MAX_COINS};
use crate::db::DbResult;

/// The smallest payout, in coins.
pub const MIN_PAYOUT: i64 = 100;

/// What a payout request takes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutRequest {
    /// Coins of earnings, at least 100.
    pub amount: i64,
}

/// An admin's decision (the body may be empty).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutDecision {
    /// A note for the record (a transfer reference, a reason).
    #[serde(default)]
    pub note: Option<String>,
}

/// A payout.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Payout {
    /// Id.
    pub id: i64,
    /// Creator.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// Coins.
    pub amount: i64,
    /// `pending`, `paid` or `rejected`.
    pub status: String,
    /// The ledger hold.
    pub hold_id: String,
    /// Note.
    pub note: String,
    /// Asked at (RFC 3339).
    pub created_at: String,
    /// Decided at (RFC 3339).
    pub resolved_at: Option<String>,
}

/// Filter of the admins' list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutQuery {
    /// `pending` (default), `paid`, `rejected` or `all`.
    pub status: Option<String>,
}

type Row = (i64, i64, String, i64, String, String, String, i64, Option<i64>);
const SELECT: &str = "SELECT p.id, p.user_id, u.username, p.amount, p.status, p.hold_id, p.note, p.created_at, p.resolved_at FROM payouts p JOIN users u ON u.id = p.user_id";

fn payout_of(r: Row) -> Payout {
    Payout { id: r.0, user_id: r.1, username: r.2, amount: r.3, status: r.4, hold_id: r.5, note: r.6, created_at: crate::clock::rfc3339(r.7), resolved_at: r.8.map(crate::clock::rfc3339) }
}

async fn one(c: &mut sqlx::SqliteConnection, id: i64) -> Result<Option<Payout>, ApiError> {
    let r: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE p.id = $1")).bind(id).fetch_optional(c).await.db()?;
    Ok(r.map(payout_of))
}

impl Money {
    /// A creator asks for a payout of `amount` coins of earnings.
    pub async fn request_payout(self: &Arc<Self>, user: i64, keyed: Keyed, amount: i64) -> Result<Reply<Payout>, ApiError> {
        if !(MIN_PAYOUT..=MAX_COINS).contains(&amount) {
            return Err(invalid("amount", format!("must be {MIN_PAYOUT}-{MAX_COINS} coins")));
        }
        let reply = idempotency::run(&self.writer, keyed, StatusCode::CREATED, move |tx| {
            Box::pin(async move {
                let hold = spend::new_base("payout");
                let t = NewTransfer::new(&hold, AccountRef::user(user, Code::Earnings), AccountRef::platform(Code::Payouts, COIN), amount, "payout").by(user).pending(None);
                ledger::transfer(tx, &t).await.map_err(|e| match e {
                    ledger::LedgerError::ExceedsCredits(_) => ledger::insufficient_funds(format!("you have fewer than {amount} coins of earnings to pay out")),
                    other => other.into(),
                })?;
                let now = tx.now();
                let (id,): (i64,) = sqlx::query_as("INSERT INTO payouts (user_id, amount, hold_id, status, created_at) VALUES ($1, $2, $3, 'pending', $4) RETURNING id")
                    .bind(user)
                    .bind(amount)
                    .bind(&hold)
                    .bind(now)
                    .fetch_one(tx.conn())
                    .await
                    .db()?;
                one(tx.conn(), id).await?.ok_or_else(|| ApiError::internal("payout vanished"))
            })
        })
        .await?;
        if matches!(reply, Reply::Fresh(_)) {
            self.wallet_changed(user);
        }
        Ok(reply)
    }

    /// An admin marks a pending payout paid (`paid`) or rejects it.
    pub async fn resolve_payout(self: &Arc<Self>, admin: i64, id: i64, paid: bool, keyed: Keyed, note: Option<String>) -> Result<Reply<Payout>, ApiError> {
        let note = note.unwrap_or_default().trim().chars().take(500).collect::<String>();
        let reply = idempotency::run(&self.writer, keyed, StatusCode::OK, move |tx| {
            Box::pin(async move {
                let p = one(tx.conn(), id).await?.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "payout_not_found", format!("no payout {id}")))?;
                if p.status != "pending" {
                    return Err(ApiError::new(StatusCode::CONFLICT, "already_resolved", format!("payout {id} is {}", p.status)));
                }
                if paid {
                    ledger::post(tx, &format!("{}:paid", p.hold_id), &p.hold_id, None).await?;
                } else {
                    ledger::void(tx, &format!("{}:rejected", p.hold_id), &p.hold_id, "payout_rejected").await?;
                }
                let now = tx.now();
                sqlx::query("UPDATE payouts SET status = $1, note = $2, resolved_at = $3, resolved_by = $4 WHERE id = $5 AND status = 'pending'")
                    .bind(if paid { "paid" } else { "rejected" })
                    .bind(&note)
                    .bind(now)
                    .bind(admin)
                    .bind(id)
                    .execute(tx.conn())
                    .await
                    .db()?;
                one(tx.conn(), id).await?.ok_or_else(|| ApiError::internal("payout vanished"))
            })
        })
        .await?;
        if let Reply::Fresh(p) = &reply {
            self.wallet_changed(p.user_id);
        }
        Ok(reply)
    }

    /// A creator's payouts, newest first.
    pub async fn payouts_of(&self, user: i64) -> Result<Vec<Payout>, ApiError> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE p.user_id = $1 ORDER BY p.id DESC LIMIT 200")).bind(user).fetch_all(&self.pool).await.db()?;
        Ok(rows.into_iter().map(payout_of).collect())
    }

    /// Payouts by status (admins), oldest first.
    pub async fn payouts(&self, q: &PayoutQuery) -> Result<Vec<Payout>, ApiError> {
        let status = q.status.as_deref().unwrap_or("pending");
        if !["pending", "paid", "rejected", "all"].contains(&status) {
            return Err(invalid("status", "pending, paid, rejected or all"));
        }
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} WHERE p.status = $1 OR $1 = 'all' ORDER BY p.id LIMIT 500")).bind(status).fetch_all(&self.pool).await.db()?;
        Ok(rows.into_iter().map(payout_of).collect())
    }
}
