//! Accounts: users and roles, registration, login sessions and tokens.
//!
//! A login makes an `auth_sessions` row and hands out a short-lived JWT
//! access token (naming the session) and an opaque refresh token. Refreshing
//! rotates the refresh token; presenting a used one again revokes the whole
//! session (it was stolen or replayed). Logging out revokes the session, so
//! its access tokens stop working at once, not when they expire.

pub mod password;
pub mod signing;
pub mod token;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::DbResult;
use token::{Claims, KeyRing};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches, chats, follows.
    Viewer,
    /// Also owns streams and stream keys (a creator or seller).
    Host,
    /// Also moderates every channel's chat.
    Moderator,
    /// Everything, including users' roles and webhooks.
    Admin,
}

impl Role {
    /// From its name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "host" => Some(Role::Host),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Host => "host",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// May own streams and go live.
    pub fn can_host(self) -> bool {
        matches!(self, Role::Host | Role::Admin)
    }

    /// Moderates everywhere and sees every stream.
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

/// A user as the API shows it to the user themself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Unique, lowercase; also the channel name (`/watch/{username}`).
    pub username: String,
    /// Email (only shown to the user and admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// When the account was made.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A user as anyone may see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicUser {
    /// Id.
    pub id: i64,
    /// Username (channel name).
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
}

impl From<&User> for PublicUser {
    fn from(u: &User) -> Self {
        PublicUser { id: u.id, username: u.username.clone(), display_name: u.display_name.clone(), role: u.role }
    }
}

type UserRow = (i64, String, Option<String>, String, String, i64);
const USER_COLS: &str = "id, username, email, display_name, role, created_at";

fn user_of(r: UserRow) -> User {
    User { id: r.0, username: r.1, email: r.2, display_name: r.3, role: Role::parse(&r.4).unwrap_or(Role::Viewer), created_at: r.5 }
}

/// The tokens of a login or refresh.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Opaque; trade it at `POST /api/auth/refresh` for a new pair (once).
    pub refresh_token: String,
    /// Who logged in.
    pub user: User,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user (as stored now, not as when the token was made).
    pub user: User,
    /// Their login session.
    pub session_id: i64,
}

impl Principal {
    /// User id.
    pub fn id(&self) -> i64 {
        self.user.id
    }

    /// Role.
    pub fn role(&self) -> Role {
        self.user.role
    }
}

/// What registration takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Registration {
    /// 3-32 of a-z, 0-9 and `_`, not only digits (case is folded).
    pub username: String,
    /// An email address.
    pub email: String,
    /// 8-128 characters.
    pub password: String,
    /// Shown name, 1-50 characters (default: the username).
    #[serde(default)]
    pub display_name: Option<String>,
    /// `viewer` (default) or `host` (when the server lets hosts sign up).
    #[serde(default)]
    pub role: Option<Role>,
}

/// Names pages and the API use themselves.
const RESERVED: &[&str] = &["admin", "api", "static", "whip", "whep", "watch", "publish", "login", "dashboard", "live", "onair", "system", "moderator", "support"];

/// A username's problem, if any.
pub fn username_problem(name: &str) -> Option<&'static str> {
    if !(3..=32).contains(&name.len()) {
        Some("must be 3-32 characters")
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        Some("may only contain a-z, 0-9 and _")
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        Some("must not be only digits (those are stream ids)")
    } else if RESERVED.contains(&name) {
        Some("is reserved")
    } else {
        None
    }
}

fn email_problem(email: &str) -> Option<&'static str> {
    let Some((local, domain)) = email.split_once('@') else { return Some("must be an email address") };
    if email.len() > 254 || local.is_empty() || !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || email.contains(char::is_whitespace) {
        Some("must be an email address")
    } else {
        None
    }
}

/// How long tokens live.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Access tokens (JWT).
    pub access: Duration,
    /// Login sessions (and so refresh tokens).
    pub session: Duration,
}

