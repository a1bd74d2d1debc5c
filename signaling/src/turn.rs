//! The ICE servers a client is handed.
//!
//! STUN servers are public. TURN servers relay traffic, so their
//! credentials go only with an authorized offer (the `Link` headers of a
//! WHIP/WHEP `201`, RFC 9725 section 4.6) or to a logged-in user, never to
//! anyone who asks. With a TURN secret configured they are short-lived, in
//! the TURN REST API scheme coturn's `use-auth-secret` checks: user name
//! `<expiry unix time>:<user>`, password base64(HMAC-SHA1(secret, user name)).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use onair_media::{IceServer, TurnAuth};

fn is_turn(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("turn:") || lower.starts_with("turns:")
}

/// The servers anyone may be told about: STUN only, no credentials.
pub fn public_ice_servers(servers: &[IceServer]) -> Vec<IceServer> {
    servers
        .iter()
        .filter_map(|s| {
            let urls: Vec<String> = s.urls.iter().filter(|u| !is_turn(u)).cloned().collect();
            (!urls.is_empty()).then_some(IceServer { urls, username: None, credential: None })
        })
        .collect()
}

/// The servers for an authorized client `user`, at `now_unix`: TURN ones
/// with fresh credentials when a secret is configured (else the configured
/// ones).
pub fn ice_servers_for(servers: &[IceServer], turn: Option<&TurnAuth>, user: &str, now_unix: u64) -> Vec<IceServer> {
    servers
        .iter()
        .map(|s| match turn {
            Some(auth) if s.urls.iter().any(|u| is_turn(u)) => {
                let (username, credential) = rest_credentials(auth, user, now_unix);
                IceServer { urls: s.urls.clone(), username: Some(username), credential: Some(credential) }
            }
            _ => s.clone(),
        })
        .collect()
}

/// A user name and password valid until `now + ttl`.
pub fn rest_credentials(auth: &TurnAuth, user: &str, now_unix: u64) -> (String, String) {
    use ring::hmac;
    // ':' separates the expiry; keep the user part free of it.
    let user: String = user.chars().map(|c| if c == ':' { '_' } else { c }).collect();
    let username = format!("{}:{user}", now_unix + auth.ttl.as_secs());
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth.secret.as_bytes());
    let password = B64.encode(hmac::sign(&key, username.as_bytes()).as_ref());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn servers() -> Vec<IceServer> {
        vec![
            IceServer { urls: vec!["stun:stun.example.org:3478".into(), "turn:turn.example.org:3478".into()], username: None, credential: None },
            IceServer { urls: vec!["turns:turn.example.org:5349".into()], username: Some("static".into()), credential: Some("secret".into()) },
        ]
    }

    #[test]
    fn anyone_gets_stun_only() {
        let p = public_ice_servers(&servers());
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].urls, vec!["stun:stun.example.org:3478".to_owned()]);
        assert!(p.iter().all(|s| s.username.is_none() && s.credential.is_none()));
    }

    #[test]
    fn authorized_clients_get_credentials_coturn_accepts() {
        // coturn's check: base64(HMAC-SHA1(static-auth-secret, username)).
        let auth = TurnAuth { secret: "north".into(), ttl: Duration::from_secs(3600) };
        let got = ice_servers_for(&servers(), Some(&auth), "viewer:1", 1_700_000_000);
        let (u, c) = (got[1].username.clone().unwrap(), got[1].credential.clone().unwrap());
        assert_eq!(u, "1700003600:viewer_1");
        // Computed independently: printf '1700003600:viewer_1' | openssl dgst -sha1 -hmac north -binary | base64
        assert_eq!(c, "e9Rev2Z5HQp8L/uriF83TrrdxjM=");
        assert_eq!(got[0].username.as_deref(), Some(u.as_str()), "a server with a TURN URL gets them too");
        assert_eq!(ice_servers_for(&servers(), None, "x", 0)[1].username.as_deref(), Some("static"), "no secret: the configured ones");
    }
}
