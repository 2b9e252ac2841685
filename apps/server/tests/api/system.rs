//! The foundation routes: liveness, health, system information, OpenAPI, request ids.

use crate::helpers::{TestApp, envelope};

#[tokio::test]
async fn active_answers_plain_text() {
    let app = TestApp::spawn().await;
    let response = app.get("/active").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert_eq!(response.text().await.unwrap(), "Service is available.");
}

#[tokio::test]
async fn health_answers_the_envelope() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/health").await;
    assert_eq!(response.status(), 200);
    let body = envelope(response).await;
    assert_eq!(body["code"], 200);
    assert_eq!(body["data"]["status"], "healthy");
    assert_eq!(body["data"]["service"], "SagePlatform");
    let ts = body["data"]["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
}

#[tokio::test]
async fn system_info_describes_login_for_the_web_ui() {
    let app = TestApp::spawn().await;
    let body = envelope(app.get("/api/system/info").await).await;
    let data = &body["data"];
    assert_eq!(data["auth_mode"], "native");
    assert_eq!(data["allow_registration"], false);
    assert_eq!(data["has_local_auth"], true);
    assert_eq!(data["oauth_enabled"], false);
    assert_eq!(data["native_login_admin_only"], false);
    assert_eq!(data["default_auth_provider"], "native");
    assert_eq!(data["auth_providers"][0]["id"], "native");
    assert_eq!(data["auth_providers"][0]["type"], "native");
}

#[tokio::test]
async fn system_info_follows_the_configured_mode() {
    let app = TestApp::spawn_with(|c| {
        c.auth_mode = platform::AuthMode::OAuth;
        c.public_url = Some("https://sage.example".into());
        c.auth_providers = serde_json::json!([
            {"id": "corp", "name": "Corp", "client_secret": "never-shown"}
        ]);
        c.allow_registration = true;
    })
    .await;
    let response = app.get("/api/system/info").await;
    let text = response.text().await.unwrap();
    assert!(!text.contains("never-shown"));
    let data: serde_json::Value =
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"].clone();
    assert_eq!(data["auth_mode"], "oauth");
    assert_eq!(data["has_local_auth"], false);
    assert_eq!(data["oauth_enabled"], true);
    assert_eq!(data["oauth_provider_name"], "Corp");
    assert_eq!(
        data["allow_registration"], false,
        "registration is native-only"
    );
    assert_eq!(data["auth_providers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_of_the_routes() {
    let app = TestApp::spawn().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(doc["info"]["title"], "Sage Server");
    for path in ["/active", "/api/health", "/api/system/info"] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }
}

#[tokio::test]
async fn request_ids_are_kept_or_generated_and_always_returned() {
    let app = TestApp::spawn().await;
    let given = app
        .client
        .get(app.url("/api/health"))
        .header("X-Request-Id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-abc.123");

    let generated = app.get("/api/health").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 36, "{id}");

    let hostile = app
        .client
        .get(app.url("/active"))
        .header("X-Request-Id", "a b<script>")
        .send()
        .await
        .unwrap();
    let replaced = hostile.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(replaced, "a b<script>");
    assert_eq!(replaced.len(), 36);
}

#[tokio::test]
async fn cors_answers_preflights_only_for_configured_origins() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://ui.example".into()]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/health"))
        .header("Origin", "https://ui.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://ui.example"
    );
    let other = app
        .client
        .get(app.url("/api/health"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let plain = TestApp::spawn().await;
    let response = plain
        .client
        .get(plain.url("/api/health"))
        .header("Origin", "https://ui.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