impl TokenLifetimes {
    /// How long an access token lives, in seconds.
    pub const ACCESS_SECS: u64 = 15 * 60;
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        TokenLifetimes { access: Duration::from_secs(Self::ACCESS_SECS), session: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// The account store and token issuer.
#[derive(Clone)]
pub struct Accounts {
    pool: SqlitePool,
    /// The signing keys ([`signing`]); replaced whole when they are reloaded.
    keys: std::sync::Arc<std::sync::RwLock<KeyRing>>,
    lifetimes: TokenLifetimes,
    /// Revoked login sessions not yet expired (checked on every request).
    revoked: std::sync::Arc<DashMap<i64, i64>>,
}

fn random_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", B64.encode(bytes))
}

/// SHA-256, hex: how tokens and keys are stored.
pub fn sha256_hex(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new refresh token of login session `sid`, stored (hashed) in `tx`.
async fn issue_refresh(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, sid: i64, now: i64) -> Result<String, ApiError> {
    let token = random_token("rt_");
    sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(sha256_hex(&token))
        .bind(sid)
        .bind(now)
        .execute(&mut **tx)
        .await
        .db()?;
    Ok(token)
}

fn bad_login() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", "wrong username or password")
}

impl Accounts {
    /// Opens the store with these signing keys; loads the revoked sessions.
    pub async fn open(pool: SqlitePool, keys: KeyRing, lifetimes: TokenLifetimes) -> Result<Accounts, String> {
        let now = now_ms();
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT id, expires_at FROM auth_sessions WHERE revoked_at IS NOT NULL AND expires_at > $1")
            .bind(now)
            .fetch_all(&pool)
            .await
            .map_err(|e| e.to_string())?;
        let revoked = DashMap::new();
        for (id, exp) in rows {
            revoked.insert(id, exp);
        }
        Ok(Accounts { pool, keys: std::sync::Arc::new(std::sync::RwLock::new(keys)), lifetimes, revoked: std::sync::Arc::new(revoked) })
    }

    /// Uses these signing keys from now on (after a rotation).
    pub fn set_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    /// The ids of the signing keys, the one that signs first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).kids()
    }

