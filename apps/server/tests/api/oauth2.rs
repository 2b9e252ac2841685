//! The OAuth2 authorization server over HTTP, as a client application would use it: discovery,
//! the authorization code flow through the login session on both prefixes, the consent page,
//! token, userinfo, revocation, and the RFC 6749 error bodies.

use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::TestApp;

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9zRAgu0ohZaEQ5kqH5fNaqOnk8ZLyb";
const SECRET: &str = "wiki-secret-0123456789";

async fn app() -> TestApp {
    TestApp::spawn_with(|c| {
        c.oauth2_clients = json!([
            {"client_id": "wiki", "client_secret": SECRET, "name": "Team wiki",
             "redirect_uris": ["https://wiki.example/cb"]},
            {"client_id": "desk", "name": "Desk <app>", "skip_consent": false,
             "redirect_uris": "http://127.0.0.1:7777/cb", "scope": "openid profile"}
        ]);
    })
    .await
}

fn challenge() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER))
}

fn authorize_path(prefix: &str, client_id: &str) -> String {
    format!(
        "{prefix}/oauth2/authorize?response_type=code&client_id={client_id}&state=xyz&scope=openid%20email\
         &code_challenge={}&code_challenge_method=S256",
        challenge()
    )
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn exchange(app: &TestApp, path: &str, code: &str) -> reqwest::Response {
    app.new_client()
        .post(app.url(path))
        .basic_auth("wiki", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "https://wiki.example/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
}

async fn userinfo(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.new_client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_logs_a_user_in_through_either_prefix_and_reads_their_claims() {
    let app = app().await;
    // Discovery answers the same document at every documented address.
    let issuer = format!("{}/oauth2", app.url(""));
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/oauth2/metadata",
        "/api/oauth2/metadata",
    ] {
        let doc: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(doc["issuer"], issuer, "{path}");
        assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    }
    let jwks: Value = app.get("/oauth2/jwks").await.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    // Anonymous: to the login page, which comes back to the same request.
    let anonymous = app.new_client();
    let to_login = anonymous
        .get(app.url(&authorize_path("", "wiki")))
        .send()
        .await
        .unwrap();
    assert_eq!(to_login.status(), 302);
    let login_url = location(&to_login);
    assert!(login_url.starts_with("/sage/login?next="), "{login_url}");
    assert_eq!(
        param(&login_url, "next").as_deref(),
        Some(authorize_path("", "wiki").as_str())
    );

    let (alice, alice_id) = app.user("alice").await;
    for prefix in ["", "/api"] {
        let answer = alice
            .get(app.url(&authorize_path(prefix, "wiki")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302, "{prefix}");
        let back = location(&answer);
        assert!(back.starts_with("https://wiki.example/cb?code="), "{back}");
        assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
        assert_eq!(param(&back, "iss").as_deref(), Some(issuer.as_str()));
        let code = param(&back, "code").unwrap();

        let tokens = exchange(&app, &format!("{prefix}/oauth2/token"), &code).await;
        assert_eq!(tokens.status(), 200);
        assert_eq!(tokens.headers()["cache-control"], "no-store");
        let tokens: Value = tokens.json().await.unwrap();
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["scope"], "openid email");
        assert!(tokens["id_token"].as_str().is_some());
        let access = tokens["access_token"].as_str().unwrap();

        for info_path in ["/oauth2/userinfo", "/api/oauth2/userinfo"] {
            let info: Value = userinfo(&app, info_path, access)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(info["sub"], alice_id.as_str());
            assert_eq!(info["preferred_username"], "alice");
            assert_eq!(info["email"], "alice@example.com");
        }
        let posted = app
            .new_client()
            .post(app.url("/oauth2/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 200);
        // An OAuth2 access token is not a Sage API credential.
        let api = app
            .new_client()
            .get(app.url("/api/user/check_login"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 401);

        // The same code twice: refused, and the tokens it gave are revoked.
        let replay = exchange(&app, "/oauth2/token", &code).await;
        assert_eq!(replay.status(), 400);
        let replay: Value = replay.json().await.unwrap();
        assert_eq!(replay["error"], "invalid_grant");
        let dead = userinfo(&app, "/oauth2/userinfo", access).await;
        assert_eq!(dead.status(), 401);
        assert!(
            dead.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    // Deleting the user ends what their grants gave.
    let code = param(
        &location(
            &alice
                .get(app.url(&authorize_path("", "wiki")))
                .send()
                .await
                .unwrap(),
        ),
        "code",
    )
    .unwrap();
    let tokens: Value = exchange(&app, "/oauth2/token", &code)
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo(&app, "/oauth2/userinfo", access).await.status(),
        200
    );
    let admin = app.admin().await;
    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": alice_id}))
        .await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        userinfo(&app, "/oauth2/userinfo", access).await.status(),
        401
    );
}

#[tokio::test]
async fn protocol_errors_are_rfc_6749_bodies_with_their_statuses() {
    let app = app().await;
    let (alice, _) = app.user("alice").await;
    let error_of = |r: Value| r["error"].as_str().unwrap_or_default().to_owned();

    let cases = [
        (authorize_path("", "nobody"), 401, "invalid_client"),
        (
            authorize_path("", "wiki").replace("S256", "plain"),
            400,
            "invalid_request",
        ),
        (
            format!(
                "{}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
                authorize_path("", "wiki")
            ),
            400,
            "invalid_request",
        ),
        (
            authorize_path("", "wiki").replace("openid%20email", "admin"),
            400,
            "invalid_scope",
        ),
        (
            authorize_path("", "wiki").replace("response_type=code", "response_type=token"),
            400,
            "unsupported_response_type",
        ),
    ];
    for (path, status, error) in cases {
        let answer = alice.get(app.url(&path)).send().await.unwrap();
        assert_eq!(answer.status(), status, "{path}");
        assert!(answer.headers().get("location").is_none(), "{path}");
        assert_eq!(error_of(answer.json().await.unwrap()), error, "{path}");
    }

    let wrong_secret = app
        .new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth("wiki", Some("not-the-secret-123"))
        .form(&[("grant_type", "authorization_code"), ("code", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), 401);
    assert_eq!(
        wrong_secret.headers()["www-authenticate"],
        "Basic realm=\"sage\""
    );
    assert_eq!(
        error_of(wrong_secret.json().await.unwrap()),
        "invalid_client"
    );
    let no_grant = app
        .new_client()
        .post(app.url("/api/oauth2/token"))
        .basic_auth("wiki", Some(SECRET))
        .body("code=x")
        .send()
        .await
        .unwrap();
    assert_eq!(no_grant.status(), 400);
    assert_eq!(error_of(no_grant.json().await.unwrap()), "invalid_request");
    let repeated = app
        .new_client()
        .post(app.url("/oauth2/token"))
        .basic_auth("wiki", Some(SECRET))
        .body("grant_type=authorization_code&grant_type=refresh_token")
        .send()
        .await
        .unwrap();
    assert_eq!(repeated.status(), 400);
    let no_token = userinfo(&app, "/oauth2/userinfo", "").await;
    assert_eq!(no_token.status(), 401);
    assert_eq!(error_of(no_token.json().await.unwrap()), "invalid_token");
}

#[tokio::test]
async fn a_client_that_asks_for_consent_gets_a_code_only_when_the_user_allows_it() {
    let app = app().await;
    let (alice, _) = app.user("alice").await;
    let page = alice
        .get(app.url(&authorize_path("", "desk").replace("openid%20email", "openid")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Desk &lt;app&gt;"),
        "the client name is escaped"
    );
    assert!(html.contains("action=\"/oauth2/authorize/consent\""));
    let ticket = html
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // A cross-site post of the form is refused; nobody else may answer; the user may.
    let forged = alice
        .post(app.url("/oauth2/authorize/consent"))
        .header("origin", "https://evil.example")
        .form(&[("ticket", ticket.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let (bob, _) = app.user("bob").await;
    let by_bob = bob
        .post(app.url("/oauth2/authorize/consent"))
        .form(&[("ticket", ticket.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(by_bob.status(), 400);
    let anonymous = app
        .new_client()
        .post(app.url("/oauth2/authorize/consent"))
        .form(&[("ticket", ticket.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Bob's attempt used the ticket up: a fresh prompt, then deny, then allow.
    let fresh_ticket = |html: String| {
        html.split("name=\"ticket\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned()
    };
    let mut answers = Vec::new();
    for decision in ["deny", "approve"] {
        let html = alice
            .get(app.url(&authorize_path("", "desk").replace("openid%20email", "openid")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let answer = alice
            .post(app.url("/oauth2/authorize/consent"))
            .form(&[
                ("ticket", fresh_ticket(html).as_str()),
                ("decision", decision),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302);
        answers.push(location(&answer));
    }
    assert_eq!(
        param(&answers[0], "error").as_deref(),
        Some("access_denied")
    );
    assert!(param(&answers[0], "code").is_none());
    let code = param(&answers[1], "code").unwrap();
    assert!(answers[1].starts_with("http://127.0.0.1:7777/cb?"));
    // A public client: PKCE is its proof.
    let tokens = app
        .new_client()
        .post(app.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "desk"),
            ("code", code.as_str()),
            ("redirect_uri", "http://127.0.0.1:7777/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), 200);
    let tokens: Value = tokens.json().await.unwrap();
    // Revocation ends the grant.
    let revoked = app
        .new_client()
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("client_id", "desk"),
            ("token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo(&app, "/oauth2/userinfo", access).await.status(),
        401
    );
}
