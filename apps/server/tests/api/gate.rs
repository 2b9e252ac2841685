//! The authentication gate: every routed path answers 401 to anonymous callers unless it is
//! on the allow-list (docs/auth.md). Later route families are covered automatically.

use crate::helpers::{TestApp, envelope};
use crate::routing::{sample_path, spec_endpoints};

#[tokio::test]
async fn anonymous_requests_get_401_everywhere_but_the_allow_list() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let mut failures = Vec::new();
    let mut gated = 0;
    for (method, path) in spec_endpoints() {
        if !(path.starts_with("/api") || path.starts_with("/tasks")) {
            continue;
        }
        let concrete = sample_path(&path);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = client.request(m, app.url(&concrete)).send().await.unwrap();
        let status = response.status().as_u16();
        let open = server::auth::is_allow_listed(&concrete);
        // Allow-listed routes may answer 401 themselves (the OAuth2 protocol's
        // `invalid_client`/`invalid_token`, the Jaeger gate), never with the gate's refusal.
        let body = response.text().await.unwrap_or_default();
        let gate_refusal = body.contains("\"auth.unauthorized\"");
        if open && status == 401 && gate_refusal && !path.contains("jaeger") {
            failures.push(format!("{method} {path}: allow-listed but answered 401"));
        }
        if !open {
            gated += 1;
            if status != 401 {
                failures.push(format!(
                    "{method} {path}: anonymous answer {status}, expected 401"
                ));
            }
        }
    }
    assert!(gated > 100, "only {gated} gated pairs walked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_401_has_the_family_shape() {
    let app = TestApp::spawn().await;
    let api = app.get("/api/auth/session").await;
    assert_eq!(api.status(), 401);
    assert_eq!(envelope(api).await["error_code"], "auth.unauthorized");
    let tasks = app.get("/tasks/one-time").await;
    assert_eq!(tasks.status(), 401);
    let body: serde_json::Value = tasks.json().await.unwrap();
    assert_eq!(body["code"], "auth.unauthorized");
    assert!(body["detail"].is_string());
    assert!(body.get("data").is_none());
}

#[tokio::test]
async fn a_bad_bearer_token_is_not_a_login() {
    let app = TestApp::spawn().await;
    for token in ["garbage", &"a".repeat(64), ""] {
        let response = app
            .new_client()
            .get(app.url("/api/auth/session"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{token}");
    }
}
