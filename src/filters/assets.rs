//! The catalogue's built-in asset files (`assets/filters/`, compiled into
//! the binary; `scripts/make_filter_assets.py` makes the images): 3D LUT
//! images for the colour looks, stickers, frames and backdrops. They are
//! not under `static/`, which anyone may read: a premium filter's assets
//! go only to those who may use it ([`Filters::asset`]).

use onair_signaling::ApiError;

use super::{catalogue, locked, not_found, FilterAsset, Filters};
use crate::db::DbResult;

/// (name, media type, bytes).
pub const FILES: &[(&str, &str, &[u8])] = &[
    ("lut_vintage.png", "image/png", include_bytes!("../../assets/filters/lut_vintage.png")),
    ("lut_warm.png", "image/png", include_bytes!("../../assets/filters/lut_warm.png")),
    ("lut_cool.png", "image/png", include_bytes!("../../assets/filters/lut_cool.png")),
    ("lut_mono.png", "image/png", include_bytes!("../../assets/filters/lut_mono.png")),
    ("lut_cinematic.png", "image/png", include_bytes!("../../assets/filters/lut_cinematic.png")),
    ("lut_teal_orange.png", "image/png", include_bytes!("../../assets/filters/lut_teal_orange.png")),
    ("lut_noir.png", "image/png", include_bytes!("../../assets/filters/lut_noir.png")),
    ("backdrop_studio.png", "image/png", include_bytes!("../../assets/filters/backdrop_studio.png")),
    ("sticker_heart.svg", "image/svg+xml", include_bytes!("../../assets/filters/sticker_heart.svg")),
    ("sticker_star.svg", "image/svg+xml", include_bytes!("../../assets/filters/sticker_star.svg")),
    ("sticker_cat_ears.svg", "image/svg+xml", include_bytes!("../../assets/filters/sticker_cat_ears.svg")),
    ("sticker_sunglasses.svg", "image/svg+xml", include_bytes!("../../assets/filters/sticker_sunglasses.svg")),
    ("frame_neon.svg", "image/svg+xml", include_bytes!("../../assets/filters/frame_neon.svg")),
];

/// The file of that name.
pub fn file(name: &str) -> Option<(&'static str, &'static [u8])> {
    FILES.iter().find(|f| f.0 == name).map(|f| (f.1, f.2))
}

/// What kind of asset a name is, from its prefix.
pub fn kind(name: &str) -> &'static str {
    match name.split('_').next() {
        Some("lut") => "lut",
        Some("backdrop") => "backdrop",
        Some("frame") => "frame",
        _ => "sticker",
    }
}

/// An asset of a filter, with its URL.
pub fn describe(filter: &str, name: &str) -> FilterAsset {
    FilterAsset { name: name.to_owned(), kind: kind(name).to_owned(), url: format!("/api/stream-filters/{filter}/assets/{name}") }
}

impl Filters {
    /// An asset of a filter for `user`: `404` if the filter does not list
    /// it, `403 locked` for a premium filter they have not unlocked.
    pub async fn asset(&self, id: &str, name: &str, user: Option<i64>) -> Result<(&'static str, &'static [u8]), ApiError> {
        let f = catalogue::get(&mut *self.pool.acquire().await.db()?, id, user).await?.ok_or_else(|| not_found(id))?;
        let mine = user.is_some() && f.creator.as_ref().map(|c| c.id) == user;
        if !f.public && !mine {
            return Err(not_found(id));
        }
        if !f.assets.iter().any(|a| a.name == name) {
            return Err(ApiError::not_found(format!("filter '{id}' has no asset '{name}'")));
        }
        if !f.unlocked {
            return Err(locked(&f.id, f.price_coins));
        }
        file(name).ok_or_else(|| ApiError::not_found(format!("no asset file '{name}'")))
    }
}
