//! `onair-bench serve`: the OnAir server the harness measures, in a process
//! of its own so its CPU time and memory are its alone. It is the same
//! server library the `onair` binary runs, on the same two-thread runtime.
//!
//! It starts, creates a stream key for the host [`STREAM`] (its channel),
//! and with `--chat-users N` also a public stream for chat and N logged-in
//! viewers; prints one JSON line (`{"http": "127.0.0.1:port", "key": "sk_...",
//! "chat": {"stream": id, "host_token": ..., "tokens": [...]}}`) and serves
//! until its standard input closes (the harness exiting) or it is killed.

use onair::accounts::Role;
use onair::config::{Settings, SettingsArgs};

/// The stream the harness publishes.
pub const STREAM: &str = "bench";

/// What `serve` makes besides the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    pub chat_users: Option<usize>,
    pub gift_senders: Option<usize>,
    pub flash_buyers: Option<usize>,
    pub room_hosts: Option<usize>,
}

pub fn run(args: SettingsArgs, setup: Setup) -> Result<(), String> {
    let Setup { chat_users, gift_senders, flash_buyers, room_hosts } = setup;
    onair::raise_fd_limit();
    let settings = Settings::resolve(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let server = onair::server::Server::start(settings).await?;
        let key = server.host_key(STREAM).await?;
        let media: Vec<String> = server.sfu.media_addrs().iter().map(|a| a.to_string()).collect();
        let mut ready = serde_json::json!({ "http": server.http_addr.to_string(), "key": key, "media": media });
        if let Some(n) = chat_users {
            ready["chat"] = chat_setup(&server, n).await.map_err(|e| e.to_string())?;
        }
        if let Some(n) = gift_senders {
            ready["gifts"] = gift_setup(&server, n).await.map_err(|e| e.to_string())?;
        }
        if let Some(n) = flash_buyers {
            ready["shop"] = shop_setup(&server, n).await.map_err(|e| e.to_string())?;
        }
        if let Some(n) = room_hosts {
            ready["room"] = room_setup(&server, n).await.map_err(|e| e.to_string())?;
        }
        println!("{ready}");
        // Serve until the harness goes away.
        let mut stdin = tokio::io::stdin();
        let mut sink = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stdin, &mut sink).await;
        server.stop().await;
        Ok(())
    })
}

/// A public stream of the host, and `n` viewers logged in (made without
/// registration's password hashing: setting up thousands must be quick).
async fn chat_setup(server: &onair::server::Server, n: usize) -> Result<serde_json::Value, onair_signaling::ApiError> {
    let app = &server.app;
    let host = app.accounts.ensure_host(STREAM).await?;
    let defaults = app.channels.defaults(host.id).await?;
    let stream = app.streams.create(&host, &onair::streams::NewStream { title: "Chat benchmark".into(), ..Default::default() }, &defaults).await?;
    let host_token = app.accounts.start_session(host, "onair-bench", None).await?.access_token;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let u = app.accounts.create_unchecked(&format!("bench_viewer_{i}"), Role::Viewer).await?;
        tokens.push(app.accounts.start_session(u, "onair-bench", None).await?.access_token);
    }
    Ok(serde_json::json!({ "stream": stream.id, "host_token": host_token, "tokens": tokens }))
}

/// The host's stream live (started by API), an admin (for the ledger
/// check), and `n` viewers logged in, each given coins from the platform's
/// promo pool (a real ledger transfer) to send gifts with.
async fn gift_setup(server: &onair::server::Server, n: usize) -> Result<serde_json::Value, onair_signaling::ApiError> {
    let app = &server.app;
    let host = app.accounts.ensure_host(STREAM).await?;
    let defaults = app.channels.defaults(host.id).await?;
    let stream = app.streams.create(&host, &onair::streams::NewStream { title: "Gift benchmark".into(), ..Default::default() }, &defaults).await?;
    let stream = app.lifecycle.start_by_api(&stream).await?;
    let host_token = app.accounts.start_session(host, "onair-bench", None).await?.access_token;
    let admin = app.accounts.create_unchecked("bench_admin", Role::Admin).await?;
    let admin_token = app.accounts.start_session(admin, "onair-bench", None).await?.access_token;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let u = app.accounts.create_unchecked(&format!("bench_sender_{i}"), Role::Viewer).await?;
        let keyed = onair::money::idempotency::Keyed::new(u.id, &format!("bench-coins-{i}"), "POST", "/api/admin/promo", &serde_json::json!({}))?;
        app.money.grant_promo(u.id, 1_000_000, Some("load test".into()), keyed).await?;
        tokens.push(app.accounts.start_session(u, "onair-bench", None).await?.access_token);
    }
    Ok(serde_json::json!({ "stream": stream.id, "host_token": host_token, "admin_token": admin_token, "tokens": tokens }))
}

