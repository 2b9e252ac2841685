//! The Jaeger gate, its redirects and the metrics route.

use crate::helpers::{TestApp, envelope};

#[tokio::test]
async fn the_gate_admits_admins_only_and_tells_the_proxy_who_they_are() {
    let app =
        TestApp::spawn_with(|c| c.jaeger_public_url = Some("https://jaeger.example".into())).await;
    let anonymous = app.new_client();
    assert_eq!(
        anonymous
            .get(app.url("/api/observability/jaeger/auth"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let login = anonymous
        .get(app.url("/api/observability/jaeger/login?next=/jaeger/search"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 302);
    let to = login.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/sage/login?next="), "{to}");
    assert!(to.ends_with("&local_only=1"), "{to}");

    let (user, _) = app.user("nosy").await;
    let r = user
        .get(app.url("/api/observability/jaeger/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(envelope(r).await["error_code"], "auth.forbidden");
    assert_eq!(
        user.get(app.url("/api/observability/jaeger/login"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        user.get(app.url("/api/observability/jaeger"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let admin = app.admin().await;
    let ok = admin
        .get(app.url("/api/observability/jaeger/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["x-sage-username"], "admin");
    assert_eq!(ok.headers()["x-sage-role"], "admin");
    let entry = admin
        .get(app.url("/api/observability/jaeger/login?next=https://evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(entry.headers()["location"], "/jaeger/", "next stays local");
    let deep = admin
        .post(app.url("/api/observability/jaeger/api/traces?service=sage"))
        .send()
        .await
        .unwrap();
    assert_eq!(deep.status(), 307);
    assert_eq!(
        deep.headers()["location"],
        "https://jaeger.example/api/traces?service=sage"
    );
    let root = admin
        .get(app.url("/api/observability/jaeger"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.headers()["location"], "https://jaeger.example/");
}

#[tokio::test]
async fn without_jaeger_the_redirect_says_so_and_metrics_are_public() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let r = admin
        .get(app.url("/api/observability/jaeger"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        envelope(r).await["error_code"],
        "observability.jaeger_not_configured"
    );

    let metrics = app
        .new_client()
        .get(app.url("/api/observability/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    assert!(text.contains("sage_up 1"), "{text}");
    let ok_count: u64 = text
        .lines()
        .find(|l| l.starts_with("sage_http_requests_total{class=\"2xx\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(ok_count >= 1, "the admin's login was counted: {text}");
}
