//! Tickets to ticketed streams, bought with coins (or through the payment
//! provider, which buys the coins first).
//!
//! A ticket to a stream whose media has started (live, or archived for its
//! replay) is paid at once. A ticket to a stream that has not started is a
//! hold: the coins
//! are reserved, the creator's share shows as pending earnings, and the
//! ticket gives access at once. The sweeper posts the hold when the stream's
//! media arrives and voids it - a refund, with nothing to undo - when the
//! stream is cancelled, fails, is deleted, or never starts before the
//! hold's timeout (a week after its scheduled time).

use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::idempotency::{self, Keyed, Reply};
use super::ledger::{self, LedgerError};
use super::spend::{self, Spend};
use super::tx::Tx;
use super::{not_allowed, Money};
use crate::db::DbResult;

/// How long after its scheduled time a stream may start for a held ticket.
pub const HOLD_AFTER_SCHEDULE_MS: i64 = 7 * 24 * 3600 * 1000;
/// How long a ticket to an unscheduled stream waits for it.
pub const HOLD_UNSCHEDULED_MS: i64 = 30 * 24 * 3600 * 1000;

/// How to pay.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayWith {
    /// From the wallet (default).
    #[default]
    Coins,
    /// Through the payment provider: an intent for the price; the ticket
    /// (or subscription) is bought when its payment succeeds.
    Provider,
}

/// What buying a ticket takes (the body may be empty).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPurchase {
    /// `coins` (default) or `provider`.
    #[serde(default)]
    pub pay_with: PayWith,
}

/// A bought ticket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Ticket {
    /// The purchase's id (the base of its transfers' ids).
    pub id: String,
    /// Stream.
    pub stream_id: i64,
    /// Holder.
    pub user_id: i64,
    /// Coins paid.
    pub price: i64,
    /// `held` (the stream has not started: the coins are on hold),
    /// `active` (paid), `refunded`.
    pub status: String,
    /// The ledger's commit-order timestamp of the purchase (ns).
    pub timestamp: i64,
}

fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

/// Buys a ticket inside a write transaction.
pub async fn buy_in(tx: &mut Tx, user: i64, stream_id: i64, base: &str, share: u32) -> Result<Ticket, ApiError> {
    type StreamRow = (i64, String, Option<i64>, String, Option<i64>, Option<i64>);
    let s: Option<StreamRow> = sqlx::query_as("SELECT host_id, visibility, ticket_price, state, scheduled_at, media_started_at FROM streams WHERE id = $1").bind(stream_id).fetch_optional(tx.conn()).await.db()?;
    let (host, visibility, price, state, scheduled_at, started_at) = s.ok_or_else(|| crate::streams::no_stream(stream_id))?;
    if visibility != "ticketed" {
        return Err(conflict("not_ticketed", "this stream is not ticketed"));
    }
    if matches!(state.as_str(), "cancelled" | "error" | "ended") {
        return Err(conflict("stream_over", format!("this stream is {state}: there is nothing to watch")));
    }
    if host == user {
        return Err(not_allowed("hosts do not need tickets to their own streams"));
    }
    let price = price.filter(|p| *p > 0).ok_or_else(|| ApiError::internal(format!("ticketed stream {stream_id} without a price")))?;
    let existing: Option<(String,)> = sqlx::query_as("SELECT status FROM tickets WHERE stream_id = $1 AND user_id = $2").bind(stream_id).bind(user).fetch_optional(tx.conn()).await.db()?;
    if existing.as_ref().is_some_and(|e| e.0 != "refunded") {
        return Err(conflict("already_have_ticket", "you have a ticket to this stream"));
    }
    let now = tx.now();
    let hold = if started_at.is_none() { Some(Some(scheduled_at.unwrap_or(now).max(now) + if scheduled_at.is_some() { HOLD_AFTER_SCHEDULE_MS } else { HOLD_UNSCHEDULED_MS })) } else { None };
    let sp = Spend { base: base.to_owned(), kind: "ticket", payer: user, creator: host, coins: price, stream_id: Some(stream_id), reference: None, hold };
    let (split, _) = spend::spend(tx, &sp, share).await?;
    let status = if hold.is_some() { "held" } else { "active" };
    let holds = hold.map(|_| split.transfer_ids.join(","));
    sqlx::query(
        "INSERT INTO tickets (stream_id, user_id, source, price, created_at, status, purchase_id, hold_ids) VALUES ($1, $2, 'purchase', $3, $4, $5, $6, $7) \
         ON CONFLICT (stream_id, user_id) DO UPDATE SET source = 'purchase', price = excluded.price, created_at = excluded.created_at, status = excluded.status, \
         purchase_id = excluded.purchase_id, hold_ids = excluded.hold_ids, refunded_at = NULL",
    )
    .bind(stream_id)
    .bind(user)
    .bind(price)
    .bind(now)
    .bind(status)
    .bind(base)
    .bind(&holds)
    .execute(tx.conn())
    .await
    .db()?;
    Ok(Ticket { id: base.to_owned(), stream_id, user_id: user, price, status: status.into(), timestamp: split.timestamp })
}