/// The host's stream live with a product of 1,000,000 units on its shelf,
/// an admin (for the ledger check), and `n` buyers with coins (a promo
/// grant each) to pay their orders with.
async fn shop_setup(server: &onair::server::Server, n: usize) -> Result<serde_json::Value, onair_signaling::ApiError> {
    let app = &server.app;
    let host = app.accounts.ensure_host(STREAM).await?;
    let defaults = app.channels.defaults(host.id).await?;
    let stream = app.streams.create(&host, &onair::streams::NewStream { title: "Flash sale benchmark".into(), ..Default::default() }, &defaults).await?;
    let stream = app.lifecycle.start_by_api(&stream).await?;
    let pair = app.accounts.start_session(host, "onair-bench", None).await?;
    let who = app.accounts.authenticate(&pair.access_token).await?;
    let product = app.shop.create_product(&who, serde_json::from_value(serde_json::json!({ "title": "Bench scarf", "price": 100, "stock": 1_000_000 })).map_err(onair_signaling::ApiError::internal)?).await?;
    app.shop.add_to_shelf(&stream, &who, serde_json::from_value(serde_json::json!({ "product": product.id })).map_err(onair_signaling::ApiError::internal)?).await?;
    let admin = app.accounts.create_unchecked("bench_shop_admin", Role::Admin).await?;
    let admin_token = app.accounts.start_session(admin, "onair-bench", None).await?.access_token;
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let u = app.accounts.create_unchecked(&format!("bench_buyer_{i}"), Role::Viewer).await?;
        let keyed = onair::money::idempotency::Keyed::new(u.id, &format!("bench-shop-coins-{i}"), "POST", "/api/admin/promo", &serde_json::json!({}))?;
        app.money.grant_promo(u.id, 1_000_000, Some("load test".into()), keyed).await?;
        tokens.push(app.accounts.start_session(u, "onair-bench", None).await?.access_token);
    }
    Ok(serde_json::json!({ "stream": stream.id, "product": product.id, "host_token": pair.access_token, "admin_token": admin_token, "tokens": tokens }))
}

/// A co-host room of `n` hosts (2-9): the host [`STREAM`]'s stream (SFU
/// topology, nine hosts at most) and `n - 1` co-hosts who accepted its
/// invitations (the room API's own calls). Says each host's stream key and
/// access token, the primary first; nobody is live yet.
async fn room_setup(server: &onair::server::Server, n: usize) -> Result<serde_json::Value, onair_signaling::ApiError> {
    use onair::rooms::settings::Topology;
    let app = &server.app;
    let now = onair::clock::now_ms();
    let primary = app.accounts.ensure_host(STREAM).await?;
    let defaults = app.channels.defaults(primary.id).await?;
    let new = onair::streams::NewStream { title: "Room benchmark".into(), topology: Some(Topology::Sfu), max_hosts: Some(9), ..Default::default() };
    let stream = app.streams.create(&primary, &new, &defaults).await?;
    let pair = app.accounts.start_session(primary.clone(), "onair-bench", None).await?;
    let by = app.accounts.authenticate(&pair.access_token).await?;
    let mut keys = vec![app.keys.create(primary.id, "default").await?.key];
    let mut tokens = vec![pair.access_token];
    let mut names = vec![primary.username.clone()];
    for i in 1..n {
        let u = app.accounts.ensure_host(&format!("bench_cohost_{i}")).await?;
        app.rooms.invite(&stream, &by, &u, now).await?;
        app.rooms.answer_invitation(&stream, &u, true, now).await?;
        keys.push(app.keys.create(u.id, "default").await?.key);
        names.push(u.username.clone());
        tokens.push(app.accounts.start_session(u, "onair-bench", None).await?.access_token);
    }
    Ok(serde_json::json!({ "stream": stream.id, "hosts": names, "keys": keys, "tokens": tokens }))
}
