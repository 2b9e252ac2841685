//! Error envelopes of routing: unknown paths, wrong methods, locales, 5xx hygiene.

use crate::helpers::{TestApp, envelope};

#[tokio::test]
async fn unknown_api_routes_answer_a_404_envelope() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let response = admin
        .get(app.url("/api/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = envelope(response).await;
    assert_eq!(body["error_code"], "route.not_found");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/api/no/such/route")
    );
}

#[tokio::test]
async fn unknown_paths_outside_api_answer_plain_404() {
    let app = TestApp::spawn().await;
    let response = app.get("/nothing-here").await;
    assert_eq!(response.status(), 404);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}

#[tokio::test]
async fn a_wrong_method_answers_405() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let response = admin.post(app.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.headers()["allow"],
        "GET",
        "RFC 9110 asks 405 to list the methods"
    );
    let body = envelope(response).await;
    assert_eq!(body["error_code"], "route.method_not_allowed");

    let plain = app.call("DELETE", "/active").await;
    assert_eq!(plain.status(), 405);
}

#[tokio::test]
async fn messages_follow_the_requested_locale() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let zh = admin
        .get(app.url("/api/missing"))
        .header("Accept-Language", "zh-CN,zh;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap();
    let body = envelope(zh).await;
    assert!(body["message"].as_str().unwrap().contains("没有"), "{body}");

    let explicit = admin
        .get(app.url("/api/missing"))
        .header("Accept-Language", "zh-CN")
        .header("X-Sage-Locale", "en-US")
        .send()
        .await
        .unwrap();
    let body = envelope(explicit).await;
    assert!(
        body["message"].as_str().unwrap().starts_with("No route"),
        "{body}"
    );
    // The language Sage's web UI picked comes as `X-Accept-Language`.
    let ui = admin
        .get(app.url("/api/missing"))
        .header("Accept-Language", "en-US")
        .header("X-Accept-Language", "zh")
        .send()
        .await
        .unwrap();
    let body = envelope(ui).await;
    assert!(body["message"].as_str().unwrap().contains("没有"), "{body}");
}

#[tokio::test]
async fn the_web_uis_prod_api_prefix_reaches_the_same_routes() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // The UI's paths, as its own proxy would have passed them on.
    let r = admin
        .get(app.url("/prod-api/api/agent/list?page=1&page_size=5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let direct = envelope(
        admin
            .get(app.url("/api/agent/list?page=1&page_size=5"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(envelope(r).await["data"], direct["data"]);
    // Path parameters, anonymous refusals and unknown routes behave the same.
    assert_eq!(app.get("/prod-api/api/auth/session").await.status(), 401);
    let missing = admin
        .get(app.url("/prod-api/api/agent/nope/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(app.get("/prod-api/active").await.status(), 200);
    // Only the whole segment counts.
    assert_eq!(app.get("/prod-apiactive").await.status(), 404);
}

#[tokio::test]
async fn malformed_bodies_get_4xx_envelopes_and_never_a_500() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let url = app.url("/api/auth/login");

    let broken = client
        .post(&url)
        .header("Content-Type", "application/json")
        .body("{\"username_or_email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 422);
    assert_eq!(envelope(broken).await["error_code"], "request.invalid_json");

    let wrong_type = client
        .post(&url)
        .header("Content-Type", "text/plain")
        .body("username=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        envelope(wrong_type).await["error_code"],
        "request.unsupported_media_type"
    );

    let huge = format!(
        "{{\"username_or_email\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(3 * 1024 * 1024)
    );
    let oversize = client
        .post(&url)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status(), 413);
    assert_eq!(
        envelope(oversize).await["error_code"],
        "request.payload_too_large"
    );

    let wrong_field_type = client
        .post(&url)
        .json(&serde_json::json!({"username_or_email": ["admin"], "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_field_type.status(), 422);
    assert_eq!(
        envelope(wrong_field_type).await["error_detail"][0]["field"],
        "username_or_email"
    );
}