/// Open ticket holds the sweeper looks at in one pass.
const SWEEP_BATCH: i64 = 500;

/// Posts or voids ticket holds as their streams went (see the module
/// docs); returns the (buyer, stream) pairs whose coins or tickets changed.
/// One transaction per pass.
pub async fn sweep(money: &Arc<Money>, now: i64) -> Result<Vec<(i64, i64)>, ApiError> {
    money
        .writer
        .run(move |tx| {
            Box::pin(async move {
                type Open = (String, Option<i64>, Option<i64>, Option<i64>, Option<String>, Option<i64>);
                let open: Vec<Open> = sqlx::query_as(
                    "SELECT p.transfer_id, p.timeout_at, t.user_id, t.stream_id, s.state, s.media_started_at FROM ledger_pending p \
                     JOIN ledger_transfers t ON t.id = p.transfer_id LEFT JOIN streams s ON s.id = t.stream_id \
                     WHERE t.code = 'ticket' AND (s.id IS NULL OR s.state IN ('cancelled', 'error') OR s.media_started_at IS NOT NULL OR p.timeout_at <= $1) \
                     ORDER BY p.transfer_id LIMIT $2",
                )
                .bind(now)
                .bind(SWEEP_BATCH)
                .fetch_all(tx.conn())
                .await
                .db()?;
                let mut users = Vec::new();
                for (hold, timeout, user, stream, state, started_at) in open {
                    let base = hold.rsplit_once(':').map(|(b, _)| b.to_owned()).unwrap_or_else(|| hold.clone());
                    let gone = state.is_none() || matches!(state.as_deref(), Some("cancelled" | "error"));
                    let outcome = if started_at.is_some() && !gone {
                        match ledger::post(tx, &format!("{hold}:post"), &hold, None).await {
                            Ok(_) => "active",
                            Err(LedgerError::PendingExpired(_)) => {
                                ledger::void(tx, &format!("{hold}:void"), &hold, "expired").await?;
                                "refunded"
                            }
                            Err(e) => return Err(e.into()),
                        }
                    } else if gone || timeout.is_some_and(|t| t <= now) {
                        ledger::void(tx, &format!("{hold}:void"), &hold, if gone { "cancelled" } else { "expired" }).await?;
                        "refunded"
                    } else {
                        continue;
                    };
                    // A purchase's holds all go the same way; the ticket follows them.
                    let refunded_at = (outcome == "refunded").then_some(now);
                    sqlx::query("UPDATE tickets SET status = $1, refunded_at = $2 WHERE purchase_id = $3 AND status = 'held'").bind(outcome).bind(refunded_at).bind(&base).execute(tx.conn()).await.db()?;
                    if let (Some(u), Some(st)) = (user, stream) {
                        users.push((u, st));
                    }
                }
                users.sort_unstable();
                users.dedup();
                Ok(users)
            })
        })
        .await
}

impl Money {
    /// Buys a ticket with coins (`pay_with: provider` is handled by the caller).
    pub async fn buy_ticket(self: &Arc<Self>, user: i64, stream_id: i64, keyed: Keyed) -> Result<Reply<Ticket>, ApiError> {
        let share = self.settings.creator_share;
        let reply = idempotency::run(&self.writer, keyed, StatusCode::CREATED, move |tx| Box::pin(async move { buy_in(tx, user, stream_id, &spend::new_base("ticket"), share).await })).await?;
        if let Reply::Fresh(t) = &reply {
            self.membership.ticket_changed(user, t.stream_id);
            self.wallet_changed(user);
            let host: Option<(i64,)> = sqlx::query_as("SELECT host_id FROM streams WHERE id = $1").bind(t.stream_id).fetch_optional(&self.pool).await.db()?;
            if let Some((h,)) = host {
                self.wallet_changed(h);
            }
        }
        Ok(reply)
    }

    /// A ticketed stream's price, for a payment through the provider (`409` if none can be bought).
    pub async fn ticket_price(&self, user: i64, stream_id: i64) -> Result<i64, ApiError> {
        let s = self.streams.get(stream_id).await?.ok_or_else(|| crate::streams::no_stream(stream_id))?;
        if s.visibility != crate::streams::Visibility::Ticketed {
            return Err(conflict("not_ticketed", "this stream is not ticketed"));
        }
        if s.host.id == user {
            return Err(not_allowed("hosts do not need tickets to their own streams"));
        }
        if self.membership.has_ticket(user, stream_id).await? {
            return Err(conflict("already_have_ticket", "you have a ticket to this stream"));
        }
        s.ticket_price.ok_or_else(|| ApiError::internal("ticketed stream without a price"))
    }
}
