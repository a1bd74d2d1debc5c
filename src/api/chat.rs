//! `/api/streams/{id}/chat*` and likes; `/api/channels/{host}/*`: chat
//! rules, bans, timeouts, moderators, gift subscriptions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use onair_signaling::{ApiError, Client};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{id, AppState, Auth, Body, MaybeAuth, Q};
use super::ErrorBody;
use crate::accounts::{Principal, User};
use crate::chat::moderation::{ChatSettings, RestrictionInfo, SettingsPatch};
use crate::chat::{ChatMessage, HistoryPage, HistoryQuery, Kind, PostMessage};
use crate::membership::{Subscription, MAX_GIFT_DAYS};
use crate::realtime::{Event, ModerationNotice, Topic};
use crate::streams::access;

/// Chat history, oldest first (page back with `before`). A closed stream's
/// chat is for those who may watch it.
#[utoipa::path(get, path = "/api/streams/{id}/chat", tag = "chat", params(("id" = i64, Path, description = "Stream id"), HistoryQuery),
    responses((status = 200, body = HistoryPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn history(State(app): State<AppState>, MaybeAuth(who): MaybeAuth, Path(sid): Path<String>, Q(q): Q<HistoryQuery>) -> Result<Json<HistoryPage>, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    access::check_watch(&app.membership, &s, who.as_ref()).await?;
    app.chat.history(s.id, &q).await.map(Json)
}

/// Posts a message (or a reaction, or a product highlight). Refusals say why
/// in `error.code`: `too_long`, `empty`, `rate_limited`, `slow_mode`,
/// `duplicate`, `timed_out`, `banned`, `subscribers_only`,
/// `followers_only`, `banned_word`, `chat_closed`, ...
#[utoipa::path(post, path = "/api/streams/{id}/chat", tag = "chat", security(("bearer" = [])), request_body = PostMessage,
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = ChatMessage),
              (status = 403, description = "banned, timed_out, subscribers_only, followers_only, ...", body = ErrorBody),
              (status = 422, description = "too_long, empty, duplicate, banned_word", body = ErrorBody),
              (status = 409, description = "chat_closed: the stream is over", body = ErrorBody),
              (status = 429, description = "rate_limited, slow_mode", body = ErrorBody)))]
pub async fn post(State(app): State<AppState>, Auth(who): Auth, Path(sid): Path<String>, Body(msg): Body<PostMessage>) -> Result<(StatusCode, Json<ChatMessage>), ApiError> {
    let m = app.chat.post(id(&sid, "stream")?, &who, msg).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Likes the stream (a ❤️ reaction).
#[utoipa::path(post, path = "/api/streams/{id}/like", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id")),
    responses((status = 201, body = ChatMessage), (status = 409, description = "chat_closed", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn like(State(app): State<AppState>, Auth(who): Auth, client: Client, Path(sid): Path<String>) -> Result<(StatusCode, Json<ChatMessage>), ApiError> {
    let stream = id(&sid, "stream")?;
    let m = app.chat.post(stream, &who, PostMessage { kind: Kind::Reaction, text: "❤️".into(), product: None }).await?;
    // In a like-mode PK battle, a point for this stream's host (never from a load test).
    if !client.load_test {
        app.battles.like(stream, who.id()).await;
    }
    Ok((StatusCode::CREATED, Json(m)))
}

/// Removes a message (the host and moderators).
#[utoipa::path(delete, path = "/api/streams/{id}/chat/{message_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Stream id"), ("message_id" = i64, Path, description = "Message id")),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(State(app): State<AppState>, Auth(who): Auth, Path((sid, mid)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let s = app.stream(id(&sid, "stream")?).await?;
    app.chat.delete(&s, id(&mid, "message")?, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The channel of `host` if `who` moderates it.
async fn moderated(app: &AppState, host: &str, who: &Principal) -> Result<User, ApiError> {
    let h = super::user_named(app, host).await?;
    if access::can_moderate(&app.membership, h.id, &who.user).await? {
        Ok(h)
    } else {
        Err(ApiError::forbidden(format!("you do not moderate {}'s channel", h.username)))
    }
}

/// A channel's chat rules.
#[utoipa::path(get, path = "/api/channels/{host}/chat-settings", tag = "moderation",
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChatSettings), (status = 404, body = ErrorBody)))]
pub async fn settings(State(app): State<AppState>, Path(host): Path<String>) -> Result<Json<ChatSettings>, ApiError> {
    let h = super::user_named(&app, &host).await?;
    let mut s = app.chat.moderation.rules(h.id).await?.settings.clone();
    // The list itself is the host team's business; viewers learn only its size from refusals.
    s.banned_words.clear();
    Ok(Json(s))
}

