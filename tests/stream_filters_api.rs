//! The stream-filter catalogue over real HTTP and a real database: the
//! seeded catalogue and its queries, premium unlocks paid with coins
//! through the ledger (refused without coins, charged once however often
//! retried, split with a filter's creator), assets refused before the
//! unlock and served after, favourites, ratings, uses and trending, custom
//! presets, the admins' catalogue changes; the ledger's check after it all.

mod common;

use common::api::{Api, User, Ws};
use common::money::{assert_ledger_ok, buy_coins, key, make_admin, post_keyed, wallet};
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["filters"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect()
}

async fn get_json(api: &Api, path: &str, who: Option<&User>) -> Value {
    let r = api.get(path, who.map(|u| u.token.as_str())).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_and_its_queries() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);

    // The seeded catalogue: at least 30 filters, every category, free and premium.
    let all = get_json(&api, "/api/stream-filters?limit=100", None).await;
    let total = all["total"].as_i64().unwrap();
    assert!(total >= 30, "{total} filters");
    let filters = all["filters"].as_array().unwrap();
    assert_eq!(filters.len() as i64, total);
    for c in ["beauty", "makeup", "ar", "color", "background", "overlay", "voice"] {
        assert!(filters.iter().any(|f| f["category"] == c), "no {c} filter");
    }
    assert!(filters.iter().any(|f| f["premium"] == true) && filters.iter().any(|f| f["premium"] == false));
    // The object's contract.
    let warm = filters.iter().find(|f| f["id"] == "look_warm").unwrap();
    for field in ["id", "name", "category", "premium", "price_coins", "parameters", "assets", "rating", "uses"] {
        assert!(warm.get(field).is_some(), "{field} missing: {warm}");
    }
    assert_eq!(warm["assets"], json!([{ "name": "lut_warm.png", "kind": "lut", "url": "/api/stream-filters/look_warm/assets/lut_warm.png" }]));
    assert_eq!((warm["premium"].as_bool(), warm["price_coins"].as_i64(), warm["unlocked"].as_bool()), (Some(false), Some(0), Some(true)));
    let cine = get_json(&api, "/api/stream-filters/look_cinematic", None).await;
    assert_eq!((cine["premium"].as_bool(), cine["price_coins"].as_i64(), cine["unlocked"].as_bool()), (Some(true), Some(80), Some(false)));

    // Category, tier, search, pagination.
    let color = get_json(&api, "/api/stream-filters/category/color", None).await;
    assert!(color["filters"].as_array().unwrap().iter().all(|f| f["category"] == "color"));
    assert_eq!(color, get_json(&api, "/api/stream-filters?category=color", None).await);
    let premium = get_json(&api, "/api/stream-filters?tier=premium&limit=100", None).await;
    assert!(premium["total"].as_i64().unwrap() >= 5);
    assert!(premium["filters"].as_array().unwrap().iter().all(|f| f["premium"] == true));
    let free = get_json(&api, "/api/stream-filters?tier=free&limit=100", None).await;
    assert_eq!(free["total"].as_i64().unwrap() + premium["total"].as_i64().unwrap(), total);
    let found = get_json(&api, "/api/stream-filters/search?q=TEAL%20orange", None).await;
    assert_eq!(ids(&found), vec!["look_teal_orange"]);
    let found = get_json(&api, "/api/stream-filters?q=blur&category=background", None).await;
    assert_eq!(ids(&found), vec!["bg_blur_light", "bg_blur_strong"]);
    assert_eq!(get_json(&api, "/api/stream-filters/search?q=nothing-like-this", None).await["total"], 0);
    let p1 = get_json(&api, "/api/stream-filters?limit=10", None).await;
    let p2 = get_json(&api, &format!("/api/stream-filters?limit=10&offset={}", p1["next_offset"]), None).await;
    assert_eq!(p1["next_offset"], 10);
    let (a, b) = (ids(&p1), ids(&p2));
    assert_eq!(a.len() + b.len(), 20);
    assert!(a.iter().all(|x| !b.contains(x)), "pages overlap");
    assert_eq!([a, b].concat(), ids(&all)[..20].to_vec());
    let featured = get_json(&api, "/api/stream-filters/featured", None).await;
    assert!(featured["total"].as_i64().unwrap() >= 5);
    assert!(featured["filters"].as_array().unwrap().iter().all(|f| f["featured"] == true));

    // Bad queries: 400 per field; unknown filters 404.
    for (path, field) in [
        ("/api/stream-filters?category=hats", "category"),
        ("/api/stream-filters/category/hats", "category"),
        ("/api/stream-filters?tier=cheap", "tier"),
        ("/api/stream-filters?limit=0", "limit"),
        ("/api/stream-filters/search", "q"),
    ] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.json()["error"]["fields"][field].is_string(), "{path}: {}", r.body);
    }
    let r = api.get("/api/stream-filters/no_such_filter", None).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "filter_not_found"));

    // Uses: applying records a use and tells the host's other tabs; trending follows recent uses.
    let host = api.register("hana", "host").await;
    let mut ws = Ws::connect(api.addr, Some(&host.token)).await;
    for _ in 0..3 {
        let r = api.post("/api/stream-filters/look_mono/apply", Some(&host.token), json!({ "parameters": { "strength": 70 } })).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = api.post("/api/stream-filters/fx_grain/apply", Some(&host.token), json!({})).await;
    assert_eq!((r.status, r.json()["uses"].as_i64(), r.json()["parameters"].clone()), (200, Some(1), json!({ "strength": 30 })));
    let ev = ws.next_where(5, |v| v["type"] == "filter_applied" && v["filter_id"] == "look_mono").await.expect("filter_applied event");
    assert_eq!((ev["category"].as_str(), ev["parameters"]["strength"].as_i64()), (Some("color"), Some(70)));
    // A load test's apply is recorded but not counted.
    let r = common::http::request(api.addr, "POST", "/api/stream-filters/fx_grain/apply", &[("Authorization", &format!("Bearer {}", host.token)), ("X-OnAir-Load-Test", "1")], b"").await;
    assert_eq!((r.status, r.json()["uses"].as_i64()), (200, Some(1)), "{}", r.body);
    let trending = get_json(&api, "/api/stream-filters/trending?limit=3", None).await;
    assert_eq!(ids(&trending)[..2], ["look_mono".to_owned(), "fx_grain".to_owned()]);
    assert_eq!((trending["filters"][0]["recent_uses"].as_i64(), trending["filters"][0]["uses"].as_i64()), (Some(3), Some(3)));
    assert_eq!(trending["filters"][1]["recent_uses"], 1);
    // Applying someone else's stream, a premium filter not unlocked, bad parameters.
    let other = api.register("otto", "host").await;
    let s = api.create_stream(&other, json!({ "title": "otto live" })).await;
    let r = api.post("/api/stream-filters/look_mono/apply", Some(&host.token), json!({ "stream_id": s["id"] })).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api.post("/api/stream-filters/look_cinematic/apply", Some(&host.token), json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "locked"));
    let r = api.post("/api/stream-filters/look_mono/apply", Some(&host.token), json!({ "parameters": [1, 2] })).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(api.post("/api/stream-filters/look_mono/apply", None, json!({})).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn premium_unlocks_assets_favourites_ratings_and_presets() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let root = api.register("root", "viewer").await;
    make_admin(&server, &root).await;
    let root = User { token: api.post("/api/auth/login", None, json!({ "username": "root", "password": "correct horse" })).await.json()["access_token"].as_str().unwrap().to_owned(), ..root };
    let host = api.register("hana", "host").await;
    let asset = "/api/stream-filters/look_cinematic/assets/lut_cinematic.png";

    // Before the unlock: the premium asset is refused (anonymous too), free assets are served.
    for who in [None, Some(host.token.as_str())] {
        let r = api.get(asset, who).await;
        assert_eq!((r.status, r.error_code().as_str()), (403, "locked"), "{}", r.body);
    }
    let r = api.get("/api/stream-filters/look_warm/assets/lut_warm.png", None).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/png")));
    assert!(r.body.len() > 1000);
    assert_eq!(api.get("/api/stream-filters/look_warm/assets/lut_cinematic.png", None).await.status, 404, "an asset of another filter");

    // Without coins: 402, nothing moves; the refusal is replayed under its key.
    let k = key();
    let r = post_keyed(&api, "/api/stream-filters/look_cinematic/unlock", &host.token, &k, &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (402, "insufficient_funds"), "{}", r.body);
    let again = post_keyed(&api, "/api/stream-filters/look_cinematic/unlock", &host.token, &k, &json!({})).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (402, Some("true")));
    let r = api.post("/api/stream-filters/look_cinematic/unlock", Some(&host.token), json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "idempotency_key_required"));

    // With coins (20 promotional, 100 bought): unlocked once, promo first, however often retried.
    let r = post_keyed(&api, "/api/admin/promo", &root.token, &key(), &json!({ "user": "hana", "coins": 20, "reason": "welcome" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    buy_coins(&api, &host, "coins_100").await;
    let k = key();
    let r = post_keyed(&api, "/api/stream-filters/look_cinematic/unlock", &host.token, &k, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let u = r.json();
    assert_eq!((u["filter_id"].as_str(), u["price_coins"].as_i64(), u["platform_coins"].as_i64(), u["creator_coins"].as_i64(), u["from_promo"].as_i64()), (Some("look_cinematic"), Some(80), Some(80), Some(0), Some(20)));
    for _ in 0..3 {
        let again = post_keyed(&api, "/api/stream-filters/look_cinematic/unlock", &host.token, &k, &json!({})).await;
        assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
        assert_eq!(again.json(), u);
    }
    let w = wallet(&api, &host).await;
    assert_eq!((w["coins"].as_i64(), w["promo_coins"].as_i64()), (Some(40), Some(0)), "charged once: {w}");
    // A new key for the same unlock: 409, no second charge.
    let r = post_keyed(&api, "/api/stream-filters/look_cinematic/unlock", &host.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "already_unlocked"));
    let r = post_keyed(&api, "/api/stream-filters/look_warm/unlock", &host.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "not_premium"));
    assert_eq!(wallet(&api, &host).await["coins"], 40);
    // The statement shows the unlock.
    let st = get_json(&api, "/api/me/transactions", Some(&host)).await;
    assert!(st["entries"].as_array().unwrap().iter().any(|e| e["kind"] == "filter_unlock"), "{st}");

    // After the unlock: the asset is served to them, still refused to others; listed as theirs.
    let r = api.get(asset, Some(&host.token)).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/png")), "{}", r.body);
    assert_eq!(r.body, String::from_utf8_lossy(include_bytes!("../assets/filters/lut_cinematic.png")));
    let viewer = api.register("vic", "viewer").await;
    assert_eq!(api.get(asset, Some(&viewer.token)).await.status, 403);
    assert_eq!(get_json(&api, "/api/stream-filters/look_cinematic", Some(&host)).await["unlocked"], true);
    let mine = get_json(&api, "/api/stream-filters/user/unlocked", Some(&host)).await;
    assert_eq!(mine.as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["look_cinematic"]);
    assert_eq!(api.post("/api/stream-filters/look_cinematic/apply", Some(&host.token), json!({})).await.status, 200);

    // Favourites.
    for id in ["look_vintage", "voice_robot"] {
        let r = api.post(&format!("/api/stream-filters/{id}/favorite"), Some(&host.token), json!({})).await;
        assert_eq!((r.status, r.json()["favorite"].as_bool()), (200, Some(true)), "{}", r.body);
    }
    assert_eq!(api.post("/api/stream-filters/look_vintage/favorite", Some(&host.token), json!({})).await.status, 200, "twice is once");
    let favs = get_json(&api, "/api/stream-filters/user/favorites", Some(&host)).await;
    assert_eq!(favs.as_array().unwrap().len(), 2);
    let r = api.delete("/api/stream-filters/look_vintage/favorite", Some(&host.token)).await;
    assert_eq!((r.status, r.json()["favorite"].as_bool()), (200, Some(false)));
    let favs = get_json(&api, "/api/stream-filters/user/favorites", Some(&host)).await;
    assert_eq!(favs.as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["voice_robot"]);
    assert_eq!(api.post("/api/stream-filters/nope/favorite", Some(&host.token), json!({})).await.status, 404);

    // Ratings: one per user, updatable, the average shown.
    let r = api.post("/api/stream-filters/look_vintage/rate", Some(&host.token), json!({ "stars": 5 })).await;
    assert_eq!((r.status, r.json()["rating"].as_f64(), r.json()["ratings"].as_i64(), r.json()["my_rating"].as_i64()), (200, Some(5.0), Some(1), Some(5)), "{}", r.body);
    let r = api.post("/api/stream-filters/look_vintage/rate", Some(&viewer.token), json!({ "stars": 2 })).await;
    assert_eq!((r.json()["rating"].as_f64(), r.json()["ratings"].as_i64()), (Some(3.5), Some(2)));
    let r = api.post("/api/stream-filters/look_vintage/rate", Some(&host.token), json!({ "stars": 3 })).await;
    assert_eq!((r.json()["rating"].as_f64(), r.json()["ratings"].as_i64()), (Some(2.5), Some(2)), "a second rating replaces the first");
    for stars in [json!(0), json!(6), json!("five")] {
        let r = api.post("/api/stream-filters/look_vintage/rate", Some(&host.token), json!({ "stars": stars })).await;
        assert_eq!(r.status, 400, "{stars}: {}", r.body);
    }
    assert_eq!(get_json(&api, "/api/stream-filters/look_vintage", None).await["rating"], 2.5);

    // Custom presets: private by default, shareable; a premium base needs its unlock.
    let r = api.post("/api/stream-filters/custom", Some(&host.token), json!({ "name": "My cinema", "base": "look_cinematic", "parameters": { "strength": 60 } })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let private = r.json();
    let pid = private["id"].as_str().unwrap().to_owned();
    assert_eq!((private["base"].as_str(), private["effect"].as_str(), private["premium"].as_bool(), private["public"].as_bool(), private["creator"]["username"].as_str()), (Some("look_cinematic"), Some("lut"), Some(true), Some(false), Some("hana")));
    assert_eq!(private["parameters"], json!({ "strength": 60 }));
    assert_eq!(private["assets"][0]["url"], format!("/api/stream-filters/{pid}/assets/lut_cinematic.png"));
    assert_eq!(api.get(&format!("/api/stream-filters/{pid}"), Some(&viewer.token)).await.status, 404, "private");
    assert!(!ids(&get_json(&api, "/api/stream-filters?limit=100", Some(&viewer)).await).contains(&pid));
    assert!(ids(&get_json(&api, "/api/stream-filters?limit=100", Some(&host)).await).contains(&pid));
    let r = api.post("/api/stream-filters/custom", Some(&host.token), json!({ "name": "Shared warm", "base": "look_warm", "parameters": { "strength": 40 }, "public": true })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let shared = r.json()["id"].as_str().unwrap().to_owned();
    let seen = get_json(&api, &format!("/api/stream-filters/{shared}"), Some(&viewer)).await;
    assert_eq!((seen["unlocked"].as_bool(), seen["creator"]["username"].as_str()), (Some(true), Some("hana")));
    assert_eq!(api.get(&format!("/api/stream-filters/{shared}/assets/lut_warm.png"), Some(&viewer.token)).await.status, 200);
    let r = api.post("/api/stream-filters/custom", Some(&viewer.token), json!({ "name": "Noir mine", "base": "look_noir", "parameters": {} })).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "locked"));
    for body in [json!({ "name": "", "base": "look_warm", "parameters": {} }), json!({ "name": "x", "base": "nope", "parameters": {} }), json!({ "name": "x", "base": "look_warm", "parameters": 5 })] {
        assert_eq!(api.post("/api/stream-filters/custom", Some(&host.token), body.clone()).await.status, 400, "{body}");
    }
    let mine = get_json(&api, "/api/stream-filters/user/custom", Some(&host)).await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    assert_eq!(api.delete(&format!("/api/stream-filters/custom/{shared}"), Some(&viewer.token)).await.status, 404, "not theirs");
    assert_eq!(api.delete(&format!("/api/stream-filters/custom/{shared}"), Some(&host.token)).await.status, 204);
    assert_eq!(api.get(&format!("/api/stream-filters/{shared}"), Some(&viewer.token)).await.status, 404);

    // A creator-made premium filter: its unlock pays the creator their share.
    let r = api.post("/api/admin/stream-filters", Some(&host.token), json!({ "id": "x", "name": "x", "category": "color", "effect": "lut" })).await;
    assert_eq!(r.status, 403, "admins only");
    let maker = api.register("maker", "host").await;
    let r = api.post("/api/admin/stream-filters", Some(&root.token), json!({ "id": "look_maker_gold", "name": "Maker gold", "category": "color", "effect": "lut", "premium": true, "price_coins": 30, "assets": ["lut_warm.png"], "parameters": { "strength": 80 }, "creator": "maker", "featured": true })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!((r.json()["creator"]["username"].as_str(), r.json()["price_coins"].as_i64()), (Some("maker"), Some(30)));
    assert_eq!(api.post("/api/admin/stream-filters", Some(&root.token), json!({ "id": "look_maker_gold", "name": "again", "category": "color", "effect": "lut" })).await.status, 409);
    for (body, field) in [
        (json!({ "id": "Bad Id", "name": "n", "category": "color", "effect": "lut" }), "id"),
        (json!({ "id": "ok_id", "name": "n", "category": "hats", "effect": "lut" }), "category"),
        (json!({ "id": "ok_id", "name": "n", "category": "color", "effect": "lut", "premium": true }), "price_coins"),
        (json!({ "id": "ok_id", "name": "n", "category": "color", "effect": "lut", "assets": ["../../etc/passwd"] }), "assets"),
        (json!({ "id": "ok_id", "name": "n", "category": "color", "effect": "teleport" }), "effect"),
    ] {
        let r = api.post("/api/admin/stream-filters", Some(&root.token), body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.json()["error"]["fields"][field].is_string(), "{body}: {}", r.body);
    }
    let r = post_keyed(&api, "/api/stream-filters/look_maker_gold/unlock", &host.token, &key(), &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!((r.json()["creator_coins"].as_i64(), r.json()["platform_coins"].as_i64()), (Some(21), Some(9)), "70% to the creator");
    assert_eq!(wallet(&api, &maker).await["earnings"], 21);
    assert_eq!(wallet(&api, &host).await["coins"], 10);

    // Admin changes and retirement: out of the catalogue; its unlockers keep it.
    let r = api.patch("/api/admin/stream-filters/look_maker_gold", Some(&root.token), json!({ "price_coins": 50, "name": "Maker gold II" })).await;
    assert_eq!((r.status, r.json()["price_coins"].as_i64(), r.json()["name"].as_str()), (200, Some(50), Some("Maker gold II")), "{}", r.body);
    assert_eq!(api.patch("/api/admin/stream-filters/nope", Some(&root.token), json!({ "name": "x" })).await.status, 404);
    assert_eq!(api.delete("/api/admin/stream-filters/look_maker_gold", Some(&root.token)).await.status, 204);
    assert!(!ids(&get_json(&api, "/api/stream-filters?limit=100", None).await).contains(&"look_maker_gold".to_owned()));
    assert_eq!(api.get("/api/stream-filters/look_maker_gold", Some(&viewer.token)).await.status, 404);
    assert_eq!(api.get("/api/stream-filters/look_maker_gold/assets/lut_warm.png", Some(&host.token)).await.status, 200, "the unlocker keeps it");
    let r = post_keyed(&api, "/api/stream-filters/look_maker_gold/unlock", &viewer.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "filter_retired"), "retired: not for sale: {}", r.body);
    let audit = get_json(&api, "/api/admin/audit?target_type=stream_filter", Some(&root)).await;
    assert!(audit.to_string().contains("stream_filter_retire"), "{audit}");

    assert_ledger_ok(&api, &root).await;
}
