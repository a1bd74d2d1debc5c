//! Reading the catalogue: listings (by category, search, free or premium,
//! paginated), trending (by recent use), featured, one filter; each filter
//! as the caller sees it (unlocked? a favourite? their stars).

use std::collections::BTreeMap;

use onair_signaling::ApiError;
use serde::Deserialize;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use utoipa::IntoParams;

use super::{assets, FilterCreator, FilterPage, Filters, StreamFilter, CATEGORIES};
use crate::db::DbResult;

/// How far back trending looks.
pub const TRENDING_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// Query of a listing.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// One category: beauty, makeup, ar, color, background, overlay, voice.
    pub category: Option<String>,
    /// Words in the name or description.
    pub q: Option<String>,
    /// `free` or `premium`.
    pub tier: Option<String>,
    /// `true`: premium only; `false`: free only (as `tier`).
    pub premium: Option<bool>,
    /// 1-100, default 30.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// What a listing asks, checked.
#[derive(Debug, Default, Clone)]
pub struct Listing {
    category: Option<String>,
    q: Option<String>,
    premium: Option<bool>,
    featured: bool,
    limit: i64,
    offset: i64,
}

impl ListQuery {
    /// Checks it (`400 validation` per field).
    pub fn checked(&self) -> Result<Listing, ApiError> {
        let mut f = BTreeMap::new();
        let category = self.category.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(str::to_lowercase);
        if let Some(c) = &category {
            if !CATEGORIES.contains(&c.as_str()) {
                f.insert("category".into(), format!("one of: {}", CATEGORIES.join(", ")));
            }
        }
        let premium = match self.tier.as_deref() {
            None | Some("") => self.premium,
            Some("free") => Some(false),
            Some("premium") => Some(true),
            Some(_) => {
                f.insert("tier".into(), "free or premium".into());
                None
            }
        };
        if self.premium.is_some() && premium != self.premium {
            f.insert("premium".into(), "disagrees with tier".into());
        }
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned);
        if q.as_ref().is_some_and(|q| q.chars().count() > 100) {
            f.insert("q".into(), "at most 100 characters".into());
        }
        let limit = self.limit.unwrap_or(30);
        if !(1..=100).contains(&limit) {
            f.insert("limit".into(), "must be 1-100".into());
        }
        let offset = self.offset.unwrap_or(0);
        if !(0..=1_000_000).contains(&offset) {
            f.insert("offset".into(), "must be 0-1000000".into());
        }
        if !f.is_empty() {
            return Err(ApiError::validation(f));
        }
        Ok(Listing { category, q, premium, featured: false, limit, offset })
    }
}

/// Columns of a filter as user `$1` sees it (0: nobody logged in).
const SELECT: &str = "SELECT f.id, f.name, f.category, f.description, COALESCE(b.premium, f.premium), COALESCE(b.price_coins, f.price_coins), f.effect, f.parameters, f.assets, \
     f.rating_sum, f.rating_count, f.uses, f.creator_id, c.username, f.base_id, f.public, f.featured, f.enabled, f.sort, \
     CASE WHEN COALESCE(b.premium, f.premium) = 0 THEN 1 \
          WHEN (CASE WHEN f.base_id IS NULL THEN f.creator_id ELSE b.creator_id END) = $1 THEN 1 \
          WHEN EXISTS (SELECT 1 FROM stream_filter_unlocks x WHERE x.user_id = $1 AND x.filter_id = COALESCE(f.base_id, f.id)) THEN 1 ELSE 0 END, \
     CASE WHEN EXISTS (SELECT 1 FROM stream_filter_favorites v WHERE v.user_id = $1 AND v.filter_id = f.id) THEN 1 ELSE 0 END, \
     (SELECT r.stars FROM stream_filter_ratings r WHERE r.user_id = $1 AND r.filter_id = f.id)";

const FROM: &str = " FROM stream_filters f LEFT JOIN stream_filters b ON b.id = f.base_id LEFT JOIN users c ON c.id = f.creator_id";

/// Visible to `$1`: offered, and public or theirs.
const VISIBLE: &str = "f.enabled = 1 AND (f.public = 1 OR f.creator_id = $1)";

