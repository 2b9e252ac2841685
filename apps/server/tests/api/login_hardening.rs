//! The security review's login findings: failures are counted before hashing, identifiers
//! are bounded and free of control characters, registration codes tell nothing about
//! existing accounts, password changes are throttled, and the last admin stays.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, TestApp, envelope};
use crate::smtp::SmtpSink;

#[tokio::test]
async fn parallel_wrong_passwords_are_counted_before_hashing() {
    let app = TestApp::spawn().await;
    let attempts = (0..40).map(|_| {
        let client = app.new_client();
        let url = app.url("/api/auth/login");
        async move {
            client
                .post(url)
                .json(&json!({"username_or_email": "admin", "password": "wrong-password"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert!(
        checked <= 5,
        "{checked} passwords were checked: {statuses:?}"
    );
}

#[tokio::test]
async fn login_identifiers_are_bounded_and_free_of_control_characters() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    for (ident, what) in [
        ("a".repeat(10_000), "a long identifier"),
        ("adm\u{0}in".to_owned(), "a NUL"),
        ("admin\u{1b}".to_owned(), "an escape"),
    ] {
        let response = app.login(&client, &ident, "whatever-pass").await;
        assert_eq!(response.status(), 422, "{what}");
        let body = envelope(response).await;
        assert_eq!(body["error_code"], "request.validation", "{what}: {body}");
        assert!(body.to_string().contains("username_or_email"), "{body}");
    }
    // The OpenAPI document says how long an identifier may be.
    let doc: Value = client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["components"]["schemas"]["LoginBody"]["properties"]["username_or_email"]["maxLength"],
        254
    );
    // Throttling keys are normalised: case and padding do not make a new account.
    for _ in 0..5 {
        assert_eq!(
            app.login(&client, "Admin", "wrong-pass").await.status(),
            401
        );
    }
    assert_eq!(
        app.login(&client, "  ADMIN ", ADMIN_PASSWORD)
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn identity_fields_refuse_nul_and_control_characters() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for body in [
        json!({"username": "nul\u{0}name", "password": "Good-pass-123"}),
        json!({"username": "nicky", "password": "Good-pass-123", "nickname": "Ni\u{0}ck"}),
        json!({"username": "mailer", "password": "Good-pass-123", "email": "a\u{0}b@example.com"}),
        json!({"username": "phoney", "password": "Good-pass-123", "phonenum": "123\u{7}"}),
    ] {
        let response = app.post_json(&admin, "/api/user/add", body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
    }
}

async fn app_with_mail(sink: &SmtpSink) -> TestApp {
    let url = sink.url.clone();
    TestApp::spawn_with(move |c| {
        c.smtp_url = Some(url);
        c.mail_from = Some("Sage <sage@example.com>".into());
        c.allow_registration = true;
    })
    .await
}

#[tokio::test]
async fn registration_codes_tell_nothing_about_existing_accounts() {
    let mut sink = SmtpSink::start().await;
    let app = app_with_mail(&sink).await;
    let admin = app.admin().await;
    let created = app
        .post_json(
            &admin,
            "/api/user/add",
            json!({"username": "known", "password": "known-Secret-9", "email": "known@example.com"}),
        )
        .await;
    assert_eq!(created.status(), 200);

    let client = app.new_client();
    let unknown = envelope(
        app.post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "new@example.com"}),
        )
        .await,
    )
    .await;
    let code_mail = sink.next_message().await;
    assert!(code_mail.contains("verification code"), "{code_mail}");
    let known = envelope(
        app.post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "Known@Example.com"}),
        )
        .await,
    )
    .await;
    assert_eq!(known["code"], 200);
    assert_eq!(known["data"], unknown["data"]);
    let notice = sink.next_message().await;
    assert!(notice.contains("already have"), "{notice}");

    // The per-address throttle runs before anything looks at the address.
    for i in 0..8 {
        let r = app
            .post_json(
                &client,
                "/api/auth/register/send-code",
                json!({"email": format!("n{i}@example.com")}),
            )
            .await;
        assert_eq!(r.status(), 200, "request {i}");
        sink.next_message().await;
    }
    let throttled = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "known@example.com"}),
        )
        .await;
    assert_eq!(throttled.status(), 429);
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let app = TestApp::spawn().await;
    let (client, _) = app.user("petra").await;
    for _ in 0..5 {
        let wrong = app
            .post_json(
                &client,
                "/api/user/change-password",
                json!({"old_password": "not-my-password", "new_password": "Another-good-1"}),
            )
            .await;
        assert_eq!(wrong.status(), 422);
    }
    let blocked = app
        .post_json(
            &client,
            "/api/user/change-password",
            json!({"old_password": "petra-Secret-9", "new_password": "Another-good-1"}),
        )
        .await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
}

