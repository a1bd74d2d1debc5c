//! Where the access tokens' signing keys come from, and how they rotate.
//!
//! - `ONAIR_JWT_SECRET` (at least 32 characters) signs when it is set;
//!   `ONAIR_JWT_PREVIOUS_SECRETS` (comma separated) and the key file's keys
//!   still verify, so moving to the variable, or rotating it, logs no one out.
//! - Otherwise the key file [`KEY_FILE`] in the data directory (mode 0600,
//!   made on first start; the server refuses one others may read): its first
//!   key signs, the others verify.
//! - Databases from before the key file kept the key in `server_settings`:
//!   it is moved into the file and deleted from the database at start, so
//!   every login goes on working (tokens made before key ids existed are
//!   checked against every key).
//!
//! `onair jwt-key rotate` puts a new key first and marks the old one
//! `retired=<unix seconds>`: it verifies for [`RETIRED_FOR`] (longer than
//! any access token lives), is then ignored, and is dropped at the next
//! rotation. A running server reads the file again on `SIGHUP`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sqlx::SqlitePool;

use super::token::KeyRing;
use super::TokenLifetimes;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "jwt-keys";
/// How long a rotated-out key goes on verifying: the longest an access
/// token lives, and five minutes for clocks and stragglers.
pub const RETIRED_FOR: Duration = Duration::from_secs(TokenLifetimes::ACCESS_SECS + 300);
/// Shortest secret accepted from the environment.
const MIN_SECRET: usize = 32;

/// Secrets given in the environment.
#[derive(Debug, Clone, Default)]
pub struct EnvSecrets {
    /// `ONAIR_JWT_SECRET`: signs.
    pub current: Option<String>,
    /// `ONAIR_JWT_PREVIOUS_SECRETS`: verify only.
    pub previous: Vec<String>,
}

impl EnvSecrets {
    /// Reads (and checks) `ONAIR_JWT_SECRET` and `ONAIR_JWT_PREVIOUS_SECRETS`.
    pub fn from_env() -> Result<EnvSecrets, String> {
        let current = std::env::var("ONAIR_JWT_SECRET").ok().filter(|s| !s.is_empty());
        let previous: Vec<String> = std::env::var("ONAIR_JWT_PREVIOUS_SECRETS").unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if current.as_ref().is_some_and(|s| s.len() < MIN_SECRET) || previous.iter().any(|s| s.len() < MIN_SECRET) {
            return Err(format!("ONAIR_JWT_SECRET (and each of ONAIR_JWT_PREVIOUS_SECRETS) must be at least {MIN_SECRET} characters; make one with `openssl rand -base64 32`"));
        }
        if current.is_none() && !previous.is_empty() {
            return Err("ONAIR_JWT_PREVIOUS_SECRETS is set without ONAIR_JWT_SECRET".into());
        }
        Ok(EnvSecrets { current, previous })
    }
}

/// A key of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileKey {
    secret: Vec<u8>,
    /// When it stopped signing (Unix seconds).
    retired: Option<i64>,
}

impl FileKey {
    fn verifies(&self, now: i64) -> bool {
        self.retired.is_none_or(|at| now < at + RETIRED_FOR.as_secs() as i64)
    }
}

/// The key file of a data directory.
pub fn key_file(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_FILE)
}

/// The file's keys, or `None` when there is no file.
fn read_file(path: &Path) -> Result<Option<Vec<FileKey>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!("{} holds the token signing keys but others may read it (mode {:o}); run `chmod 600 {}`", path.display(), mode & 0o777, path.display()));
        }
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let bad = || format!("{} line {}: expected '<base64 secret> [retired=<unix seconds>]'", path.display(), n + 1);
        let secret = words.next().and_then(|w| B64.decode(w).ok()).filter(|s| s.len() >= MIN_SECRET).ok_or_else(bad)?;
        let retired = match words.next() {
            Some(w) => Some(w.strip_prefix("retired=").and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad)?),
            None => None,
        };
        keys.push(FileKey { secret, retired });
    }
    if keys.is_empty() {
        return Err(format!("{} has no key; delete it to have a new one made", path.display()));
    }
    Ok(Some(keys))
}