    /// Checks and stores a new account.
    pub async fn register(&self, reg: Registration, allow_host_signup: bool) -> Result<User, ApiError> {
        let username = reg.username.trim().to_ascii_lowercase();
        let email = reg.email.trim().to_ascii_lowercase();
        let display_name = reg.display_name.as_deref().map(str::trim).filter(|d| !d.is_empty()).unwrap_or(&username).to_owned();
        let mut fields = BTreeMap::new();
        if let Some(p) = username_problem(&username) {
            fields.insert("username".into(), p.into());
        }
        if let Some(p) = email_problem(&email) {
            fields.insert("email".into(), p.into());
        }
        let plen = reg.password.chars().count();
        if !(8..=128).contains(&plen) {
            fields.insert("password".into(), "must be 8-128 characters".into());
        }
        if display_name.chars().count() > 50 {
            fields.insert("display_name".into(), "must be at most 50 characters".into());
        }
        let role = reg.role.unwrap_or(Role::Viewer);
        match role {
            Role::Viewer => {}
            Role::Host if allow_host_signup => {}
            Role::Host => {
                fields.insert("role".into(), "this server does not let hosts sign up; ask an admin".into());
            }
            _ => {
                fields.insert("role".into(), "must be viewer or host".into());
            }
        }
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let hash = password::hash(reg.password).await.map_err(ApiError::internal)?;
        let r = sqlx::query_as::<_, UserRow>(&format!(
            "INSERT INTO users (username, email, display_name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLS}"
        ))
        .bind(&username)
        .bind(&email)
        .bind(&display_name)
        .bind(&hash)
        .bind(role.as_str())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await;
        match r {
            Ok(row) => Ok(user_of(row)),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let taken = if e.message().contains("email") { "email" } else { "username" };
                Err(ApiError { fields: BTreeMap::from([(taken.into(), "is already taken".into())]), ..ApiError::new(StatusCode::CONFLICT, "taken", format!("that {taken} is already taken")) })
            }
            Err(e) => Err(ApiError::internal(e)),
        }
    }

    /// Checks a username (or email) and password; starts a login session.
    pub async fn login(&self, login: &str, password: &str, user_agent: &str, ip: Option<String>) -> Result<TokenPair, ApiError> {
        let login = login.trim().to_ascii_lowercase();
        let row: Option<(i64, Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT id, password_hash, disabled_at FROM users WHERE username = $1 OR email = $1")
                .bind(&login)
                .fetch_optional(&self.pool)
                .await
                .db()?;
        let stored = row.as_ref().and_then(|r| r.1.clone());
        if !password::verify(password.to_owned(), stored).await {
            return Err(bad_login());
        }
        let (id, _, disabled) = row.ok_or_else(bad_login)?;
        if disabled.is_some() {
            return Err(ApiError::forbidden("this account is disabled"));
        }
        let user = self.user(id).await?.ok_or_else(bad_login)?;
        self.start_session(user, user_agent, ip).await
    }

    /// A new login session for a user whose credentials were checked (or
    /// who just registered, or the CLI and the benchmark harness).
    pub async fn start_session(&self, user: User, user_agent: &str, ip: Option<String>) -> Result<TokenPair, ApiError> {
        let now = now_ms();
        let expires = now + self.lifetimes.session.as_millis() as i64;
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let (sid,): (i64,) = sqlx::query_as("INSERT INTO auth_sessions (user_id, created_at, expires_at, user_agent, ip) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(user.id)
            .bind(now)
            .bind(expires)
            .bind(user_agent)
            .bind(ip)
            .fetch_one(&mut *tx)
            .await
            .db()?;
        let refresh = issue_refresh(&mut tx, sid, now).await?;
        tx.commit().await.db()?;
        Ok(self.pair(user, sid, refresh))
    }

    fn pair(&self, user: User, sid: i64, refresh_token: String) -> TokenPair {
        let access_token = self.access_token(&user, sid);
        TokenPair { access_token, token_type: "Bearer", expires_in: self.lifetimes.access.as_secs() as i64, refresh_token, user }
    }

    /// A signed access token for this user and login session.
    pub fn access_token(&self, user: &User, sid: i64) -> String {
        let now = now_ms() / 1000;
        let exp = now + self.lifetimes.access.as_secs() as i64;
        self.keys.read().unwrap_or_else(|p| p.into_inner()).sign(&Claims { sub: user.id, sid, usr: user.username.clone(), role: user.role.as_str().into(), iat: now, exp })
    }

    /// Trades a refresh token for a new pair; a reused one revokes its session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ApiError> {
        let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid_refresh_token", "this refresh token is unknown, used or expired; log in again");
        let hash = sha256_hex(refresh_token.trim());
        let now = now_ms();
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let row: Option<(i64, Option<i64>, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT t.session_id, t.used_at, s.expires_at, s.revoked_at, s.user_id FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some((sid, used, expires, revoked, user_id)) = row else { return Err(invalid()) };
        if revoked.is_some() || expires <= now {
            return Err(invalid());
        }
        // Claim the token; of two racing uses, one finds it already used.
        let claimed = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL").bind(now).bind(&hash).execute(&mut *tx).await.db()?;
        if used.is_some() || claimed.rows_affected() == 0 {
            tx.rollback().await.db()?;
            self.revoke_session(sid).await?;
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "refresh_token_reused", "this refresh token was already used; the login was ended for safety"));
        }
        let next = issue_refresh(&mut tx, sid, now).await?;
        tx.commit().await.db()?;
        let user = self.user(user_id).await?.ok_or_else(invalid)?;
        Ok(self.pair(user, sid, next))
    }

    /// Ends a login session: its refresh and access tokens stop working.
    pub async fn revoke_session(&self, sid: i64) -> Result<(), ApiError> {
        let row: Option<(i64,)> = sqlx::query_as("UPDATE auth_sessions SET revoked_at = $1 WHERE id = $2 RETURNING expires_at")
            .bind(now_ms())
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        if let Some((exp,)) = row {
            self.revoked.insert(sid, exp);
        }
        Ok(())
    }

    /// The caller behind an access token, as the database knows them now.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.verify(token)?;
        let user = self.user(claims.sub).await?.ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
        Ok(Principal { user, session_id: claims.sid })
    }

    /// Checks a token's signature, expiry and session without the database.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = self.keys.read().unwrap_or_else(|p| p.into_inner()).verify(token, now_ms() / 1000).map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", e))?;
        if self.revoked.contains_key(&claims.sid) {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "this login was ended"));
        }
        Ok(claims)
    }

    /// A user by id (disabled users are treated as gone).
    pub async fn user(&self, id: i64) -> Result<Option<User>, ApiError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE id = $1 AND disabled_at IS NULL"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(user_of))
    }

    /// A user by username.
    pub async fn by_username(&self, name: &str) -> Result<Option<User>, ApiError> {
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE username = $1 AND disabled_at IS NULL"))
            .bind(name.trim().to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(user_of))
    }

    /// A user by id or username, disabled ones too (an admin enables them again).
    pub async fn lookup_any(&self, id_or_name: &str) -> Result<Option<User>, ApiError> {
        let id = id_or_name.parse::<i64>().ok();
        let row: Option<UserRow> = sqlx::query_as(&format!("SELECT {USER_COLS} FROM users WHERE ($1 IS NOT NULL AND id = $1) OR ($1 IS NULL AND username = $2)"))
            .bind(id)
            .bind(id_or_name.trim().to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(user_of))
    }

    /// A user by id or username (`42` or `ana`), as in URLs.
    pub async fn lookup(&self, id_or_name: &str) -> Result<Option<User>, ApiError> {
        match id_or_name.parse::<i64>() {
            Ok(id) => self.user(id).await,
            Err(_) => self.by_username(id_or_name).await,
        }
    }

    /// Sets a user's role (admins, the CLI).
    pub async fn set_role(&self, id: i64, role: Role) -> Result<User, ApiError> {
        sqlx::query("UPDATE users SET role = $1 WHERE id = $2").bind(role.as_str()).bind(id).execute(&self.pool).await.db()?;
        self.user(id).await?.ok_or_else(|| ApiError::not_found("no such user"))
    }

    /// Sets a password (8-128 characters).
    pub async fn set_password(&self, id: i64, password: &str) -> Result<(), ApiError> {
        if !(8..=128).contains(&password.chars().count()) {
            return Err(ApiError::validation(BTreeMap::from([("password".into(), "must be 8-128 characters".into())])));
        }
        let hash = password::hash(password.to_owned()).await.map_err(ApiError::internal)?;
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(id).execute(&self.pool).await.db()?;
        Ok(())
    }

    /// Disables (or enables) an account; disabling ends all its logins.
    pub async fn set_disabled(&self, id: i64, disabled: bool) -> Result<(), ApiError> {
        let now = now_ms();
        sqlx::query("UPDATE users SET disabled_at = CASE WHEN $1 = 1 THEN $2 ELSE NULL END WHERE id = $3").bind(disabled as i64).bind(now).bind(id).execute(&self.pool).await.db()?;
        if disabled {
            let ended: Vec<(i64, i64)> = sqlx::query_as("UPDATE auth_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL RETURNING id, expires_at")
                .bind(now)
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .db()?;
            for (sid, exp) in ended {
                self.revoked.insert(sid, exp);
            }
        }
        Ok(())
    }

    /// The host account of this username, made (without a password) if
    /// missing: what the `stream-key` CLI works on.
    pub async fn ensure_host(&self, username: &str) -> Result<User, ApiError> {
        let username = username.trim().to_ascii_lowercase();
        if let Some(p) = username_problem(&username) {
            return Err(ApiError::validation(BTreeMap::from([("username".into(), p.into())])));
        }
        sqlx::query("INSERT INTO users (username, display_name, role, created_at) VALUES ($1, $1, 'host', $2) ON CONFLICT (username) DO NOTHING")
            .bind(&username)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .db()?;
        let user = self.by_username(&username).await?.ok_or_else(|| ApiError::not_found("no such user"))?;
        if user.role.can_host() {
            Ok(user)
        } else {
            self.set_role(user.id, Role::Host).await
        }
    }

    /// Makes a password-less account without registration's checks and
    /// hashing cost (the benchmark harness sets up thousands of users, and
    /// logs them in with [`Accounts::start_session`]).
    pub async fn create_unchecked(&self, username: &str, role: Role) -> Result<User, ApiError> {
        let row: UserRow = sqlx::query_as(&format!("INSERT INTO users (username, display_name, role, created_at) VALUES ($1, $1, $2, $3) RETURNING {USER_COLS}"))
            .bind(username)
            .bind(role.as_str())
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(user_of(row))
    }
}
