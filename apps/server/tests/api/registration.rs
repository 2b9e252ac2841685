//! Registration with e-mail codes delivered over real SMTP to a loopback listener.

use serde_json::json;

use crate::helpers::{TestApp, envelope};
use crate::smtp::SmtpSink;

async fn app_with_mail(sink: &SmtpSink) -> TestApp {
    let url = sink.url.clone();
    TestApp::spawn_with(move |c| {
        c.smtp_url = Some(url);
        c.mail_from = Some("Sage <sage@example.com>".into());
        c.allow_registration = true;
    })
    .await
}

fn registration(code: &str) -> serde_json::Value {
    json!({
        "username": "grace",
        "password": "grace-Secret-9",
        "email": "Grace@Example.com",
        "phonenum": "13800000000",
        "verification_code": code,
    })
}

#[tokio::test]
async fn a_code_sent_by_mail_registers_an_account_that_can_log_in() {
    let mut sink = SmtpSink::start().await;
    let app = app_with_mail(&sink).await;
    let client = app.new_client();
    let sent = envelope(
        app.post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": " Grace@Example.com "}),
        )
        .await,
    )
    .await;
    assert_eq!(sent["data"]["expires_in"], 600);
    assert!(sent["data"]["retry_after"].as_u64().unwrap() > 0);
    let message = sink.next_message().await;
    assert!(message.contains("grace@example.com"), "{message}");
    let code = message
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();

    let again = app
        .post_json(
            &client,
            "/api/user/register/send-code",
            json!({"email": "grace@example.com"}),
        )
        .await;
    assert_eq!(again.status(), 429, "resend is throttled");
    assert!(again.headers().contains_key("retry-after"));

    let registered = envelope(
        app.post_json(&client, "/api/auth/register", registration(&code))
            .await,
    )
    .await;
    assert_eq!(registered["code"], 200);
    assert_eq!(registered["data"]["user_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        app.login(&client, "grace", "grace-Secret-9").await.status(),
        200
    );

    let reused = app
        .post_json(&app.new_client(), "/api/user/register", registration(&code))
        .await;
    assert_eq!(reused.status(), 422, "a code is single-use");
}

#[tokio::test]
async fn five_wrong_guesses_burn_the_code() {
    let mut sink = SmtpSink::start().await;
    let app = app_with_mail(&sink).await;
    let client = app.new_client();
    app.post_json(
        &client,
        "/api/auth/register/send-code",
        json!({"email": "grace@example.com"}),
    )
    .await;
    let code = sink.next_code().await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let response = app
            .post_json(&client, "/api/auth/register", registration(wrong))
            .await;
        assert_eq!(response.status(), 422);
        assert_eq!(
            envelope(response).await["error_code"],
            "email.verification_code_invalid"
        );
    }
    let late = app
        .post_json(&client, "/api/auth/register", registration(&code))
        .await;
    assert_eq!(late.status(), 422, "the right code no longer works");
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_field_named() {
    let mut sink = SmtpSink::start().await;
    let app = app_with_mail(&sink).await;
    let client = app.new_client();
    let bad_email = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "not-an-address"}),
        )
        .await;
    assert_eq!(bad_email.status(), 422);
    assert_eq!(
        envelope(bad_email).await["error_detail"][0]["field"],
        "email"
    );

    // An address already registered.
    let taken = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "admin-taken@example.com"}),
        )
        .await;
    assert_eq!(taken.status(), 200);
    let code = sink.next_code().await;
    let mut body = registration(&code);
    body["email"] = json!("admin-taken@example.com");
    body["username"] = json!("admin");
    let duplicate = app
        .post_json(&client, "/api/auth/register", body.clone())
        .await;
    assert_eq!(duplicate.status(), 409);
    assert_eq!(
        envelope(duplicate).await["error_code"],
        "user.username_taken"
    );

    body["username"] = json!("henry");
    body["password"] = json!("short");
    let weak = app
        .post_json(&client, "/api/auth/register", body.clone())
        .await;
    assert_eq!(weak.status(), 422);
    assert_eq!(envelope(weak).await["error_detail"][0]["field"], "password");

    let missing = app
        .post_json(
            &client,
            "/api/auth/register",
            json!({"username": "henry", "password": "henry-Secret-9", "email": "h@example.com"}),
        )
        .await;
    assert_eq!(missing.status(), 422);
    assert_eq!(
        envelope(missing).await["error_detail"][0]["field"],
        "verification_code"
    );
}

#[tokio::test]
async fn registration_is_off_by_default_and_admins_switch_it_on() {
    let mut sink = SmtpSink::start().await;
    let url = sink.url.clone();
    let app = TestApp::spawn_with(move |c| c.smtp_url = Some(url)).await;
    let client = app.new_client();
    let info = envelope(
        client
            .get(app.url("/api/system/info"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(info["data"]["allow_registration"], false);
    let refused = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "ivy@example.com"}),
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        envelope(refused).await["error_code"],
        "auth.registration_disabled"
    );

    let (user, _) = app.user("ivan").await;
    let not_admin = app
        .post_json(
            &user,
            "/api/system/update_settings",
            json!({"allow_registration": true}),
        )
        .await;
    assert_eq!(not_admin.status(), 403);

    let admin = app.admin().await;
    let switched = app
        .post_json(
            &admin,
            "/api/system/update_settings",
            json!({"allow_registration": true}),
        )
        .await;
    assert_eq!(switched.status(), 200);
    let info = envelope(
        client
            .get(app.url("/api/system/info"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(info["data"]["allow_registration"], true);
    let sent = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "ivy@example.com"}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    assert_eq!(sink.next_code().await.len(), 6);
}

#[tokio::test]
async fn code_requests_are_limited_per_client_address() {
    let sink = SmtpSink::start().await;
    let app = app_with_mail(&sink).await;
    let client = app.new_client();
    for i in 0..10 {
        let r = app
            .post_json(
                &client,
                "/api/auth/register/send-code",
                json!({"email": format!("u{i}@example.com")}),
            )
            .await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    let eleventh = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "u10@example.com"}),
        )
        .await;
    assert_eq!(eleventh.status(), 429);
    assert!(eleventh.headers().contains_key("retry-after"));
    drop(sink);
}