/// Writes the file whole (a new file, mode 0600, renamed over the old).
fn write_file(path: &Path, keys: &[FileKey]) -> Result<(), String> {
    let mut text = String::from(
        "# OnAir's access-token signing keys. Keep this file secret (mode 0600).\n\
         # The first key signs; the others only verify tokens made before a rotation.\n\
         # Rotate with `onair jwt-key rotate`, then send the server SIGHUP (or restart it).\n",
    );
    for k in keys {
        text.push_str(&B64.encode(&k.secret));
        if let Some(at) = k.retired {
            text.push_str(&format!(" retired={at}"));
        }
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn fresh() -> FileKey {
    FileKey { secret: rand::random::<[u8; 32]>().to_vec(), retired: None }
}

/// Moves a key kept in the database by earlier releases into the file
/// (first if the file is new, else as a verifying key), then out of the database.
async fn move_legacy_key(pool: &SqlitePool, path: &Path, now: i64) -> Result<(), String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT value FROM server_settings WHERE name = 'jwt_secret'").fetch_optional(pool).await.map_err(|e| e.to_string())?;
    let Some((value,)) = row else { return Ok(()) };
    let secret = B64.decode(value.trim()).map_err(|e| format!("the database's jwt_secret: {e}"))?;
    let mut keys = read_file(path)?.unwrap_or_default();
    if !keys.iter().any(|k| k.secret == secret) {
        let retired = if keys.is_empty() { None } else { Some(now) };
        keys.push(FileKey { secret, retired });
        write_file(path, &keys)?;
    }
    sqlx::query("DELETE FROM server_settings WHERE name = 'jwt_secret'").execute(pool).await.map_err(|e| e.to_string())?;
    tracing::info!("moved the token signing key from the database to {}", path.display());
    Ok(())
}

/// The keys to use now (`now` in Unix seconds): see the module docs.
pub async fn load(data_dir: &Path, pool: &SqlitePool, env: &EnvSecrets, now: i64) -> Result<KeyRing, String> {
    let path = key_file(data_dir);
    move_legacy_key(pool, &path, now).await?;
    let file = read_file(&path)?;
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    if let Some(current) = &env.current {
        secrets.push(current.as_bytes().to_vec());
        secrets.extend(env.previous.iter().map(|s| s.as_bytes().to_vec()));
        secrets.extend(file.iter().flatten().filter(|k| k.verifies(now)).map(|k| k.secret.clone()));
    } else {
        let keys = match file {
            Some(keys) => keys,
            None => {
                let keys = vec![fresh()];
                write_file(&path, &keys)?;
                tracing::info!("made a token signing key in {}", path.display());
                keys
            }
        };
        if keys[0].retired.is_some() {
            return Err(format!("{}: the first key (the one that signs) is marked retired", path.display()));
        }
        secrets.extend(keys.iter().filter(|k| k.verifies(now)).map(|k| k.secret.clone()));
    }
    Ok(KeyRing::new(&secrets))
}

/// Rotates the file's keys (`now` in Unix seconds): a new key signs, the
/// old ones are retired, keys retired long enough ago are dropped. Returns
/// the new key's id and the ids of the keys kept.
pub async fn rotate(data_dir: &Path, pool: &SqlitePool, now: i64) -> Result<(String, Vec<String>), String> {
    let path = key_file(data_dir);
    move_legacy_key(pool, &path, now).await?;
    let mut keys = read_file(&path)?.unwrap_or_default();
    for k in &mut keys {
        k.retired.get_or_insert(now);
    }
    keys.retain(|k| k.verifies(now));
    let new = fresh();
    keys.insert(0, new);
    write_file(&path, &keys)?;
    let kids: Vec<String> = keys.iter().map(|k| super::token::kid_of(&k.secret)).collect();
    Ok((kids[0].clone(), kids[1..].to_vec()))
}

/// The file's keys as `(id, retired)`, for `onair jwt-key list` (never the secrets).
pub fn list(data_dir: &Path) -> Result<Vec<(String, Option<i64>)>, String> {
    Ok(read_file(&key_file(data_dir))?.unwrap_or_default().iter().map(|k| (super::token::kid_of(&k.secret), k.retired)).collect())
}

#[cfg(test)]
mod tests {
    use super::super::token::{kid_of, Claims};
    use super::*;

    fn claims() -> Claims {
        Claims { sub: 1, sid: 1, usr: "ana".into(), role: "viewer".into(), iat: 0, exp: i64::MAX }
    }

    async fn fresh_db(tag: &str) -> (PathBuf, SqlitePool) {
        let dir = std::env::temp_dir().join(format!("onair-signing-{tag}-{}-{}", std::process::id(), rand::random::<u32>()));
        let pool = crate::db::open(&dir).await.unwrap();
        (dir, pool)
    }

    #[tokio::test]
    async fn an_old_databases_key_moves_to_a_private_file_and_its_tokens_still_verify() {
        let (dir, pool) = fresh_db("legacy").await;
        // What earlier releases did: the secret in a database row.
        let secret = rand::random::<[u8; 32]>().to_vec();
        sqlx::query("INSERT INTO server_settings (name, value) VALUES ('jwt_secret', $1)").bind(B64.encode(&secret)).execute(&pool).await.unwrap();
        let before = KeyRing::new(&[&secret]).sign(&claims());
        let ring = load(&dir, &pool, &EnvSecrets::default(), 1000).await.unwrap();
        assert!(ring.verify(&before, 0).is_ok(), "nobody is logged out");
        assert_eq!(ring.kids(), vec![kid_of(&secret)], "the old key goes on signing");
        let row: Option<(String,)> = sqlx::query_as("SELECT value FROM server_settings WHERE name = 'jwt_secret'").fetch_optional(&pool).await.unwrap();
        assert!(row.is_none(), "the key is no longer in the database");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(key_file(&dir)).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // Loading again changes nothing.
        assert_eq!(load(&dir, &pool, &EnvSecrets::default(), 1000).await.unwrap().kids(), ring.kids());
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn rotation_keeps_old_tokens_valid_until_they_expire() {
        let (dir, pool) = fresh_db("rotate").await;
        let first = load(&dir, &pool, &EnvSecrets::default(), 1000).await.unwrap();
        let old_token = first.sign(&claims());
        let (new_kid, kept) = rotate(&dir, &pool, 2000).await.unwrap();
        assert_eq!(kept, first.kids());
        let second = load(&dir, &pool, &EnvSecrets::default(), 2000).await.unwrap();
        assert_eq!(second.kids(), vec![new_kid.clone(), first.kids()[0].clone()]);
        assert!(second.verify(&old_token, 0).is_ok(), "the old key verifies after the rotation");
        assert!(second.verify(&second.sign(&claims()), 0).is_ok());
        let later = 2000 + RETIRED_FOR.as_secs() as i64;
        assert!(load(&dir, &pool, &EnvSecrets::default(), later).await.unwrap().verify(&old_token, 0).is_err(), "past its tokens' lifetime the old key is ignored");
        let (_, kept) = rotate(&dir, &pool, later).await.unwrap();
        assert_eq!(kept, vec![new_kid], "and dropped at the next rotation");
        assert_eq!(list(&dir).unwrap().len(), 2);
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_environment_signs_and_the_file_still_verifies() {
        let (dir, pool) = fresh_db("env").await;
        let file_ring = load(&dir, &pool, &EnvSecrets::default(), 1000).await.unwrap();
        let old_token = file_ring.sign(&claims());
        let env = EnvSecrets { current: Some("x".repeat(40)), previous: vec!["y".repeat(32)] };
        let ring = load(&dir, &pool, &env, 1000).await.unwrap();
        assert_eq!(ring.kids()[0], kid_of("x".repeat(40).as_bytes()), "the variable signs");
        assert!(ring.verify(&old_token, 0).is_ok(), "switching to the variable logs no one out");
        assert!(ring.verify(&KeyRing::new(&["y".repeat(32)]).sign(&claims()), 0).is_ok(), "previous secrets verify");
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_key_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, pool) = fresh_db("mode").await;
        load(&dir, &pool, &EnvSecrets::default(), 1000).await.unwrap();
        std::fs::set_permissions(key_file(&dir), std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&dir, &pool, &EnvSecrets::default(), 1000).await.unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