fn filter_of(r: &SqliteRow) -> StreamFilter {
    let id: String = r.get(0);
    let sum: i64 = r.get(9);
    let count: i64 = r.get(10);
    let creator_id: Option<i64> = r.get(12);
    let creator_name: Option<String> = r.get(13);
    let params: String = r.get(7);
    let names: String = r.get(8);
    let names: Vec<String> = serde_json::from_str(&names).unwrap_or_default();
    StreamFilter {
        assets: names.iter().map(|n| assets::describe(&id, n)).collect(),
        id,
        name: r.get(1),
        category: r.get(2),
        description: r.get(3),
        premium: r.get::<i64, _>(4) != 0,
        price_coins: r.get(5),
        effect: r.get(6),
        parameters: serde_json::from_str(&params).unwrap_or_else(|_| serde_json::json!({})),
        rating: if count > 0 { (sum as f64 / count as f64 * 10.0).round() / 10.0 } else { 0.0 },
        ratings: count,
        uses: r.get(11),
        creator: creator_id.zip(creator_name).map(|(id, username)| FilterCreator { id, username }),
        base: r.get(14),
        public: r.get::<i64, _>(15) != 0,
        featured: r.get::<i64, _>(16) != 0,
        enabled: r.get::<i64, _>(17) != 0,
        sort: r.get(18),
        unlocked: r.get::<i64, _>(19) != 0,
        favorite: r.get::<i64, _>(20) != 0,
        my_rating: r.get(21),
        recent_uses: None,
    }
}

/// One filter as `user` sees it, enabled or not (`None` if there is none).
pub async fn get(c: &mut SqliteConnection, id: &str, user: Option<i64>) -> Result<Option<StreamFilter>, ApiError> {
    let r = sqlx::query(&format!("{SELECT}{FROM} WHERE f.id = $2")).bind(user.unwrap_or(0)).bind(id).fetch_optional(c).await.db()?;
    Ok(r.as_ref().map(filter_of))
}

impl Filters {
    /// One filter as `user` sees it: `None` if absent, retired (unless they
    /// unlocked it), or someone else's private preset.
    pub async fn get(&self, id: &str, user: Option<i64>) -> Result<Option<StreamFilter>, ApiError> {
        let f = get(&mut *self.pool.acquire().await.db()?, id, user).await?;
        Ok(f.filter(|f| {
            let mine = user.is_some() && f.creator.as_ref().map(|c| c.id) == user;
            (f.public || mine) && (f.enabled || (f.premium && f.unlocked))
        }))
    }

    /// A page of the catalogue, in tray order (category, then its order).
    pub async fn list(&self, q: &Listing, user: Option<i64>) -> Result<FilterPage, ApiError> {
        let mut cond = vec![VISIBLE.to_owned()];
        let mut texts: Vec<String> = Vec::new();
        if let Some(c) = &q.category {
            texts.push(c.clone());
            cond.push(format!("f.category = ${}", texts.len() + 1));
        }
        if let Some(words) = &q.q {
            // Every word in the name or the description, case-insensitively.
            for w in words.split_whitespace().take(8) {
                let escaped = w.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                texts.push(format!("%{escaped}%"));
                let n = texts.len() + 1;
                cond.push(format!("(LOWER(f.name) LIKE ${n} ESCAPE '\\' OR LOWER(f.description) LIKE ${n} ESCAPE '\\' OR LOWER(f.category) LIKE ${n} ESCAPE '\\')"));
            }
        }
        match q.premium {
            Some(true) => cond.push("COALESCE(b.premium, f.premium) = 1".into()),
            Some(false) => cond.push("COALESCE(b.premium, f.premium) = 0".into()),
            None => {}
        }
        if q.featured {
            cond.push("f.featured = 1".into());
        }
        let wher = format!(" WHERE {}", cond.join(" AND "));
        let order = " ORDER BY CASE f.category WHEN 'beauty' THEN 1 WHEN 'makeup' THEN 2 WHEN 'ar' THEN 3 WHEN 'color' THEN 4 WHEN 'background' THEN 5 WHEN 'overlay' THEN 6 ELSE 7 END, f.creator_id IS NOT NULL, f.sort, f.name, f.id";
        let me = user.unwrap_or(0);
        let count_sql = format!("SELECT COUNT(*){FROM}{wher}");
        let mut count = sqlx::query_as::<_, (i64,)>(&count_sql).bind(me);
        for t in &texts {
            count = count.bind(t);
        }
        let mut c = self.pool.acquire().await.db()?;
        let (total,) = count.fetch_one(&mut *c).await.db()?;
        let n = texts.len() + 2;
        let sql = format!("{SELECT}{FROM}{wher}{order} LIMIT ${n} OFFSET ${}", n + 1);
        let mut rows = sqlx::query(&sql).bind(me);
        for t in &texts {
            rows = rows.bind(t);
        }
        let filters: Vec<StreamFilter> = rows.bind(q.limit).bind(q.offset).fetch_all(&mut *c).await.db()?.iter().map(filter_of).collect();
        let next = (q.offset + (filters.len() as i64) < total).then_some(q.offset + filters.len() as i64);
        Ok(FilterPage { filters, total, limit: q.limit, offset: q.offset, next_offset: next })
    }

