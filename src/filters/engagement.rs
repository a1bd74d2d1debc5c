//! What hosts do with filters: apply one (a use: trending and analytics;
//! the host's other studio tabs are told), favourites, and ratings (one
//! per user and filter, changeable; the filter keeps the sum and count, so
//! the average is read without a scan).

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{locked, not_found, Filters, StreamFilter};
use crate::db::{begin_immediate, DbResult};
use crate::realtime::{Event, Topic};

/// Largest `parameters` object, serialised.
pub const MAX_PARAMETERS_BYTES: usize = 4096;

/// Applying a filter.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyInput {
    /// The stream it is applied in (the caller's own).
    #[serde(default)]
    pub stream_id: Option<i64>,
    /// The settings used (a JSON object; the filter's own when absent).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
}

/// A filter applied: what the host's other tabs hear (event `filter_applied`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Applied {
    /// The filter.
    pub filter_id: String,
    /// Its category (the studio keeps one filter per category, voice apart).
    pub category: String,
    /// The stream, if one was named.
    pub stream_id: Option<i64>,
    /// The settings used.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Times it was applied, this one included (load tests not counted).
    pub uses: i64,
}

/// A rating.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    /// 1-5.
    pub stars: i64,
}

/// Checks a `parameters` value: a JSON object of at most 4 KiB.
pub fn check_parameters(p: &serde_json::Value) -> Result<(), ApiError> {
    if !p.is_object() {
        return Err(super::invalid("parameters", "must be a JSON object"));
    }
    if p.to_string().len() > MAX_PARAMETERS_BYTES {
        return Err(super::invalid("parameters", format!("at most {MAX_PARAMETERS_BYTES} bytes")));
    }
    Ok(())
}

impl Filters {
    /// A filter `user` may see, or `404`.
    async fn visible(&self, id: &str, user: i64) -> Result<StreamFilter, ApiError> {
        self.get(id, Some(user)).await?.ok_or_else(|| not_found(id))
    }

    /// Records that `user` applied a filter at `now` and tells their other
    /// tabs; `403 locked` for a premium filter they have not unlocked.
    pub async fn apply(&self, user: i64, id: &str, input: ApplyInput, load_test: bool, now: i64) -> Result<Applied, ApiError> {
        let f = self.visible(id, user).await?;
        if !f.unlocked {
            return Err(locked(&f.id, f.price_coins));
        }
        let parameters = input.parameters.unwrap_or_else(|| f.parameters.clone());
        check_parameters(&parameters)?;
        if let Some(s) = input.stream_id {
            let host: Option<(i64,)> = sqlx::query_as("SELECT host_id FROM streams WHERE id = $1").bind(s).fetch_optional(&self.pool).await.db()?;
            match host {
                None => return Err(crate::streams::no_stream(s)),
                Some((h,)) if h != user => return Err(ApiError::forbidden("filters are applied in your own streams")),
                Some(_) => {}
            }
        }
        let mut tx = begin_immediate(&self.pool).await.db()?;
        sqlx::query("INSERT INTO stream_filter_uses (filter_id, user_id, stream_id, load_test, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&f.id)
            .bind(user)
            .bind(input.stream_id)
            .bind(load_test as i64)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
        let (uses,): (i64,) = sqlx::query_as("UPDATE stream_filters SET uses = uses + $1 WHERE id = $2 RETURNING uses").bind(if load_test { 0 } else { 1 }).bind(&f.id).fetch_one(&mut *tx).await.db()?;
        tx.commit().await.db()?;
        let applied = Applied { filter_id: f.id, category: f.category, stream_id: input.stream_id, parameters, uses };
        self.hub.publish(Topic::User(user), &Event::FilterApplied(Box::new(applied.clone())));
        Ok(applied)
    }

    /// Marks a favourite (again: no change). The filter as it is now.
    pub async fn favorite(&self, user: i64, id: &str, now: i64) -> Result<StreamFilter, ApiError> {
        let f = self.visible(id, user).await?;
        sqlx::query("INSERT INTO stream_filter_favorites (user_id, filter_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (user_id, filter_id) DO NOTHING")
            .bind(user)
            .bind(&f.id)
            .bind(now)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(StreamFilter { favorite: true, ..f })
    }

    /// Removes a favourite (none: no change).
    pub async fn unfavorite(&self, user: i64, id: &str) -> Result<StreamFilter, ApiError> {
        let f = self.visible(id, user).await?;
        sqlx::query("DELETE FROM stream_filter_favorites WHERE user_id = $1 AND filter_id = $2").bind(user).bind(&f.id).execute(&self.pool).await.db()?;
        Ok(StreamFilter { favorite: false, ..f })
    }

    /// Rates a filter 1-5 (a second rating replaces the first). The filter
    /// with its new average.
    pub async fn rate(&self, user: i64, id: &str, stars: i64, now: i64) -> Result<StreamFilter, ApiError> {
        if !(1..=5).contains(&stars) {
            return Err(super::invalid("stars", "must be 1-5"));
        }
        let f = self.visible(id, user).await?;
        let mut tx = begin_immediate(&self.pool).await.db()?;
        let before: Option<(i64,)> = sqlx::query_as("SELECT stars FROM stream_filter_ratings WHERE user_id = $1 AND filter_id = $2").bind(user).bind(&f.id).fetch_optional(&mut *tx).await.db()?;
        sqlx::query(
            "INSERT INTO stream_filter_ratings (user_id, filter_id, stars, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (user_id, filter_id) DO UPDATE SET stars = excluded.stars, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(&f.id)
        .bind(stars)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        let (added, counted) = match before {
            Some((old,)) => (stars - old, 0),
            None => (stars, 1),
        };
        sqlx::query("UPDATE stream_filters SET rating_sum = rating_sum + $1, rating_count = rating_count + $2 WHERE id = $3").bind(added).bind(counted).bind(&f.id).execute(&mut *tx).await.db()?;
        tx.commit().await.db()?;
        self.visible(id, user).await
    }
}
