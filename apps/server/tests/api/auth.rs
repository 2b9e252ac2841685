//! Login, sessions, tokens, refresh rotation, logout, throttling and password changes.

use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, TestApp, envelope};

fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sage_session="))
        .expect("a sage_session cookie")
}

async fn session_status(app: &TestApp, client: &reqwest::Client) -> u16 {
    client
        .get(app.url("/api/auth/session"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn bearer_status(app: &TestApp, token: &str) -> u16 {
    app.new_client()
        .get(app.url("/api/auth/session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_operator_says_so() {
    let plain = TestApp::spawn().await;
    let cookie = session_cookie(
        &plain
            .login(&plain.new_client(), "admin", ADMIN_PASSWORD)
            .await,
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    let behind_tls = TestApp::spawn_with(|c| c.cookie_secure = Some(true)).await;
    let response = behind_tls
        .login(&behind_tls.new_client(), "admin", ADMIN_PASSWORD)
        .await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn login_sets_a_hardened_session_cookie_and_returns_tokens() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let response = app.login(&client, "admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 200);
    let cookie = session_cookie(&response);
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("sage_session=");
    assert!(value.len() >= 32, "≥128-bit session id: {value}");
    let body = envelope(response).await;
    let data = &body["data"];
    assert_eq!(data["expires_in"], 3600);
    assert_eq!(data["token_type"], "Bearer");
    let access = data["access_token"].as_str().unwrap();
    assert_ne!(access, data["refresh_token"].as_str().unwrap());

    let session = envelope(
        client
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(session["data"]["user"]["username"], "admin");
    assert_eq!(session["data"]["user"]["role"], "admin");
    assert!(session["data"]["user"]["userid"].is_string());
    assert_eq!(session["data"]["has_agent"], false);

    assert_eq!(
        bearer_status(&app, access).await,
        200,
        "the access token works alone"
    );
}

#[tokio::test]
async fn login_by_email_and_the_compatibility_paths_work() {
    let app = TestApp::spawn().await;
    let (_, _) = app.user("carol").await;
    let client = app.new_client();
    let response = app
        .post_json(
            &client,
            "/api/user/login",
            json!({"username_or_email": "CAROL@example.com", "password": "carol-Secret-9"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let check = envelope(
        client
            .get(app.url("/api/user/check_login"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(check["data"]["user"]["username"], "carol");
    let logout = client
        .post(app.url("/api/user/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(session_status(&app, &client).await, 401);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_answer_the_same_401() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let wrong = envelope(app.login(&client, "admin", "not-the-password").await).await;
    let unknown = envelope(app.login(&client, "nobody", "not-the-password").await).await;
    assert_eq!(wrong["code"], 401);
    assert_eq!(wrong["error_code"], "user.invalid_credentials");
    assert_eq!(wrong["message"], unknown["message"]);
    assert_eq!(wrong["error_code"], unknown["error_code"]);
    let empty = app
        .post_json(&client, "/api/auth/login", json!({"password": "x"}))
        .await;
    assert_eq!(empty.status(), 422, "a missing field is named, not a 500");
    let body = envelope(empty).await;
    assert_eq!(body["error_detail"][0]["field"], "username_or_email");
}

#[tokio::test]
async fn the_session_id_is_renewed_at_each_login() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let first = session_cookie(&app.login(&client, "admin", ADMIN_PASSWORD).await);
    let second = session_cookie(&app.login(&client, "admin", ADMIN_PASSWORD).await);
    assert_ne!(first, second);
    let old_value = first.split(';').next().unwrap().to_owned();
    let replay = app
        .new_client()
        .get(app.url("/api/auth/session"))
        .header("Cookie", old_value)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401, "the replaced session is gone");
    assert_eq!(session_status(&app, &client).await, 200);
}

#[tokio::test]
async fn logout_ends_the_session_and_its_tokens() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let body = envelope(app.login(&client, "admin", ADMIN_PASSWORD).await).await;
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();
    let response = client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cleared = session_cookie(&response);
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("max-age=0"),
        "{cleared}"
    );
    assert_eq!(session_status(&app, &client).await, 401);
    assert_eq!(bearer_status(&app, &access).await, 401);
}

#[tokio::test]
async fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_family() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let login = envelope(app.login(&client, "admin", ADMIN_PASSWORD).await).await;
    let first_refresh = login["data"]["refresh_token"].as_str().unwrap().to_owned();

    let api = app.new_client();
    let rotated = envelope(
        app.post_json(
            &api,
            "/api/auth/refresh",
            json!({"refresh_token": first_refresh}),
        )
        .await,
    )
    .await;
    let new_access = rotated["data"]["access_token"].as_str().unwrap().to_owned();
    let new_refresh = rotated["data"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_refresh, first_refresh);
    assert_eq!(bearer_status(&app, &new_access).await, 200);

    let replay = app
        .post_json(
            &api,
            "/api/user/refresh-token",
            json!({"refresh_token": first_refresh}),
        )
        .await;
    assert_eq!(replay.status(), 401);
    assert_eq!(
        envelope(replay).await["error_code"],
        "auth.invalid_refresh_token"
    );
    assert_eq!(
        bearer_status(&app, &new_access).await,
        401,
        "the family is revoked"
    );
    assert_eq!(
        session_status(&app, &client).await,
        401,
        "so is the cookie session"
    );
    let after = app
        .post_json(
            &api,
            "/api/auth/refresh",
            json!({"refresh_token": new_refresh}),
        )
        .await;
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn an_empty_refresh_uses_the_cookie_session_as_the_web_ui_does() {
    let app = TestApp::spawn().await;
    let client = app.admin().await;
    let response = client
        .post(app.url("/api/user/refresh-token"))
        .send()
        .await
        .unwrap();
    let body = envelope(response).await;
    assert_eq!(body["code"], 200);
    let access = body["data"]["access_token"].as_str().unwrap();
    assert_eq!(bearer_status(&app, access).await, 200);
    let anonymous = app
        .new_client()
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let garbage = app
        .post_json(
            &app.new_client(),
            "/api/auth/refresh",
            json!({"refresh_token": "nope"}),
        )
        .await;
    assert_eq!(garbage.status(), 401);
}

#[tokio::test]
async fn repeated_failures_are_throttled_before_hashing() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    for _ in 0..5 {
        assert_eq!(
            app.login(&client, "admin", "wrong-password").await.status(),
            401
        );
    }
    let blocked = app.login(&client, "admin", ADMIN_PASSWORD).await;
    assert_eq!(blocked.status(), 429, "even the right password waits");
    let retry_after: u64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    let body = envelope(blocked).await;
    assert_eq!(body["error_code"], "auth.too_many_attempts");
}

#[tokio::test]
async fn changing_the_password_ends_every_session() {
    let app = TestApp::spawn().await;
    let (client, _) = app.user("dave").await;
    let other = app.new_client();
    let body = envelope(app.login(&other, "dave", "dave-Secret-9").await).await;
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();

    let wrong = app
        .post_json(
            &client,
            "/api/user/change-password",
            json!({"old_password": "nope-nope", "new_password": "Another-good-1"}),
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert_eq!(envelope(wrong).await["error_code"], "user.wrong_password");
    let weak = app
        .post_json(
            &client,
            "/api/user/change-password",
            json!({"old_password": "dave-Secret-9", "new_password": "short"}),
        )
        .await;
    assert_eq!(weak.status(), 422);
    let too_long = app
        .post_json(
            &client,
            "/api/user/change-password",
            json!({"old_password": "dave-Secret-9", "new_password": "x".repeat(129)}),
        )
        .await;
    assert_eq!(too_long.status(), 422);
    let common = app
        .post_json(
            &client,
            "/api/user/change-password",
            json!({"old_password": "dave-Secret-9", "new_password": "password123"}),
        )
        .await;
    assert_eq!(common.status(), 422);

    let ok = app
        .post_json(
            &client,
            "/api/user/change-password",
            json!({"old_password": "dave-Secret-9", "new_password": "Another-good-1"}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(session_status(&app, &client).await, 401);
    assert_eq!(session_status(&app, &other).await, 401);
    assert_eq!(bearer_status(&app, &access).await, 401);
    let fresh = app.new_client();
    assert_eq!(
        app.login(&fresh, "dave", "dave-Secret-9").await.status(),
        401
    );
    assert_eq!(
        app.login(&fresh, "dave", "Another-good-1").await.status(),
        200
    );
}

#[tokio::test]
async fn oauth_mode_refuses_password_login() {
    let app = TestApp::spawn_with(|c| {
        c.auth_mode = platform::AuthMode::OAuth;
        c.public_url = Some("https://sage.example".into());
    })
    .await;
    let response = app.login(&app.new_client(), "admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        envelope(response).await["error_code"],
        "auth.password_login_disabled"
    );
}

#[tokio::test]
async fn trusted_proxy_mode_keeps_passwords_for_admins_and_trusts_only_the_proxy() {
    let untrusted = TestApp::spawn_with(|c| c.auth_mode = platform::AuthMode::TrustedProxy).await;
    let forged = untrusted
        .new_client()
        .get(untrusted.url("/api/auth/session"))
        .header("X-Sage-Internal-UserId", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        401,
        "the header from an unconfigured peer is ignored"
    );

    let app = TestApp::spawn_with(|c| {
        c.auth_mode = platform::AuthMode::TrustedProxy;
        c.trusted_proxies = vec![platform::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    assert_eq!(
        app.login(&app.new_client(), "admin", ADMIN_PASSWORD)
            .await
            .status(),
        200
    );
    let admin = app.admin().await;
    app.post_json(
        &admin,
        "/api/user/add",
        json!({"username": "erin", "password": "erin-Secret-9"}),
    )
    .await;
    let refused = app.login(&app.new_client(), "erin", "erin-Secret-9").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        envelope(refused).await["error_code"],
        "auth.admin_password_login_required"
    );
    let via_proxy = app
        .new_client()
        .get(app.url("/api/auth/session"))
        .header("X-Sage-Internal-UserId", "frank")
        .send()
        .await
        .unwrap();
    let body = envelope(via_proxy).await;
    assert_eq!(body["data"]["user"]["username"], "frank");
    assert_eq!(body["data"]["user"]["role"], "user");
}

#[tokio::test]
async fn a_cookie_session_cannot_change_state_cross_site() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let forged = admin
        .post(app.url("/api/user/config"))
        .header("Origin", "https://evil.example")
        .json(&json!({"config": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(envelope(forged).await["error_code"], "auth.cross_site");
    let same_origin = admin
        .post(app.url("/api/user/config"))
        .header("Origin", app.address.clone())
        .json(&json!({"config": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
}

#[tokio::test]
async fn sessions_end_at_their_absolute_lifetime() {
    // Long enough that a loaded CI machine still checks the live session inside it.
    let app = TestApp::spawn_with(|c| c.session_lifetime = std::time::Duration::from_secs(3)).await;
    let client = app.new_client();
    let body = envelope(app.login(&client, "admin", ADMIN_PASSWORD).await).await;
    assert_eq!(
        body["data"]["expires_in"], 3,
        "tokens never outlive their session"
    );
    let access = body["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(session_status(&app, &client).await, 200);
    // Waiting is the behaviour under test: the lifetime running out.
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(session_status(&app, &client).await, 401);
    assert_eq!(bearer_status(&app, &access).await, 401);
}

async fn failing_login_from(app: &TestApp, forwarded_for: &str) -> u16 {
    app.new_client()
        .post(app.url("/api/auth/login"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"username_or_email": "admin", "password": "wrong-password"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn forwarded_addresses_count_only_through_trusted_proxies() {
    // Untrusted: X-Forwarded-For is ignored, so every attempt comes from the same peer.
    let direct = TestApp::spawn().await;
    for _ in 0..5 {
        failing_login_from(&direct, "203.0.113.1").await;
    }
    assert_eq!(
        failing_login_from(&direct, "203.0.113.99").await,
        429,
        "a forged header does not reset the count"
    );

    // Behind a trusted proxy (the loopback peer): each client address has its own count.
    let proxied = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec![platform::config::IpNet::parse("127.0.0.1").unwrap()];
    })
    .await;
    for _ in 0..5 {
        assert_eq!(failing_login_from(&proxied, "203.0.113.1").await, 401);
    }
    assert_eq!(failing_login_from(&proxied, "203.0.113.1").await, 429);
    assert_eq!(
        failing_login_from(&proxied, "203.0.113.2").await,
        401,
        "another client is not blocked"
    );
    assert_eq!(
        failing_login_from(&proxied, "203.0.113.2, 127.0.0.1").await,
        401,
        "trusted hops are skipped from the right"
    );
}
