//! Concurrent writes over real HTTP: transactions that read and then write
//! (refreshing a token, extending a subscription) wait for SQLite's write
//! lock instead of failing with `SQLITE_BUSY` (a 500) when another request
//! wrote in between.

mod common;

use common::api::{user_of, Api};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_and_writes_never_answer_500() {
    let server = common::start_server_with(common::temp_dir("busy"), |a| {
        a.auth_rate = Some(100_000);
        a.write_rate = Some(100_000);
    })
    .await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let mut viewers = Vec::new();
    for i in 0..8 {
        viewers.push(api.register(&format!("viewer_{i}"), "viewer").await);
    }

    // 48 logins of the viewers, started at once (each a write transaction).
    let accounts = &server.app.accounts;
    let logins = futures_util::future::join_all((0..48).map(|i| {
        let name = viewers[i % viewers.len()].username.clone();
        async move {
            let user = accounts.by_username(&name).await.unwrap().unwrap();
            accounts.start_session(user, "test", None).await
        }
    }))
    .await;
    let mut refresh: Vec<String> = logins.into_iter().map(|r| r.expect("a concurrent login is stored").refresh_token).collect();

    // Three rounds: every login refreshes at once, while the host extends
    // subscriptions of the same viewers (read the current one, then write).
    for round in 0..3 {
        let refreshes = futures_util::future::join_all(refresh.iter().map(|t| api.post("/api/auth/refresh", None, json!({ "refresh_token": t }))));
        let gifts = futures_util::future::join_all(
            viewers.iter().flat_map(|v| [v, v]).map(|v| api.post("/api/channels/ana/subscriptions", Some(&ana.token), json!({ "user": v.username, "days": 1 }))),
        );
        let (refreshed, gifted) = tokio::join!(refreshes, gifts);
        let statuses: Vec<u16> = refreshed.iter().map(|r| r.status).collect();
        assert!(statuses.iter().all(|s| *s == 200), "round {round}: every refresh succeeds: {statuses:?}; e.g. {}", refreshed.iter().find(|r| r.status != 200).map(|r| r.body.as_str()).unwrap_or(""));
        let statuses: Vec<u16> = gifted.iter().map(|r| r.status).collect();
        assert!(statuses.iter().all(|s| (200..300).contains(s)), "round {round}: every gift is stored: {statuses:?}; e.g. {}", gifted.iter().find(|r| r.status >= 300).map(|r| r.body.as_str()).unwrap_or(""));
        refresh = refreshed.iter().map(|r| user_of(&r.json()).refresh).collect();
    }

    // Each viewer got two days per round, none lost to a race.
    let (days,): (i64,) = sqlx::query_as("SELECT MIN(expires_at - started_at) / 86400000 FROM subscriptions").fetch_one(&server.app.pool).await.unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM subscriptions").fetch_one(&server.app.pool).await.unwrap();
    assert_eq!((rows, days), (8, 6), "one subscription per viewer, extended 6 times by a day");
    server.stop().await;
}