async fn user_id(app: &TestApp, admin: &reqwest::Client, name: &str) -> String {
    let users = envelope(
        admin
            .get(app.url("/api/user/list?page=1&page_size=100"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    users["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == name)
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .unwrap()
}

#[tokio::test]
async fn two_admins_deleting_each_other_at_once_leave_one() {
    let app = TestApp::spawn().await;
    let mut first = app.admin().await;
    let mut first_name = "admin".to_owned();
    for round in 0..4 {
        let name = format!("boss{round}");
        let created = app
            .post_json(
                &first,
                "/api/user/add",
                json!({"username": name, "password": "Boss-Secret-99", "role": "admin"}),
            )
            .await;
        assert_eq!(created.status(), 200);
        let second = app.new_client();
        assert_eq!(
            app.login(&second, &name, "Boss-Secret-99").await.status(),
            200
        );
        let first_id = user_id(&app, &first, &first_name).await;
        let second_id = user_id(&app, &first, &name).await;
        let (a, b) = tokio::join!(
            app.post_json(&first, "/api/user/delete", json!({"user_id": second_id})),
            app.post_json(&second, "/api/user/delete", json!({"user_id": first_id})),
        );
        let statuses = [a.status().as_u16(), b.status().as_u16()];
        assert!(
            statuses.contains(&200) && !statuses.iter().all(|s| *s == 200),
            "round {round}: exactly one delete wins: {statuses:?}"
        );
        // The survivor is still an admin who can administer.
        let (survivor, survivor_name) = if statuses[0] == 200 {
            (first, first_name)
        } else {
            (second, name)
        };
        let list = survivor
            .get(app.url("/api/user/list"))
            .send()
            .await
            .unwrap();
        assert_eq!(list.status(), 200, "round {round}");
        first = survivor;
        first_name = survivor_name;
    }
}

#[tokio::test]
async fn an_e_mail_change_needs_the_registration_code_while_registration_is_on() {
    let mut sink = SmtpSink::start().await;
    let app = app_with_mail(&sink).await;
    let (client, _) = app.user("kira").await;
    let put = |body: Value| {
        let client = client.clone();
        let url = app.url("/api/user/profile");
        async move { client.put(url).json(&body).send().await.unwrap() }
    };
    let without = put(json!({"email": "kira.new@example.com"})).await;
    assert_eq!(without.status(), 422);
    assert!(
        envelope(without)
            .await
            .to_string()
            .contains("verification_code")
    );
    let sent = app
        .post_json(
            &client,
            "/api/auth/register/send-code",
            json!({"email": "kira.new@example.com"}),
        )
        .await;
    assert_eq!(sent.status(), 200);
    let code = sink.next_code().await;
    let wrong = put(json!({"email": "kira.new@example.com", "verification_code": "000000"})).await;
    if code != "000000" {
        assert_eq!(wrong.status(), 422);
    }
    let changed =
        envelope(put(json!({"email": "kira.new@example.com", "verification_code": code})).await)
            .await;
    assert_eq!(changed["code"], 200);
    assert_eq!(changed["data"]["email"], "kira.new@example.com");
}
