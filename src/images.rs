//! Uploaded images (stream thumbnails, channel thumbnails, avatars): checked,
//! stored as files under `DATA_DIR/images/`, and served at `/images/{name}`.
//!
//! An image is named by its content (`{sha256 prefix}.{jpg|png|webp}`), so a
//! name never changes meaning: it is served with a strong `ETag` and cached
//! by browsers for a year. Replacing a picture makes a new name; the old file
//! is deleted once nothing refers to it any more.
//!
//! Checks: the type comes from the file's first bytes (JPEG, PNG or WebP;
//! the declared `Content-Type` must agree), at most [`MAX_BYTES`], and
//! dimensions read from the header within [`MIN_SIDE`]..=[`MAX_SIDE`].

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::db::DbResult;

/// Largest upload.
pub const MAX_BYTES: usize = 2 * 1024 * 1024;
/// Smallest width and height.
pub const MIN_SIDE: usize = 16;
/// Largest width and height.
pub const MAX_SIDE: usize = 4096;
/// Where uploads are served from.
pub const URL_PREFIX: &str = "/images/";

/// The image types accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    Webp,
}

impl ImageType {
    /// From the first bytes of a file.
    pub fn sniff(b: &[u8]) -> Option<ImageType> {
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageType::Jpeg)
        } else if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(ImageType::Png)
        } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
            Some(ImageType::Webp)
        } else {
            None
        }
    }

    /// From a `Content-Type` value (parameters ignored).
    pub fn from_mime(mime: &str) -> Option<ImageType> {
        match mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" => Some(ImageType::Jpeg),
            "image/png" => Some(ImageType::Png),
            "image/webp" => Some(ImageType::Webp),
            _ => None,
        }
    }

    /// Its MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
        }
    }

    /// Its file extension.
    pub fn ext(self) -> &'static str {
        match self {
            ImageType::Jpeg => "jpg",
            ImageType::Png => "png",
            ImageType::Webp => "webp",
        }
    }

    fn from_ext(ext: &str) -> Option<ImageType> {
        match ext {
            "jpg" => Some(ImageType::Jpeg),
            "png" => Some(ImageType::Png),
            "webp" => Some(ImageType::Webp),
            _ => None,
        }
    }
}

/// An image file in a request body (for the API document).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ImageFile(#[allow(dead_code)] Vec<u8>);

/// A stored image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Image {
    /// Where it is served (`/images/{name}`).
    pub url: String,
    /// `image/jpeg`, `image/png` or `image/webp`.
    pub content_type: &'static str,
    /// Pixels.
    pub width: usize,
    /// Pixels.
    pub height: usize,
    /// Size of the file.
    pub bytes: usize,
}

fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

