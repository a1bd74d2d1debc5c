//! Who may watch (and chat in) a stream.
//!
//! Its host, staff and the channel's moderators always may. Otherwise: a
//! public stream is open to everyone, a subscriber-only one to the host's
//! current subscribers, a ticketed one to ticket holders. Anonymous viewers
//! of a closed stream are asked to log in (401); logged-in viewers without
//! access are refused (403) with a code that says what they lack.

use axum::http::StatusCode;
use onair_signaling::ApiError;

use crate::accounts::{Principal, User};
use crate::membership::Membership;
use crate::streams::{Stream, Visibility};

/// Whether `who` may manage the stream's channel: the host, a channel
/// moderator, or staff.
pub async fn can_moderate(m: &Membership, host_id: i64, who: &User) -> Result<bool, ApiError> {
    if who.id == host_id || who.role.is_staff() {
        return Ok(true);
    }
    m.is_channel_moderator(who.id, host_id).await
}

/// Ok if `who` may watch `s`.
pub async fn check_watch(m: &Membership, s: &Stream, who: Option<&Principal>) -> Result<(), ApiError> {
    if s.visibility == Visibility::Public {
        return Ok(());
    }
    let Some(who) = who else {
        let what = if s.visibility == Visibility::Ticketed { "a ticket" } else { "a subscription" };
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "login_required", format!("this stream needs {what}: log in first")));
    };
    if can_moderate(m, s.host.id, &who.user).await? {
        return Ok(());
    }
    match s.visibility {
        Visibility::Public => Ok(()),
        Visibility::Subscribers if m.is_subscriber(who.id(), s.host.id).await? => Ok(()),
        Visibility::Subscribers => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "subscription_required",
            format!("this stream is for {}'s subscribers", s.host.display_name),
        )),
        Visibility::Ticketed if m.has_ticket(who.id(), s.id).await? => Ok(()),
        Visibility::Ticketed => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ticket_required",
            format!("this stream needs a ticket ({} coins)", s.ticket_price.unwrap_or(0)),
        )),
    }
}
