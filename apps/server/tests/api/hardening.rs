//! Identity and header hardening: the trusted proxy's identity header in each mode, the CSRF
//! origin check (scheme, forwarded host, CORS `*`, proxy identities), security headers, the
//! Jaeger gate's redirect and what `/api/user/options` reveals.

use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, TestApp, envelope};

const PROXY_HEADER: &str = "X-Sage-Internal-UserId";

fn loopback_proxy(c: &mut platform::Config) {
    c.trusted_proxies = vec![platform::config::IpNet::parse("127.0.0.1").unwrap()];
}

async fn session_as(app: &TestApp, user: &str) -> reqwest::Response {
    app.new_client()
        .get(app.url("/api/auth/session"))
        .header(PROXY_HEADER, user)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_identity_header_counts_only_in_trusted_proxy_mode() {
    // Operators set SAGE_TRUSTED_PROXIES for client addresses; that alone trusts no identity.
    let native = TestApp::spawn_with(loopback_proxy).await;
    assert_eq!(session_as(&native, "mallory").await.status(), 401, "native");
    assert_eq!(
        session_as(&native, "admin").await.status(),
        401,
        "native, admin"
    );
    let oauth = TestApp::spawn_with(|c| {
        loopback_proxy(c);
        c.auth_mode = platform::AuthMode::OAuth;
        c.public_url = Some("https://sage.example".into());
    })
    .await;
    assert_eq!(session_as(&oauth, "mallory").await.status(), 401, "oauth");
    // An unknown name was not created by the refused header.
    let admin = native.admin().await;
    let users = envelope(
        admin
            .get(native.url("/api/user/list"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(users["data"]["total"], 1, "{users}");

    let proxy = TestApp::spawn_with(|c| {
        loopback_proxy(c);
        c.auth_mode = platform::AuthMode::TrustedProxy;
    })
    .await;
    let frank = envelope(session_as(&proxy, "frank").await).await;
    assert_eq!(frank["data"]["user"]["username"], "frank");
    assert_eq!(frank["data"]["user"]["role"], "user");
    assert_eq!(
        session_as(&proxy, "admin").await.status(),
        401,
        "no admin by header unless the operator opted in"
    );

    let opted_in = TestApp::spawn_with(|c| {
        loopback_proxy(c);
        c.auth_mode = platform::AuthMode::TrustedProxy;
        c.trusted_proxy_admins = true;
    })
    .await;
    let admin = envelope(session_as(&opted_in, "admin").await).await;
    assert_eq!(admin["data"]["user"]["role"], "admin");
}

async fn post_config(app: &TestApp, client: &reqwest::Client, headers: &[(&str, &str)]) -> u16 {
    let mut request = client
        .post(app.url("/api/user/config"))
        .json(&json!({"config": {"x": 1}}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_csrf_check_compares_scheme_and_trusts_forwarded_hosts_only_from_proxies() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["*".into()]).await;
    let admin = app.admin().await;
    let ours = app.address.clone();
    assert_eq!(post_config(&app, &admin, &[("Origin", &ours)]).await, 200);
    assert_eq!(
        post_config(&app, &admin, &[("Origin", "https://evil.example")]).await,
        403,
        "CORS `*` never lets any origin post with cookies"
    );
    let https_ours = ours.replace("http://", "https://");
    assert_eq!(
        post_config(&app, &admin, &[("Origin", &https_ours)]).await,
        403,
        "the scheme counts"
    );
    assert_eq!(
        post_config(
            &app,
            &admin,
            &[
                ("Origin", "http://evil.example"),
                ("X-Forwarded-Host", "evil.example")
            ]
        )
        .await,
        403,
        "X-Forwarded-Host from a client is ignored"
    );

    let behind = TestApp::spawn_with(loopback_proxy).await;
    let admin = behind.admin().await;
    assert_eq!(
        post_config(
            &behind,
            &admin,
            &[
                ("Origin", "https://sage.example"),
                ("X-Forwarded-Host", "sage.example"),
                ("X-Forwarded-Proto", "https"),
            ]
        )
        .await,
        200,
        "the trusted proxy's forwarded origin is ours"
    );
    assert_eq!(
        post_config(
            &behind,
            &admin,
            &[
                ("Origin", "http://sage.example"),
                ("X-Forwarded-Host", "sage.example"),
                ("X-Forwarded-Proto", "https")
            ]
        )
        .await,
        403
    );
}

#[tokio::test]
async fn identities_from_the_proxy_are_csrf_checked() {
    let app = TestApp::spawn_with(|c| {
        loopback_proxy(c);
        c.auth_mode = platform::AuthMode::TrustedProxy;
    })
    .await;
    let browser = app.new_client();
    let forged = post_config(
        &app,
        &browser,
        &[
            (PROXY_HEADER, "frank"),
            ("Cookie", "proxy_session=abc"),
            ("Origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(forged, 403);
    let same = post_config(
        &app,
        &browser,
        &[
            (PROXY_HEADER, "frank"),
            ("Cookie", "proxy_session=abc"),
            ("Origin", &app.address),
        ],
    )
    .await;
    assert_eq!(same, 200);
}

#[tokio::test]
async fn answers_carry_security_headers_and_api_answers_are_not_cached() {
    let app = TestApp::spawn().await;
    let response = app.login(&app.new_client(), "admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["cache-control"], "no-store",
        "tokens are never cached"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let anonymous = app.get("/api/auth/session").await;
    assert_eq!(anonymous.headers()["cache-control"], "no-store");
    let outside = app.get("/active").await;
    assert_eq!(outside.headers()["referrer-policy"], "no-referrer");
    assert_eq!(outside.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn the_jaeger_gate_refuses_a_tab_in_next() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let tabbed = admin
        .get(app.url("/api/observability/jaeger/login?next=/%09/evil.example/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(tabbed.status(), 302);
    assert_eq!(tabbed.headers()["location"], "/jaeger/");
    let header = admin
        .get(app.url("/api/observability/jaeger/login"))
        .header("X-Original-URI", "/\t/evil.example/x")
        .send()
        .await
        .unwrap();
    assert_eq!(header.headers()["location"], "/jaeger/");
}

#[tokio::test]
async fn user_options_list_everyone_only_to_admins() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let _bob = app.user("bob").await;
    let mine = envelope(
        alice
            .get(app.url("/api/user/options"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        mine["data"],
        json!([{"label": "alice", "value": alice_id}]),
        "a user sees only themselves"
    );
    let admin = app.admin().await;
    let all = envelope(
        admin
            .get(app.url("/api/user/options"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let labels: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, vec!["admin", "alice", "bob"]);
}