    /// Featured filters, a page of them.
    pub async fn featured(&self, q: &Listing, user: Option<i64>) -> Result<FilterPage, ApiError> {
        self.list(&Listing { featured: true, ..q.clone() }, user).await
    }

    /// Trending: most applied in the last 7 days before `now` (by real
    /// hosts: load tests are not counted), then most applied ever.
    pub async fn trending(&self, q: &Listing, user: Option<i64>, now: i64) -> Result<FilterPage, ApiError> {
        let since = now - TRENDING_WINDOW_MS;
        let recent = "(SELECT COUNT(*) FROM stream_filter_uses u WHERE u.filter_id = f.id AND u.load_test = 0 AND u.created_at >= $2)";
        let mut cond = vec![VISIBLE.to_owned()];
        if let Some(c) = &q.category {
            cond.push(format!("f.category = '{c}'")); // checked against CATEGORIES
        }
        match q.premium {
            Some(true) => cond.push("COALESCE(b.premium, f.premium) = 1".into()),
            Some(false) => cond.push("COALESCE(b.premium, f.premium) = 0".into()),
            None => {}
        }
        let wher = format!(" WHERE {}", cond.join(" AND "));
        let me = user.unwrap_or(0);
        let mut c = self.pool.acquire().await.db()?;
        let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*){FROM}{wher}")).bind(me).fetch_one(&mut *c).await.db()?;
        let sql = format!("{SELECT}, {recent}{FROM}{wher} ORDER BY 23 DESC, f.uses DESC, f.featured DESC, f.sort, f.id LIMIT $3 OFFSET $4");
        let rows = sqlx::query(&sql).bind(me).bind(since).bind(q.limit).bind(q.offset).fetch_all(&mut *c).await.db()?;
        let filters: Vec<StreamFilter> = rows
            .iter()
            .map(|r| {
                let mut f = filter_of(r);
                f.recent_uses = Some(r.get(22));
                f
            })
            .collect();
        let next = (q.offset + (filters.len() as i64) < total).then_some(q.offset + filters.len() as i64);
        Ok(FilterPage { filters, total, limit: q.limit, offset: q.offset, next_offset: next })
    }

    /// The filters `user` marked as favourites, newest first.
    pub async fn favorites(&self, user: i64) -> Result<Vec<StreamFilter>, ApiError> {
        let sql = format!("{SELECT}{FROM} JOIN stream_filter_favorites fv ON fv.filter_id = f.id AND fv.user_id = $1 WHERE (f.public = 1 OR f.creator_id = $1) ORDER BY fv.created_at DESC, f.id");
        let rows = sqlx::query(&sql).bind(user).fetch_all(&self.pool).await.db()?;
        Ok(rows.iter().map(filter_of).collect())
    }

    /// The premium filters `user` unlocked, newest first (retired ones too: they keep them).
    pub async fn unlocked(&self, user: i64) -> Result<Vec<StreamFilter>, ApiError> {
        let sql = format!("{SELECT}{FROM} JOIN stream_filter_unlocks ul ON ul.filter_id = f.id AND ul.user_id = $1 ORDER BY ul.created_at DESC, f.id");
        let rows = sqlx::query(&sql).bind(user).fetch_all(&self.pool).await.db()?;
        Ok(rows.iter().map(filter_of).collect())
    }

    /// Presets `user` made (private ones included), newest first.
    pub async fn custom_of(&self, user: i64) -> Result<Vec<StreamFilter>, ApiError> {
        let sql = format!("{SELECT}{FROM} WHERE f.creator_id = $1 AND f.base_id IS NOT NULL AND f.enabled = 1 ORDER BY f.created_at DESC, f.id");
        let rows = sqlx::query(&sql).bind(user).fetch_all(&self.pool).await.db()?;
        Ok(rows.iter().map(filter_of).collect())
    }
}
