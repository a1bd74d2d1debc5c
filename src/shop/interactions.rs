//! Viewers' interactions with a stream's products: a card seen (`view`),
//! opened (`click`), put in the cart (`cart`). One per viewer, product,
//! kind and minute (the primary key drops the rest); load-test clients
//! are not recorded at all: OnAir never counts synthetic engagement.

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shelf::not_on_shelf;
use super::Shop;
use crate::db::DbResult;

/// An interaction.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractionInput {
    /// `view`, `click` or `cart`.
    pub kind: String,
}

/// What became of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InteractionTaken {
    /// Recorded now (false: this viewer's same interaction was recorded
    /// this minute already, or a load-test client sent it).
    pub counted: bool,
}

impl Shop {
    #[allow(clippy::too_many_arguments)]
    /// Records an interaction by `viewer` (a user id, else the page's viewer key, else the address).
    pub async fn interact(&self, stream_id: i64, product_id: i64, kind: &str, viewer: &str, user: Option<i64>, load_test: bool, now: i64) -> Result<InteractionTaken, ApiError> {
        if !["view", "click", "cart"].contains(&kind) {
            return Err(super::bad("kind", "one of view, click, cart"));
        }
        let on: Option<(i64,)> = sqlx::query_as("SELECT product_id FROM stream_products WHERE stream_id = $1 AND product_id = $2").bind(stream_id).bind(product_id).fetch_optional(&self.pool).await.db()?;
        if on.is_none() {
            return Err(not_on_shelf(stream_id, product_id));
        }
        if load_test {
            return Ok(InteractionTaken { counted: false });
        }
        let n = sqlx::query("INSERT INTO product_interactions (stream_id, product_id, viewer, kind, minute, user_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING")
            .bind(stream_id)
            .bind(product_id)
            .bind(viewer)
            .bind(kind)
            .bind(now / 60_000)
            .bind(user)
            .execute(&self.pool)
            .await
            .db()?
            .rows_affected();
        Ok(InteractionTaken { counted: n == 1 })
    }
}
