//! A host's channel beyond the account: the profile shown on `/c/{username}`
//! (bio, avatar) and the defaults a publish with nothing prepared goes live
//! with (an OBS user who just presses "Start streaming").

use std::collections::BTreeMap;

use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::DbResult;
use crate::streams::Visibility;

/// Longest bio, in characters.
pub const MAX_BIO: usize = 1000;
/// Longest category name, in characters.
pub const MAX_CATEGORY: usize = 40;

/// What a channel goes live with when nothing was prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChannelDefaults {
    /// The channel (host id).
    pub host_id: i64,
    /// Title (empty: "NAME is live").
    pub title: String,
    /// Description.
    pub description: String,
    /// Category (empty: none).
    pub category: String,
    /// Thumbnail shown until the stream has its own.
    pub thumbnail_url: Option<String>,
    /// `public` or `subscribers`.
    pub visibility: Visibility,
    /// Record streams (kept for when recording exists: nothing is recorded yet).
    pub record: bool,
}

/// A change of a channel's defaults (absent fields stay as they are).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultsPatch {
    /// 0-140 characters ("" for "NAME is live").
    pub title: Option<String>,
    /// Up to 5,000 characters.
    pub description: Option<String>,
    /// Up to 40 characters ("" for none).
    pub category: Option<String>,
    /// An http(s) or same-site image URL, or "" to remove it (uploads: `PUT .../defaults/thumbnail`).
    pub thumbnail_url: Option<String>,
    /// `public` or `subscribers` (ticketed streams need a price: prepare them).
    pub visibility: Option<Visibility>,
    /// Record streams once recording exists.
    pub record: Option<bool>,
}

/// The title of a stream made for a publish with nothing prepared and no
/// default title.
pub fn automatic_title(display_name: &str) -> String {
    format!("{display_name} is live")
}

/// Checks a category name: trimmed, at most [`MAX_CATEGORY`] characters.
pub fn check_category(c: &str, fields: &mut BTreeMap<String, String>) -> String {
    let c = c.trim();
    if c.chars().count() > MAX_CATEGORY {
        fields.insert("category".into(), format!("must be at most {MAX_CATEGORY} characters"));
    }
    c.to_owned()
}

/// Checks an image URL: http(s), or a path on this server (an upload).
pub fn check_image_url(field: &str, u: &str, fields: &mut BTreeMap<String, String>) -> Option<String> {
    let u = u.trim();
    if u.is_empty() {
        return None;
    }
    let ok = u.len() <= 2048 && (u.starts_with("https://") || u.starts_with("http://") || (u.starts_with('/') && !u.starts_with("//"))) && !u.contains(char::is_whitespace);
    if !ok {
        fields.insert(field.into(), "must be an http(s) URL".into());
    }
    Some(u.to_owned())
}

/// Channel profiles and defaults.
#[derive(Clone)]
pub struct Channels {
    pool: SqlitePool,
}

impl Channels {
    /// On this pool.
    pub fn new(pool: SqlitePool) -> Self {
        Channels { pool }
    }

