//! The admin console's API over real HTTP (issue 18): admin-only routes
//! refuse everyone else, every admin action is in the audit log, reports and
//! their queue, ending a stream with a reason the host is told, taking a
//! replay down, host approval (`--host-approval`).

mod common;

use common::api::{Api, User, Ws};
use serde_json::{json, Value};

fn code(r: &common::http::Response) -> (u16, String) {
    (r.status, if r.status >= 400 { r.error_code() } else { String::new() })
}

async fn audit(api: &Api, admin: &User) -> Vec<Value> {
    let r = api.get("/api/admin/audit", Some(&admin.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["entries"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_reports_and_the_audit_log() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let root = api.register("root", "viewer").await;
    server.app.accounts.set_role(root.id, onair::accounts::Role::Admin).await.unwrap();
    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let sid = api.create_stream(&ana, json!({ "title": "Late show" })).await["id"].as_i64().unwrap();

    // Admin-only: 401 without a login, 403 for a host or a viewer.
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/admin/overview".into(), None),
        ("GET", "/api/admin/users".into(), None),
        ("GET", "/api/admin/users/vic".into(), None),
        ("POST", "/api/admin/users/ana/host-approval".into(), Some(json!({ "approve": true }))),
        ("POST", format!("/api/admin/streams/{sid}/end"), Some(json!({ "reason": "x" }))),
        ("POST", format!("/api/admin/streams/{sid}/takedown"), Some(json!({ "reason": "x" }))),
        ("GET", "/api/admin/reports".into(), None),
        ("POST", "/api/admin/reports/1/resolve".into(), Some(json!({ "outcome": "dismissed" }))),
        ("GET", "/api/admin/audit".into(), None),
        ("PATCH", "/api/admin/users/vic".into(), Some(json!({ "role": "host" }))),
        ("GET", "/api/admin/webhooks".into(), None),
    ];
    for (method, path, body) in &routes {
        assert_eq!(api.call(method, path, None, body.as_ref()).await.status, 401, "{method} {path} without a login");
        for who in [&ana, &vic] {
            let r = api.call(method, path, Some(&who.token), body.as_ref()).await;
            assert_eq!(code(&r), (403, "forbidden".into()), "{method} {path} as {}: {}", who.username, r.body);
        }
    }
    assert!(audit(&api, &root).await.is_empty(), "refused calls leave no entry");

    // The overview: real figures, revenue unknown rather than a made-up zero.
    let o = api.get("/api/admin/overview", Some(&root.token)).await.json();
    assert_eq!((o["users_total"].as_i64(), o["hosts"].as_i64(), o["new_users_today"].as_i64()), (Some(3), Some(1), Some(3)), "{o}");
    // Nothing was spent yet: the ledger says 0 (a real figure, not a placeholder).
    assert!(o["revenue_today"] == 0 && o["health"]["workers"].as_u64() >= Some(1), "{o}");

    // Search and roles.
    let page = api.get("/api/admin/users?q=VI", Some(&root.token)).await.json();
    assert_eq!((page["total"].as_i64(), page["users"][0]["username"].as_str()), (Some(1), Some("vic")), "{page}");
    assert_eq!(api.get("/api/admin/users?role=host", Some(&root.token)).await.json()["users"][0]["username"], "ana");
    assert_eq!(api.get("/api/admin/users?status=sleepy", Some(&root.token)).await.status, 400);
    let r = api.patch("/api/admin/users/vic", Some(&root.token), json!({ "disabled": true })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(api.get("/api/admin/users?status=disabled", Some(&root.token)).await.json()["users"][0]["username"], "vic");
    api.patch("/api/admin/users/vic", Some(&root.token), json!({ "disabled": false })).await;

    // Reports: viewers file them (not on their own stream, once while open); admins review.
    let report_url = format!("/api/streams/{sid}/reports");
    let vic = api.post("/api/auth/login", None, json!({ "username": "vic", "password": "correct horse" })).await;
    assert_eq!(vic.status, 200, "{}", vic.body);
    let vic = common::api::user_of(&vic.json());
    assert_eq!(api.post(&report_url, None, json!({ "reason": "spam" })).await.status, 401);
    assert_eq!(code(&api.post(&report_url, Some(&ana.token), json!({ "reason": "me" })).await), (422, "own_stream".into()));
    assert_eq!(api.post(&report_url, Some(&vic.token), json!({ "reason": " " })).await.status, 400);
    let r = api.post(&report_url, Some(&vic.token), json!({ "reason": "Flashing lights without warning" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let rid = r.json()["id"].as_i64().unwrap();
    assert_eq!(code(&api.post(&report_url, Some(&vic.token), json!({ "reason": "again" })).await), (409, "already_reported".into()));
    let queue = api.get("/api/admin/reports", Some(&root.token)).await.json();
    assert_eq!((queue[0]["id"].as_i64(), queue[0]["reporter"]["username"].as_str(), queue[0]["open_reports_of_stream"].as_i64()), (Some(rid), Some("vic"), Some(1)), "{queue}");
    assert_eq!(api.post(&format!("/api/admin/reports/{rid}/resolve"), Some(&root.token), json!({ "outcome": "shrug" })).await.status, 400);
    let r = api.post(&format!("/api/admin/reports/{rid}/resolve"), Some(&root.token), json!({ "outcome": "resolved", "note": "ended it" })).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("resolved")), "{}", r.body);
    assert_eq!(code(&api.post(&format!("/api/admin/reports/{rid}/resolve"), Some(&root.token), json!({ "outcome": "dismissed" })).await), (409, "report_closed".into()));
    assert_eq!(api.get("/api/admin/reports", Some(&root.token)).await.json(), json!([]), "the open queue is empty");

    // Ending a live stream: only live ones, with a reason the host is told.
    let r = api.post(&format!("/api/admin/streams/{sid}/end"), Some(&root.token), json!({ "reason": "Reported content" })).await;
    assert_eq!(code(&r), (409, "bad_state".into()), "not live yet");
    assert_eq!(api.post(&format!("/api/streams/{sid}/start"), Some(&ana.token), json!({})).await.status, 200);
    let mut host_ws = Ws::connect(server.http_addr, Some(&ana.token)).await;
    assert_eq!(api.post(&format!("/api/admin/streams/{sid}/end"), Some(&root.token), json!({ "reason": "" })).await.status, 400, "a reason is required");
    let r = api.post(&format!("/api/admin/streams/{sid}/end"), Some(&root.token), json!({ "reason": "Reported content" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(["ended", "archived"].contains(&r.json()["state"].as_str().unwrap()), "{}", r.body);
    let notice = host_ws.next_of("notice", 5).await;
    assert_eq!(notice["kind"], "stream_ended_by_admin");
    assert!(notice["message"].as_str().unwrap().contains("Reported content"), "{notice}");
    let chat = api.get(&format!("/api/streams/{sid}/chat"), None).await.json();
    assert!(chat.to_string().contains("An administrator ended this stream: Reported content"), "the viewers are told too: {chat}");

    // Taking the replay down: unlisted, cannot be saved again.
    let r = api.post(&format!("/api/admin/streams/{sid}/takedown"), Some(&root.token), json!({ "reason": "Copyright" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "ended");
    assert_eq!(code(&api.post(&format!("/api/admin/streams/{sid}/takedown"), Some(&root.token), json!({ "reason": "again" })).await), (409, "taken_down".into()));
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/archive"), Some(&ana.token), json!({})).await), (409, "taken_down".into()));
    assert_eq!(host_ws.next_of("notice", 5).await["kind"], "replay_taken_down");

    // Webhooks through the admin API are audited too.
    let hook = api.post("/api/admin/webhooks", Some(&root.token), json!({ "url": "http://127.0.0.1:9/hook" })).await;
    assert_eq!(hook.status, 201, "{}", hook.body);

    // Every action above is in the log, newest first, with who and why.
    let log = audit(&api, &root).await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["create_webhook", "take_down", "end_stream", "resolve_report", "change_user", "change_user"], "{log:?}");
    assert_eq!((log[1]["reason"].as_str(), log[1]["target_type"].as_str(), log[1]["target_id"].as_i64()), (Some("Copyright"), Some("stream"), Some(sid)));
    assert_eq!(log[2]["actor"]["username"], "root");
    assert_eq!(log[5]["detail"]["disabled"], true);
    let page = api.get("/api/admin/audit?limit=2", Some(&root.token)).await.json();
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let older = api.get(&format!("/api/admin/audit?limit=10&before={}", page["next_before"]), Some(&root.token)).await.json();
    assert_eq!(older["entries"][0]["action"], "end_stream", "paging continues where the first page stopped");
    assert_eq!(api.get("/api/admin/audit?action=change_user", Some(&root.token)).await.json()["entries"].as_array().unwrap().len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_approval_gates_new_hosts() {
    let server = common::start_server_with(common::temp_dir("approval"), |a| a.host_approval = Some(true)).await;
    let api = Api::new(server.http_addr);
    let root = api.register("root", "viewer").await;
    server.app.accounts.set_role(root.id, onair::accounts::Role::Admin).await.unwrap();
    let ana = api.register("ana", "host").await;
    let a = api.get("/api/me/host-approval", Some(&ana.token)).await.json();
    assert_eq!((a["required"].as_bool(), a["state"].as_str()), (Some(true), Some("pending")), "{a}");
    let r = api.post("/api/streams", Some(&ana.token), json!({ "title": "Too soon" })).await;
    assert_eq!(code(&r), (403, "host_approval_pending".into()));
    assert_eq!(api.get("/api/admin/users?status=pending", Some(&root.token)).await.json()["users"][0]["username"], "ana");

    let r = api.post("/api/admin/users/ana/host-approval", Some(&root.token), json!({ "approve": false, "note": "Tell us more first" })).await;
    assert_eq!((r.status, r.json()["state"].as_str()), (200, Some("rejected")), "{}", r.body);
    assert_eq!(code(&api.post("/api/streams", Some(&ana.token), json!({ "title": "Still no" })).await), (403, "host_rejected".into()));
    let r = api.post("/api/admin/users/ana/host-approval", Some(&root.token), json!({ "approve": true })).await;
    assert_eq!(r.json()["state"], "approved");
    assert_eq!(api.post("/api/streams", Some(&ana.token), json!({ "title": "Finally" })).await.status, 201);
    let actions: Vec<String> = audit(&api, &root).await.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["approve_host", "reject_host"]);
    server.stop().await;
}