/// A channel's chat rules with the banned words (the host and moderators).
#[utoipa::path(get, path = "/api/channels/{host}/chat-settings/full", tag = "moderation", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChatSettings), (status = 403, body = ErrorBody)))]
pub async fn settings_full(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>) -> Result<Json<ChatSettings>, ApiError> {
    let h = moderated(&app, &host, &who).await?;
    Ok(Json(app.chat.moderation.rules(h.id).await?.settings.clone()))
}

/// Changes a channel's chat rules: slow mode, subscriber/follower-only, banned words.
#[utoipa::path(patch, path = "/api/channels/{host}/chat-settings", tag = "moderation", security(("bearer" = [])), request_body = SettingsPatch,
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = ChatSettings), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_settings(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, Body(p): Body<SettingsPatch>) -> Result<Json<ChatSettings>, ApiError> {
    let h = moderated(&app, &host, &who).await?;
    let before = app.chat.moderation.rules(h.id).await?.settings.clone();
    let after = app.chat.moderation.update(h.id, &p).await?;
    let mut public = after.clone();
    public.banned_words.clear();
    app.hub.publish(Topic::Channel(h.id), &Event::ChatSettings { settings: public });
    app.chat.moderation.log(h.id, None, who.id(), None, None, "chat_settings", Some(after.slow_mode_seconds), "").await?;
    if before.slow_mode_seconds != after.slow_mode_seconds || before.subscribers_only != after.subscribers_only || before.followers_only_minutes != after.followers_only_minutes {
        if let Some(live) = app.streams.live_of(h.id).await? {
            let text = describe_modes(&after);
            app.chat.system(live.id, text).await?;
        }
    }
    Ok(Json(after))
}

/// The system message announcing a channel's chat rules, e.g. "Chat is in
/// slow mode (10 s) and followers-only mode".
pub fn describe_modes(s: &ChatSettings) -> String {
    let mut parts = Vec::new();
    if s.slow_mode_seconds > 0 {
        parts.push(format!("slow mode ({} s)", s.slow_mode_seconds));
    }
    if s.subscribers_only {
        parts.push("subscribers-only mode".to_owned());
    }
    match s.followers_only_minutes {
        Some(0) => parts.push("followers-only mode".to_owned()),
        Some(m) => parts.push(format!("followers-only mode ({m} min of following)")),
        None => {}
    }
    match parts.len() {
        0 => "Chat is open to everyone".to_owned(),
        1 => format!("Chat is in {}", parts[0]),
        n => format!("Chat is in {} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// Bans and running timeouts of a channel.
#[utoipa::path(get, path = "/api/channels/{host}/restrictions", tag = "moderation", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = [RestrictionInfo]), (status = 403, body = ErrorBody)))]
pub async fn restrictions(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>) -> Result<Json<Vec<RestrictionInfo>>, ApiError> {
    let h = moderated(&app, &host, &who).await?;
    app.chat.moderation.list(h.id).await.map(Json)
}

/// A timeout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutInput {
    /// Username or id.
    pub user: String,
    /// 1 s to 2 weeks (1209600).
    pub seconds: i64,
    /// Why (kept in the moderation log).
    #[serde(default)]
    pub reason: String,
}

/// A ban.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanInput {
    /// Username or id.
    pub user: String,
    /// Why (kept in the moderation log).
    #[serde(default)]
    pub reason: String,
}

/// What a ban or timeout did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Restricted {
    /// Who.
    pub user_id: i64,
    /// Banned (else timed out).
    pub banned: bool,
    /// Until (timeouts).
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<i64>,
}