    /// A user's bio and avatar.
    pub async fn profile(&self, user_id: i64) -> Result<(String, Option<String>), ApiError> {
        let row: Option<(String, Option<String>)> = sqlx::query_as("SELECT bio, avatar_url FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await.db()?;
        Ok(row.unwrap_or_default())
    }

    /// Sets a user's bio (trimmed, at most [`MAX_BIO`] characters).
    pub async fn set_bio(&self, user_id: i64, bio: &str) -> Result<(), ApiError> {
        let bio = bio.trim();
        if bio.chars().count() > MAX_BIO {
            return Err(ApiError::validation(BTreeMap::from([("bio".into(), format!("must be at most {MAX_BIO} characters"))])));
        }
        sqlx::query("UPDATE users SET bio = $1 WHERE id = $2").bind(bio).bind(user_id).execute(&self.pool).await.db()?;
        Ok(())
    }

    /// Sets (or removes) a user's avatar; returns the one it replaced.
    pub async fn set_avatar(&self, user_id: i64, url: Option<&str>) -> Result<Option<String>, ApiError> {
        let old: Option<(Option<String>,)> = sqlx::query_as("SELECT avatar_url FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.pool).await.db()?;
        sqlx::query("UPDATE users SET avatar_url = $1 WHERE id = $2").bind(url).bind(user_id).execute(&self.pool).await.db()?;
        Ok(old.and_then(|o| o.0))
    }

    /// A channel's defaults (the built-in ones until the host sets some).
    pub async fn defaults(&self, host_id: i64) -> Result<ChannelDefaults, ApiError> {
        let row: Option<(String, String, String, Option<String>, String, i64)> =
            sqlx::query_as("SELECT title, description, category, thumbnail_url, visibility, record FROM channel_defaults WHERE host_id = $1")
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await
                .db()?;
        Ok(match row {
            Some((title, description, category, thumbnail_url, visibility, record)) => ChannelDefaults {
                host_id,
                title,
                description,
                category,
                thumbnail_url,
                visibility: if visibility == "subscribers" { Visibility::Subscribers } else { Visibility::Public },
                record: record != 0,
            },
            None => ChannelDefaults { host_id, title: String::new(), description: String::new(), category: String::new(), thumbnail_url: None, visibility: Visibility::Public, record: false },
        })
    }

    /// Changes a channel's defaults.
    pub async fn update_defaults(&self, host_id: i64, p: &DefaultsPatch) -> Result<ChannelDefaults, ApiError> {
        let cur = self.defaults(host_id).await?;
        let mut fields = BTreeMap::new();
        let title = p.title.as_deref().map(str::trim).unwrap_or(&cur.title).to_owned();
        if title.chars().count() > 140 {
            fields.insert("title".into(), "must be at most 140 characters".into());
        }
        let description = p.description.as_deref().map(str::trim).unwrap_or(&cur.description).to_owned();
        if description.chars().count() > 5000 {
            fields.insert("description".into(), "must be at most 5,000 characters".into());
        }
        let category = match &p.category {
            Some(c) => check_category(c, &mut fields),
            None => cur.category.clone(),
        };
        let thumbnail_url = match &p.thumbnail_url {
            Some(u) => check_image_url("thumbnail_url", u, &mut fields),
            None => cur.thumbnail_url.clone(),
        };
        let visibility = p.visibility.unwrap_or(cur.visibility);
        if visibility == Visibility::Ticketed {
            fields.insert("visibility".into(), "must be public or subscribers: a ticketed stream needs its own price, so prepare it".into());
        }
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let next = ChannelDefaults { host_id, title, description, category, thumbnail_url, visibility, record: p.record.unwrap_or(cur.record) };
        self.store_defaults(&next).await?;
        Ok(next)
    }

    /// Sets (or removes) the default thumbnail; returns the one it replaced.
    pub async fn set_default_thumbnail(&self, host_id: i64, url: Option<&str>) -> Result<(ChannelDefaults, Option<String>), ApiError> {
        let mut d = self.defaults(host_id).await?;
        let old = std::mem::replace(&mut d.thumbnail_url, url.map(str::to_owned));
        self.store_defaults(&d).await?;
        Ok((d, old))
    }

    async fn store_defaults(&self, d: &ChannelDefaults) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO channel_defaults (host_id, title, description, category, thumbnail_url, visibility, record, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (host_id) DO UPDATE SET title = $2, description = $3, category = $4, thumbnail_url = $5, visibility = $6, record = $7, updated_at = $8",
        )
        .bind(d.host_id)
        .bind(&d.title)
        .bind(&d.description)
        .bind(&d.category)
        .bind(&d.thumbnail_url)
        .bind(d.visibility.as_str())
        .bind(d.record as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }
}
