//! Upstream OIDC login end to end against a real, certified OpenID Provider (npm
//! `oidc-provider`, started on loopback from `fixtures/oidc`), driven the way a browser would:
//! following redirects, filling the provider's login and consent forms.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::json;

use crate::helpers::{TestApp, envelope};

const CLIENT_ID: &str = "sage-server";
const CLIENT_SECRET: &str = "sage-test-client-secret";

/// The provider process; killed when dropped.
struct OpenIdProvider {
    child: Child,
}

impl Drop for OpenIdProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OpenIdProvider {
    fn start(port: u16, redirect_uri: &str) -> OpenIdProvider {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/oidc");
        assert!(
            std::path::Path::new(dir)
                .join("node_modules/oidc-provider")
                .exists(),
            "oidc-provider is not installed: run `npm ci --prefix fixtures/oidc` (.ci/run and cargo xtask test do)"
        );
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(port.to_string())
            .arg(CLIENT_ID)
            .arg(CLIENT_SECRET)
            .arg(redirect_uri)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().unwrap();
        // The provider prints `ready <issuer>` once it listens: reading blocks until then.
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.starts_with("ready "));
        assert!(ready, "the OpenID Provider did not start");
        // Keep draining its output: a closed pipe would kill it at its next log line.
        std::thread::spawn(move || lines.for_each(drop));
        OpenIdProvider { child }
    }
}

/// A Sage Server in oauth mode with one upstream provider, and that provider.
async fn setup(
    extra: serde_json::Value,
    customise: impl FnOnce(&mut platform::Config),
) -> (TestApp, OpenIdProvider) {
    let op_port = free_port();
    let mut provider = json!({
        "id": "corp",
        "name": "Corp SSO",
        "discovery_url": format!("http://127.0.0.1:{op_port}/.well-known/openid-configuration"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "admin_emails": "boss@example.com",
    });
    if let (Some(p), Some(e)) = (provider.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let app = TestApp::spawn_with(|c| {
        c.auth_mode = platform::AuthMode::OAuth;
        c.auth_providers = json!([provider]);
        customise(c);
    })
    .await;
    let redirect = app.url("/api/auth/upstream/callback/corp");
    let op = OpenIdProvider::start(op_port, &redirect);
    (app, op)
}

fn location(response: &reqwest::Response, base: &str) -> String {
    let loc = response.headers()["location"].to_str().unwrap().to_owned();
    if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    }
}

fn origin(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("http://{}", rest.split('/').next().unwrap())
}

/// Walks the provider's pages as `login_name` until the provider redirects back to us;
/// returns that callback URL (not yet visited).
async fn through_provider(
    client: &reqwest::Client,
    authorize_url: &str,
    login_name: &str,
    ours: &str,
) -> String {
    let op = origin(authorize_url);
    let mut url = authorize_url.to_owned();
    for _ in 0..12 {
        if url.starts_with(ours) {
            return url;
        }
        let response = client.get(&url).send().await.unwrap();
        if response.status().is_redirection() {
            url = location(&response, &op);
            continue;
        }
        assert_eq!(response.status(), 200, "unexpected page at {url}");
        let html = response.text().await.unwrap();
        let form: Vec<(&str, &str)> = if html.contains(r#"name="prompt" value="login""#) {
            vec![
                ("prompt", "login"),
                ("login", login_name),
                ("password", "any"),
            ]
        } else {
            vec![("prompt", "consent")]
        };
        let submitted = client.post(&url).form(&form).send().await.unwrap();
        assert!(
            submitted.status().is_redirection(),
            "form at {url} answered {}",
            submitted.status()
        );
        url = location(&submitted, &op);
    }
    panic!("the provider never redirected back");
}

/// A full browser login; returns the final response of our callback.
async fn browser_login(
    app: &TestApp,
    client: &reqwest::Client,
    start: &str,
    login_name: &str,
) -> reqwest::Response {
    let started = client.get(app.url(start)).send().await.unwrap();
    assert_eq!(started.status(), 302, "start answers a redirect");
    let authorize = location(&started, &app.address);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "PKCE: {authorize}"
    );
    assert!(authorize.contains("nonce="), "nonce: {authorize}");
    let callback = through_provider(client, &authorize, login_name, &app.address).await;
    client.get(callback).send().await.unwrap()
}