/// The target of a moderation action: not the host, and not one of the
/// host's moderators unless the host (or an admin) acts.
async fn target(app: &AppState, host: &User, user: &str, who: &Principal) -> Result<User, ApiError> {
    let t = super::user_named(app, user).await?;
    if t.id == host.id {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cannot_target_host", "the host cannot be banned or timed out in their own channel"));
    }
    let acting_as_owner = who.id() == host.id || who.role() == crate::accounts::Role::Admin;
    if !acting_as_owner && access::can_moderate(&app.membership, host.id, &t).await? {
        return Err(ApiError::forbidden("only the host may act against one of their moderators"));
    }
    Ok(t)
}

fn notice(host: &User, t: &User, action: &str, until: Option<i64>) -> Event {
    Event::Moderation(ModerationNotice { host_id: host.id, action: action.to_owned(), user_id: t.id, username: t.username.clone(), until })
}

/// Times a user out of the channel's chat.
#[utoipa::path(post, path = "/api/channels/{host}/timeouts", tag = "moderation", security(("bearer" = [])), request_body = TimeoutInput,
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 201, body = Restricted), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn timeout(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, Body(input): Body<TimeoutInput>) -> Result<(StatusCode, Json<Restricted>), ApiError> {
    let h = moderated(&app, &host, &who).await?;
    let t = target(&app, &h, &input.user, &who).await?;
    let until = app.chat.moderation.timeout(h.id, t.id, input.seconds, &input.reason, who.id()).await?;
    app.chat.moderation.log(h.id, None, who.id(), Some(t.id), None, "timeout", Some(input.seconds), &input.reason).await?;
    app.hub.publish(Topic::Channel(h.id), &notice(&h, &t, "timeout", Some(until)));
    Ok((StatusCode::CREATED, Json(Restricted { user_id: t.id, banned: false, until: Some(until) })))
}

/// Bans a user from the channel's chat.
#[utoipa::path(post, path = "/api/channels/{host}/bans", tag = "moderation", security(("bearer" = [])), request_body = BanInput,
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 201, body = Restricted), (status = 403, body = ErrorBody)))]
pub async fn ban(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, Body(input): Body<BanInput>) -> Result<(StatusCode, Json<Restricted>), ApiError> {
    let h = moderated(&app, &host, &who).await?;
    let t = target(&app, &h, &input.user, &who).await?;
    app.chat.moderation.ban(h.id, t.id, &input.reason, who.id()).await?;
    app.chat.moderation.log(h.id, None, who.id(), Some(t.id), None, "ban", None, &input.reason).await?;
    app.hub.publish(Topic::Channel(h.id), &notice(&h, &t, "ban", None));
    Ok((StatusCode::CREATED, Json(Restricted { user_id: t.id, banned: true, until: None })))
}

/// Lifts a user's timeout.
#[utoipa::path(delete, path = "/api/channels/{host}/timeouts/{user}", tag = "moderation", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id"), ("user" = String, Path, description = "Username or id")),
    responses((status = 204, description = "Lifted"), (status = 404, body = ErrorBody)))]
pub async fn untimeout(State(app): State<AppState>, Auth(who): Auth, Path((host, user)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    lift(app, who, host, user, "untimeout").await
}

/// Lifts a user's ban.
#[utoipa::path(delete, path = "/api/channels/{host}/bans/{user}", tag = "moderation", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id"), ("user" = String, Path, description = "Username or id")),
    responses((status = 204, description = "Lifted"), (status = 404, body = ErrorBody)))]
pub async fn unban(State(app): State<AppState>, Auth(who): Auth, Path((host, user)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    lift(app, who, host, user, "unban").await
}

async fn lift(app: AppState, who: Principal, host: String, user: String, action: &str) -> Result<StatusCode, ApiError> {
    let h = moderated(&app, &host, &who).await?;
    let t = super::user_named(&app, &user).await?;
    if !app.chat.moderation.lift(h.id, t.id).await? {
        return Err(ApiError::not_found(format!("{} is not banned or timed out here", t.username)));
    }
    app.chat.moderation.log(h.id, None, who.id(), Some(t.id), None, action, None, "").await?;
    app.hub.publish(Topic::Channel(h.id), &notice(&h, &t, action, None));
    Ok(StatusCode::NO_CONTENT)
}

/// Whom to appoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Username or id.
    pub user: String,
}

