//! The OpenAPI document (issue 11 item 6): valid (PyPI's
//! `openapi-spec-validator`), complete (WHIP, WHEP, stream health,
//! `/api/config`, metrics, images: every route the server has), and true:
//! schemathesis sends generated requests, well-formed and not, to the running
//! server and checks every answer is a documented status with the documented
//! body (the JSON error body for errors), never a 500.
//!
//! `.ci/run` installs both tools from PyPI; without them the test is skipped
//! loudly (a failure under `CI=true`). Schemathesis is bounded (a few
//! examples per operation) so that it stays a test, not a soak.

mod common;

use std::process::Stdio;

use common::api::Api;
use serde_json::json;

fn python_module(name: &str) -> bool {
    std::process::Command::new("python3").args(["-c", &format!("import {name}")]).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn skip(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing in CI (.ci/run installs it)");
    }
    eprintln!("\n!!!! SKIPPED: {what} missing (python3 -m pip install openapi-spec-validator schemathesis) !!!!\n");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_complete() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let doc = api.get("/api/openapi.json", None).await.json();
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/whip", &["post", "options"][..]),
        ("/whip/{session}", &["patch", "delete"]),
        ("/whep/{stream}", &["post"]),
        ("/whep/{stream}/{session}", &["patch", "delete"]),
        ("/whep/{stream}/{session}/layer", &["post"]),
        ("/whep/{stream}/{session}/events", &["get"]),
        ("/api/streams/{id}/health", &["get"]),
        ("/api/streams/{id}/health/ws", &["get"]),
        ("/api/config", &["get"]),
        ("/metrics", &["get"]),
        ("/healthz", &["get"]),
        ("/images/{name}", &["get"]),
        ("/api/streams/{id}/thumbnail", &["put", "delete"]),
        ("/api/channels/{host}/defaults", &["get", "patch"]),
        ("/api/me", &["get", "patch"]),
        ("/api/me/avatar", &["put", "delete"]),
        ("/api/products", &["get", "post"]),
        ("/api/products/{id}", &["get", "patch", "delete"]),
        ("/api/products/{id}/images", &["post"]),
        ("/api/streams/{id}/products", &["get", "post"]),
        ("/api/streams/{id}/products/{product}", &["patch", "delete"]),
        ("/api/streams/{id}/products/{product}/pin", &["post", "delete"]),
        ("/api/streams/{id}/products/{product}/flash-sales", &["post"]),
        ("/api/streams/{id}/products/{product}/interactions", &["post"]),
        ("/api/streams/{id}/flash-sales", &["get"]),
        ("/api/streams/{id}/vouchers", &["get", "post"]),
        ("/api/streams/{id}/orders", &["post"]),
        ("/api/orders/{id}", &["get"]),
        ("/api/me/orders", &["get"]),
        ("/api/shop/orders", &["get"]),
        ("/api/shop/orders/{id}/ship", &["post"]),
        ("/api/shop/orders/{id}/refund", &["post"]),
        ("/api/streams/{id}/shop/analytics", &["get"]),
        ("/api/shop/top", &["get"]),
    ] {
        for m in methods {
            assert!(paths.get(path).is_some_and(|p| p[m].is_object()), "{m} {path} is documented");
        }
    }
    // Query parameters are query parameters (they were declared as required path ones).
    for (path, name) in [("/api/streams", "type"), ("/api/streams/{id}/chat", "before"), ("/api/streams/{id}/occurrences", "count"), ("/api/streams/{id}/analytics/sessions", "limit")] {
        let params = paths[path]["get"]["parameters"].as_array().unwrap_or_else(|| panic!("{path} has parameters"));
        let p = params.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path} has {name}"));
        assert_eq!((p["in"].as_str(), p["required"].as_bool().unwrap_or(false)), (Some("query"), false), "{path} {name}: {p}");
    }

    if !python_module("openapi_spec_validator") && skip("openapi-spec-validator") {
        server.stop().await;
        return;
    }
    let file = common::temp_dir("openapi").join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = std::process::Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "openapi-spec-validator: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_only_documented_answers() {
    let exe = std::process::Command::new("schemathesis").arg("--version").output();
    if !exe.is_ok_and(|o| o.status.success()) && skip("schemathesis") {
        return;
    }
    // Generous limits: the fuzzer is one client sending many requests fast.
    let server = common::start_server_with(common::temp_dir("fuzz"), |a| {
        a.auth_rate = Some(1_000_000);
        a.write_rate = Some(1_000_000);
        a.media_rate = Some(1_000_000);
    })
    .await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    api.create_stream(&ana, json!({ "title": "Something to find" })).await;
    let url = server.url();
    let report = common::temp_dir("fuzz-report");
    let out = tokio::process::Command::new("schemathesis")
        .args(["run", &format!("{url}/api/openapi.json"), "--url", &url])
        // positive_data_acceptance: a schema cannot say everything the server
        // checks (reserved usernames, a ticket price only for ticketed
        // streams, ...): such a refusal is a documented 400, not a bug.
        // One worker: Hypothesis's lambda-source cache is not thread-safe (a
        // run with two once stopped on "AST constructor recursion depth mismatch").
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance", "--max-examples", "4", "--phases", "examples,coverage,fuzzing", "--workers", "1"])
        // Logging out would end the token the rest of the run uses; the
        // WebSockets are not HTTP exchanges a fuzzer can hold. Login: the
        // tool itself crashes on it now and then (hypothesis on Python
        // 3.11.7: "AST constructor recursion depth mismatch"); its answers
        // are checked in tests/platform_auth.rs.
        .args(["--exclude-path", "/api/auth/logout", "--exclude-path", "/api/auth/login", "--exclude-path", "/api/ws", "--exclude-path", "/api/streams/{id}/health/ws"])
        .args(["--generation-deterministic", "--no-shrink", "--request-timeout", "10", "--max-failures", "40", "--no-color"])
        .args(["-H", &format!("Authorization: Bearer {}", ana.token)])
        .arg("--report-dir")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/schemathesis_hooks.py"))
        // Its files (.schemathesis/) stay out of the work tree.
        .current_dir(&report)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found answers the document does not describe:\n{text}");
    eprintln!("{}", text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"));
    server.stop().await;
}