async fn whoami(app: &TestApp, client: &reqwest::Client) -> serde_json::Value {
    envelope(
        client
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await["data"]["user"]
        .clone()
}

#[tokio::test]
async fn first_login_creates_the_user_and_second_login_finds_them() {
    let (app, _op) = setup(json!({}), |_| {}).await;
    let browser = app.new_client();
    let done = browser_login(
        &app,
        &browser,
        "/api/auth/upstream/login/corp?next=/agent/chat?tab=1",
        "olivia",
    )
    .await;
    assert_eq!(done.status(), 302);
    assert_eq!(done.headers()["location"], "/agent/chat?tab=1");
    let first = whoami(&app, &browser).await;
    assert_eq!(first["username"], "olivia");
    assert_eq!(first["email"], "olivia@example.com");
    assert_eq!(first["role"], "user");

    let again = app.new_client();
    let done = browser_login(
        &app,
        &again,
        "/api/user/oauth/login?next=https://evil.example/",
        "olivia",
    )
    .await;
    assert_eq!(
        done.headers()["location"],
        "/agent/chat",
        "next is reduced to a local path"
    );
    assert_eq!(
        whoami(&app, &again).await["userid"],
        first["userid"],
        "same user"
    );

    let boss = app.new_client();
    browser_login(&app, &boss, "/api/auth/upstream/login", "boss").await;
    assert_eq!(
        whoami(&app, &boss).await["role"],
        "admin",
        "admin_emails grants admin"
    );
}

#[tokio::test]
async fn e_mail_links_an_existing_account_only_when_verified() {
    let (app, _op) = setup(json!({}), |_| {}).await;
    // In oauth mode admins log in upstream too (admin_emails makes boss one).
    let local = app.new_client();
    browser_login(&app, &local, "/api/auth/upstream/login/corp", "boss").await;
    let verified_id = envelope(
        app.post_json(
            &local,
            "/api/user/add",
            json!({"username": "pat", "password": "pat-Secret-9", "email": "pat@example.com"}),
        )
        .await,
    )
    .await["data"]["user_id"]
        .clone();
    let unverified_id = envelope(
        app.post_json(&local, "/api/user/add", json!({"username": "sam", "password": "sam-Secret-9", "email": "unverified-sam@example.com"}))
            .await,
    )
    .await["data"]["user_id"]
        .clone();

    let browser = app.new_client();
    browser_login(
        &app,
        &browser,
        "/api/auth/upstream/login/corp",
        "pat@example.com",
    )
    .await;
    assert_eq!(
        whoami(&app, &browser).await["userid"],
        verified_id,
        "linked by verified e-mail"
    );

    let other = app.new_client();
    browser_login(
        &app,
        &other,
        "/api/auth/upstream/login/corp",
        "unverified-sam@example.com",
    )
    .await;
    let user = whoami(&app, &other).await;
    assert_ne!(
        user["userid"], unverified_id,
        "an unverified e-mail never takes over an account"
    );
    assert_eq!(user["email"], "", "nor is it attached to the new account");
}

#[tokio::test]
async fn a_callback_in_another_browser_or_with_a_forged_state_is_refused() {
    let (app, _op) = setup(json!({}), |_| {}).await;
    let victim = app.new_client();
    let started = victim
        .get(app.url("/api/auth/upstream/login/corp"))
        .send()
        .await
        .unwrap();
    let authorize = location(&started, &app.address);
    let callback = through_provider(&victim, &authorize, "quentin", &app.address).await;

    let attacker = app.new_client();
    let stolen = attacker.get(&callback).send().await.unwrap();
    assert_eq!(stolen.status(), 400);
    assert_eq!(
        envelope(stolen).await["error_code"],
        "auth.upstream_flow_invalid"
    );

    let forged = callback.replace("state=", "state=x");
    let response = victim.get(&forged).send().await.unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        whoami_status(&app, &victim).await,
        401,
        "no session was opened"
    );
}

async fn whoami_status(app: &TestApp, client: &reqwest::Client) -> u16 {
    client
        .get(app.url("/api/auth/session"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_expired_flow_is_refused() {
    let (app, _op) = setup(json!({}), |c| {
        c.upstream_flow_ttl = std::time::Duration::from_secs(1)
    })
    .await;
    let browser = app.new_client();
    let started = browser
        .get(app.url("/api/auth/upstream/login/corp"))
        .send()
        .await
        .unwrap();
    let authorize = location(&started, &app.address);
    let callback = through_provider(&browser, &authorize, "rita", &app.address).await;
    // Waiting is the behaviour under test: the flow's lifetime running out.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let late = browser.get(&callback).send().await.unwrap();
    assert_eq!(late.status(), 400);
    assert_eq!(
        envelope(late).await["error_code"],
        "auth.upstream_flow_invalid"
    );
}

#[tokio::test]
async fn a_provider_error_is_a_clear_400() {
    let (app, _op) = setup(json!({}), |_| {}).await;
    let browser = app.new_client();
    let started = browser
        .get(app.url("/api/auth/upstream/login/corp"))
        .send()
        .await
        .unwrap();
    let authorize = location(&started, &app.address);
    let state = authorize
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("state="))
        .unwrap()
        .to_owned();
    let denied = browser
        .get(app.url(&format!(
            "/api/auth/upstream/callback/corp?error=access_denied&error_description=user%20cancelled&state={state}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 400);
    let body = envelope(denied).await;
    assert_eq!(body["error_code"], "auth.upstream_denied");
    assert!(
        body["message"].as_str().unwrap().contains("access_denied"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_providers_and_other_modes_answer_404() {
    let (app, _op) = setup(json!({}), |_| {}).await;
    let response = app.get("/api/auth/upstream/login/nope").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        envelope(response).await["error_code"],
        "auth.upstream_provider_not_found"
    );
    let native = TestApp::spawn().await;
    assert_eq!(native.get("/api/auth/upstream/login").await.status(), 404);
    let foreign = app
        .get("/api/auth/upstream/login/corp?redirect_uri=https://evil.example/cb")
        .await;
    assert_eq!(foreign.status(), 422);
}