/// A channel's moderators.
#[utoipa::path(get, path = "/api/channels/{host}/moderators", tag = "moderation",
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 200, body = [crate::accounts::PublicUser])))]
pub async fn moderators(State(app): State<AppState>, Path(host): Path<String>) -> Result<Json<Vec<crate::accounts::PublicUser>>, ApiError> {
    let h = super::user_named(&app, &host).await?;
    let mut out = Vec::new();
    for uid in app.membership.moderators(h.id).await? {
        if let Some(u) = app.accounts.user(uid).await? {
            out.push((&u).into());
        }
    }
    Ok(Json(out))
}

fn owner_only(h: &User, who: &Principal) -> Result<(), ApiError> {
    if who.id() == h.id || who.role() == crate::accounts::Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only the host appoints moderators and gives subscriptions"))
    }
}

/// Appoints a moderator of the channel (the host).
#[utoipa::path(post, path = "/api/channels/{host}/moderators", tag = "moderation", security(("bearer" = [])), request_body = UserInput,
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 204, description = "Appointed"), (status = 403, body = ErrorBody)))]
pub async fn add_moderator(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, Body(input): Body<UserInput>) -> Result<StatusCode, ApiError> {
    let h = super::user_named(&app, &host).await?;
    owner_only(&h, &who)?;
    let t = super::user_named(&app, &input.user).await?;
    app.membership.add_moderator(h.id, t.id).await?;
    app.chat.moderation.log(h.id, None, who.id(), Some(t.id), None, "add_moderator", None, "").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a moderator of the channel (the host).
#[utoipa::path(delete, path = "/api/channels/{host}/moderators/{user}", tag = "moderation", security(("bearer" = [])),
    params(("host" = String, Path, description = "Host username or id"), ("user" = String, Path, description = "Username or id")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)))]
pub async fn remove_moderator(State(app): State<AppState>, Auth(who): Auth, Path((host, user)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let h = super::user_named(&app, &host).await?;
    owner_only(&h, &who)?;
    let t = super::user_named(&app, &user).await?;
    if !app.membership.remove_moderator(h.id, t.id).await? {
        return Err(ApiError::not_found(format!("{} is not a moderator here", t.username)));
    }
    app.chat.moderation.log(h.id, None, who.id(), Some(t.id), None, "remove_moderator", None, "").await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A gift subscription.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GiftInput {
    /// Username or id.
    pub user: String,
    /// 1-366 days.
    pub days: i64,
}

/// The host gives someone a subscription (paid ones come with payments).
#[utoipa::path(post, path = "/api/channels/{host}/subscriptions", tag = "moderation", security(("bearer" = [])), request_body = GiftInput,
    params(("host" = String, Path, description = "Host username or id")),
    responses((status = 201, body = Subscription), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn gift_subscription(State(app): State<AppState>, Auth(who): Auth, Path(host): Path<String>, Body(input): Body<GiftInput>) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let h = super::user_named(&app, &host).await?;
    owner_only(&h, &who)?;
    if !(1..=MAX_GIFT_DAYS).contains(&input.days) {
        return Err(ApiError::validation([("days".to_owned(), format!("must be 1-{MAX_GIFT_DAYS}"))].into()));
    }
    let t = super::user_named(&app, &input.user).await?;
    Ok((StatusCode::CREATED, Json(app.membership.gift_subscription(h.id, t.id, input.days).await?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(slow: i64, subs: bool, followers: Option<i64>) -> ChatSettings {
        ChatSettings { host_id: 1, slow_mode_seconds: slow, subscribers_only: subs, followers_only_minutes: followers, banned_words: vec![] }
    }

    #[test]
    fn modes_read_as_a_sentence() {
        assert_eq!(describe_modes(&settings(10, false, None)), "Chat is in slow mode (10 s)");
        assert_eq!(describe_modes(&settings(0, false, Some(0))), "Chat is in followers-only mode");
        assert_eq!(describe_modes(&settings(10, true, Some(10))), "Chat is in slow mode (10 s), subscribers-only mode and followers-only mode (10 min of following)");
        assert_eq!(describe_modes(&settings(0, false, None)), "Chat is open to everyone");
    }
}