/// Checks an upload: its declared type, its real type, its size and its
/// dimensions.
pub fn check(declared: Option<&str>, data: &[u8]) -> Result<(ImageType, usize, usize), ApiError> {
    let accepted = "send a JPEG, PNG or WebP image with its Content-Type (image/jpeg, image/png, image/webp)";
    let declared = declared.and_then(ImageType::from_mime).ok_or_else(|| refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image", accepted))?;
    if data.len() > MAX_BYTES {
        return Err(refused(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large", format!("images are at most {} MiB", MAX_BYTES / 1024 / 1024)));
    }
    let real = ImageType::sniff(data).ok_or_else(|| refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image", format!("this is not a JPEG, PNG or WebP image; {accepted}")))?;
    if real != declared {
        return Err(refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image", format!("the file is {} but was sent as {}", real.mime(), declared.mime())));
    }
    let size = imagesize::blob_size(data).map_err(|_| refused(StatusCode::UNPROCESSABLE_ENTITY, "bad_image", "the image's header cannot be read (a damaged or cut-off file?)"))?;
    let ok = |side: usize| (MIN_SIDE..=MAX_SIDE).contains(&side);
    if !ok(size.width) || !ok(size.height) {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_image_size",
            format!("images must be {MIN_SIDE}-{MAX_SIDE} pixels wide and high; this one is {}×{}", size.width, size.height),
        ));
    }
    Ok((real, size.width, size.height))
}

/// The image store of a data directory.
#[derive(Debug, Clone)]
pub struct Images {
    dir: PathBuf,
}

impl Images {
    /// Images under `data_dir/images`.
    pub fn new(data_dir: &Path) -> Images {
        Images { dir: data_dir.join("images") }
    }

    /// Checks and stores an upload (the same bytes are stored once).
    pub async fn store(&self, declared: Option<&str>, data: &[u8]) -> Result<Image, ApiError> {
        let (kind, width, height) = check(declared, data)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, data);
        let hex: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{hex}.{}", kind.ext());
        let path = self.dir.join(&name);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            tokio::fs::create_dir_all(&self.dir).await.map_err(|e| ApiError::internal(format!("images dir: {e}")))?;
            // Written aside and renamed: a reader never sees half a file.
            let tmp = self.dir.join(format!(".{name}.{}", rand::random::<u32>()));
            tokio::fs::write(&tmp, data).await.map_err(|e| ApiError::internal(format!("write image: {e}")))?;
            tokio::fs::rename(&tmp, &path).await.map_err(|e| ApiError::internal(format!("store image: {e}")))?;
        }
        Ok(Image { url: format!("{URL_PREFIX}{name}"), content_type: kind.mime(), width, height, bytes: data.len() })
    }

    /// The file and type of a served name, if it is one of ours.
    pub fn file(&self, name: &str) -> Option<(PathBuf, ImageType, &'static str)> {
        let (stem, ext) = name.split_once('.')?;
        let kind = ImageType::from_ext(ext)?;
        if stem.len() != 32 || !stem.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        Some((self.dir.join(name), kind, kind.mime()))
    }

    /// Deletes the file behind `url` (one of ours) when no stream, channel or
    /// user refers to it any more.
    pub async fn release(&self, pool: &SqlitePool, url: Option<&str>) -> Result<(), ApiError> {
        let Some(url) = url else { return Ok(()) };
        let Some(name) = url.strip_prefix(URL_PREFIX) else { return Ok(()) };
        let Some((path, _, _)) = self.file(name) else { return Ok(()) };
        let (n,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM streams WHERE thumbnail_url = $1) + (SELECT COUNT(*) FROM channel_defaults WHERE thumbnail_url = $1) \
             + (SELECT COUNT(*) FROM users WHERE avatar_url = $1) + (SELECT COUNT(*) FROM products WHERE images LIKE '%' || $1 || '%')",
        )
        .bind(url)
        .fetch_one(pool)
        .await
        .db()?;
        if n == 0 {
            let _ = tokio::fs::remove_file(path).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid 1x1 PNG's header with the given size (the pixels do not matter to the checks).
    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn type_size_and_dimensions_are_checked() {
        assert_eq!(check(Some("image/png"), &png(640, 360)).unwrap(), (ImageType::Png, 640, 360));
        let code = |r: Result<(ImageType, usize, usize), ApiError>| r.unwrap_err().code;
        assert_eq!(code(check(Some("image/jpeg"), &png(640, 360))), "unsupported_image", "declared JPEG, is PNG");
        assert_eq!(code(check(Some("image/gif"), b"GIF89a")), "unsupported_image");
        assert_eq!(code(check(None, &png(640, 360))), "unsupported_image");
        assert_eq!(code(check(Some("image/png"), b"<svg></svg>")), "unsupported_image");
        assert_eq!(code(check(Some("image/png"), &png(8, 8))), "bad_image_size");
        assert_eq!(code(check(Some("image/png"), &png(5000, 100))), "bad_image_size");
        assert_eq!(code(check(Some("image/png"), &png(1, 1)[..10])), "bad_image");
        let mut big = png(640, 360);
        big.resize(MAX_BYTES + 1, 0);
        assert_eq!(code(check(Some("image/png"), &big)), "image_too_large");
    }

    #[test]
    fn only_our_names_are_files() {
        let im = Images::new(Path::new("/data"));
        assert!(im.file("0123456789abcdef0123456789abcdef.jpg").is_some());
        assert!(im.file("../onair.db").is_none());
        assert!(im.file("0123456789abcdef0123456789abcdef.svg").is_none());
        assert!(im.file("0123456789ABCDEF0123456789abcdef.png").is_none());
    }
}
