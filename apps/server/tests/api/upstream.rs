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
pub(crate) struct OpenIdProvider {
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

fn provider_entry(id: &str, op_port: u16, extra: &serde_json::Value) -> serde_json::Value {
    let mut provider = json!({
        "id": id,
        "name": format!("{id} SSO"),
        "discovery_url": format!("http://127.0.0.1:{op_port}/.well-known/openid-configuration"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    });
    if let (Some(p), Some(e)) = (provider.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    provider
}

/// A Sage Server in oauth mode (its `SAGE_PUBLIC_URL` set to where it listens) with one
/// upstream provider per `(id, settings)`, and one real OpenID Provider process for each.
pub(crate) async fn deploy(
    providers: &[(&str, serde_json::Value)],
    customise: impl FnOnce(&mut platform::Config),
) -> (TestApp, Vec<OpenIdProvider>) {
    let ports: Vec<u16> = providers.iter().map(|_| free_port()).collect();
    let entries: Vec<serde_json::Value> = providers
        .iter()
        .zip(&ports)
        .map(|((id, extra), port)| provider_entry(id, *port, extra))
        .collect();
    let app_port = free_port();
    let app = TestApp::spawn_with(|c| {
        c.auth_mode = platform::AuthMode::OAuth;
        c.auth_providers = json!(entries);
        c.port = app_port;
        c.public_url = Some(format!("http://127.0.0.1:{app_port}"));
        customise(c);
    })
    .await;
    let ops = providers
        .iter()
        .zip(&ports)
        .map(|((id, _), port)| {
            OpenIdProvider::start(
                *port,
                &app.url(&format!("/api/auth/upstream/callback/{id}")),
            )
        })
        .collect();
    (app, ops)
}

/// A Sage Server in oauth mode with the one upstream provider `corp`, and that provider.
async fn setup(
    extra: serde_json::Value,
    customise: impl FnOnce(&mut platform::Config),
) -> (TestApp, OpenIdProvider) {
    let mut corp = json!({"admin_emails": "boss@example.com"});
    if let (Some(p), Some(e)) = (corp.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let (app, mut ops) = deploy(&[("corp", corp)], customise).await;
    (app, ops.remove(0))
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
async fn an_e_mail_never_links_by_itself_to_an_account_with_a_password() {
    // Even with linking on and the domain vouched for, an account that has a password is
    // reached only by logging in to it and linking.
    let (app, _op) = setup(
        json!({"link_by_email": true, "link_email_domains": "example.com"}),
        |_| {},
    )
    .await;
    let local = app.new_client();
    browser_login(&app, &local, "/api/auth/upstream/login/corp", "boss").await;
    let pat_id = envelope(
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
    let refused = browser_login(
        &app,
        &browser,
        "/api/auth/upstream/login/corp",
        "pat@example.com",
    )
    .await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        envelope(refused).await["error_code"],
        "auth.upstream_link_required"
    );
    assert_eq!(
        whoami_status(&app, &browser).await,
        401,
        "no session for pat"
    );
    let _ = pat_id;

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

fn set_cookie_values(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn a_second_providers_e_mail_never_takes_over_an_account() {
    // partner vouches for example.com and links by e-mail: still, neither the bootstrap admin
    // (password, admin) nor corp's olivia (linked to corp) can be reached through it.
    let (app, _ops) = deploy(
        &[
            ("corp", json!({})),
            (
                "partner",
                json!({"link_by_email": true, "link_email_domains": ["example.com"]}),
            ),
        ],
        |c| c.admin_email = Some("admin@example.com".into()),
    )
    .await;
    let attacker = app.new_client();
    let refused = browser_login(
        &app,
        &attacker,
        "/api/auth/upstream/login/partner",
        "admin@example.com",
    )
    .await;
    assert_eq!(refused.status(), 409, "no admin session through partner");
    assert_eq!(
        envelope(refused).await["error_code"],
        "auth.upstream_link_required"
    );
    assert_eq!(whoami_status(&app, &attacker).await, 401);

    let olivia = app.new_client();
    browser_login(&app, &olivia, "/api/auth/upstream/login/corp", "olivia").await;
    let corp_olivia = whoami(&app, &olivia).await;
    assert_eq!(corp_olivia["email"], "olivia@example.com");
    let other = app.new_client();
    let refused = browser_login(
        &app,
        &other,
        "/api/auth/upstream/login/partner",
        "olivia@example.com",
    )
    .await;
    assert_eq!(
        refused.status(),
        409,
        "an account linked to corp is not linked to partner"
    );
    assert_eq!(whoami_status(&app, &other).await, 401);
}

#[tokio::test]
async fn a_logged_in_user_links_an_identity_of_another_provider() {
    let (app, _ops) = deploy(&[("corp", json!({})), ("partner", json!({}))], |_| {}).await;
    let anonymous = app
        .new_client()
        .post(app.url("/api/auth/upstream/link/partner"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "linking needs a login first");

    let browser = app.new_client();
    browser_login(&app, &browser, "/api/auth/upstream/login/corp", "olivia").await;
    let olivia = whoami(&app, &browser).await;
    // Without linking (off by default), partner's olivia cannot reach corp's olivia.
    let before = app.new_client();
    let refused = browser_login(
        &app,
        &before,
        "/api/auth/upstream/login/partner",
        "olivia@example.com",
    )
    .await;
    assert_eq!(refused.status(), 409);

    let started = browser
        .post(app.url("/api/auth/upstream/link/partner?next=/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let authorize = location(&started, &app.address);
    let callback = through_provider(&browser, &authorize, "olivia@example.com", &app.address).await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302);
    assert_eq!(done.headers()["location"], "/settings");
    assert_eq!(
        whoami(&app, &browser).await["userid"],
        olivia["userid"],
        "same session"
    );

    let later = app.new_client();
    browser_login(
        &app,
        &later,
        "/api/auth/upstream/login/partner",
        "olivia@example.com",
    )
    .await;
    assert_eq!(
        whoami(&app, &later).await["userid"],
        olivia["userid"],
        "partner's identity now logs in as olivia"
    );

    // Someone else cannot link the same identity to their account.
    let quentin = app.new_client();
    browser_login(&app, &quentin, "/api/auth/upstream/login/corp", "quentin").await;
    let started = quentin
        .post(app.url("/api/auth/upstream/link/partner"))
        .send()
        .await
        .unwrap();
    let authorize = location(&started, &app.address);
    let callback = through_provider(&quentin, &authorize, "olivia@example.com", &app.address).await;
    let taken = quentin.get(&callback).send().await.unwrap();
    assert_eq!(taken.status(), 409);
    assert_eq!(
        envelope(taken).await["error_code"],
        "auth.upstream_identity_taken"
    );
}

#[tokio::test]
async fn admins_come_from_the_provider_never_from_a_claimed_username() {
    let (app, _op) = setup(
        json!({"admin_emails": "", "admin_usernames": "boss", "admin_subjects": ["chief"]}),
        |_| {},
    )
    .await;
    let impostor = app.new_client();
    browser_login(&app, &impostor, "/api/auth/upstream/login/corp", "boss!").await;
    let user = whoami(&app, &impostor).await;
    let name = user["username"].as_str().unwrap().to_owned();
    assert!(
        !name.to_lowercase().starts_with("boss"),
        "`boss!` is not cleaned into `boss`: {name}"
    );
    assert_eq!(user["role"], "user");

    let boss = app.new_client();
    browser_login(&app, &boss, "/api/auth/upstream/login/corp", "boss").await;
    let user = whoami(&app, &boss).await;
    assert_eq!(user["username"], "boss", "the real boss keeps the name");
    assert_eq!(
        user["role"], "user",
        "a local username never makes an admin"
    );

    let chief = app.new_client();
    browser_login(&app, &chief, "/api/auth/upstream/login/corp", "chief").await;
    assert_eq!(
        whoami(&app, &chief).await["role"],
        "admin",
        "admin by subject"
    );
}

#[tokio::test]
async fn the_role_claim_maps_admin_at_each_login() {
    let (app, _op) = setup(
        json!({"admin_emails": "", "role_claim": "sage_roles"}),
        |_| {},
    )
    .await;
    for (name, role) in [
        ("role-admin-ann", "admin"),
        ("role-str-admin-bo", "admin"),
        ("carl", "user"),
    ] {
        let browser = app.new_client();
        browser_login(&app, &browser, "/api/auth/upstream/login/corp", name).await;
        assert_eq!(whoami(&app, &browser).await["role"], role, "{name}");
        let again = app.new_client();
        browser_login(&app, &again, "/api/auth/upstream/login/corp", name).await;
        assert_eq!(
            whoami(&app, &again).await["role"],
            role,
            "{name}, second login"
        );
    }
}

#[tokio::test]
async fn the_flow_cookie_is_an_independent_secure_secret_and_the_callback_is_fixed() {
    let (app, _op) = setup(json!({}), |_| {}).await;
    let started = app
        .new_client()
        .get(app.url("/api/auth/upstream/login/corp"))
        .header("Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 302);
    let authorize = location(&started, &app.address);
    let state = query_param(&authorize, "state").unwrap();
    assert_eq!(
        query_param(&authorize, "redirect_uri").unwrap(),
        app.url("/api/auth/upstream/callback/corp"),
        "the registered callback, whatever the Host"
    );
    let cookie = set_cookie_values(&started)
        .into_iter()
        .find(|c| c.starts_with("sage_oidc_flow="))
        .unwrap();
    let value = cookie["sage_oidc_flow=".len()..].split(';').next().unwrap();
    assert_ne!(value, state, "the cookie is not the state of the URL");
    assert!(value.len() >= 43, "a random secret: {value}");

    let other_path = app
        .get(&format!(
            "/api/auth/upstream/login/corp?redirect_uri={}",
            app.url("/api/auth/upstream/login/corp")
        ))
        .await;
    assert_eq!(
        other_path.status(),
        422,
        "another path of this server is refused"
    );

    // Behind https, the flow cookie is Secure.
    let (https, _op2) = setup(json!({}), |c| {
        c.public_url = Some("https://sage.example".into());
    })
    .await;
    let started = https.get("/api/auth/upstream/login/corp").await;
    assert_eq!(started.status(), 302);
    let cookie = set_cookie_values(&started)
        .into_iter()
        .find(|c| c.starts_with("sage_oidc_flow="))
        .unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    assert_eq!(
        query_param(&location(&started, &https.address), "redirect_uri").unwrap(),
        "https://sage.example/api/auth/upstream/callback/corp"
    );
}

#[tokio::test]
async fn oauth_mode_without_a_public_url_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = platform::Config {
        port: 0,
        auth_mode: platform::AuthMode::OAuth,
        data_dir: dir.path().to_path_buf(),
        ..platform::Config::default()
    };
    let error = match server::Application::build(config).await {
        Ok(_) => panic!("oauth mode started without SAGE_PUBLIC_URL"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("SAGE_PUBLIC_URL"), "{error}");
}

#[tokio::test]
async fn anonymous_starts_are_bounded() {
    let (app, _op) = setup(json!({}), |c| c.upstream_starts_per_ip = 3).await;
    let long_next = format!("/{}", "x".repeat(2048));
    let refused = app
        .get(&format!("/api/auth/upstream/login/corp?next={long_next}"))
        .await;
    assert_eq!(refused.status(), 422, "next is capped at 2 KB");
    for _ in 0..3 {
        assert_eq!(app.get("/api/auth/upstream/login/corp").await.status(), 302);
    }
    let limited = app.get("/api/auth/upstream/login/corp").await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        envelope(limited).await["error_code"],
        "auth.too_many_attempts"
    );
}

/// A stand-in provider that only serves a discovery document (`/.well-known/…`) and empty
/// keys (`/jwks`); returns its issuer.
async fn fake_discovery(document: impl Fn(&str) -> String + Send + Sync + 'static) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let document = std::sync::Arc::new(document);
    let served = issuer.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let document = document.clone();
            let issuer = served.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let body = if text.starts_with("GET /jwks") {
                    r#"{"keys":[]}"#.to_owned()
                } else {
                    document(&issuer)
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    issuer
}

fn discovery_document(issuer: &str, jwks_uri: &str, padding: usize) -> String {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": jwks_uri,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "padding": "x".repeat(padding),
    })
    .to_string()
}

async fn start_against(issuer: &str) -> reqwest::Response {
    let app = TestApp::spawn_with(|c| {
        c.auth_mode = platform::AuthMode::OAuth;
        c.public_url = Some("http://127.0.0.1:9".into());
        // Loopback is this test's "internal network": only the configured issuer may be on it.
        c.outbound_allow = Vec::new();
        c.auth_providers = json!([{"id": "corp", "issuer": issuer, "client_id": CLIENT_ID}]);
    })
    .await;
    app.get("/api/auth/upstream/login/corp").await
}

#[tokio::test]
async fn the_provider_client_keeps_to_the_issuer_or_the_outbound_policy_and_caps_answers() {
    let sound =
        fake_discovery(|issuer| discovery_document(issuer, &format!("{issuer}/jwks"), 0)).await;
    assert_eq!(
        start_against(&sound).await.status(),
        302,
        "the issuer's own origin is reached"
    );

    // Keys on another (internal) origin: refused by the outbound policy.
    let elsewhere = fake_discovery(|issuer| {
        let port = issuer.rsplit(':').next().unwrap();
        discovery_document(issuer, &format!("http://localhost:{port}/jwks"), 0)
    })
    .await;
    let refused = start_against(&elsewhere).await;
    assert_eq!(refused.status(), 502);
    assert_eq!(
        envelope(refused).await["error_code"],
        "auth.upstream_failed"
    );

    // A discovery document over the cap is not read.
    let huge = fake_discovery(|issuer| {
        discovery_document(issuer, &format!("{issuer}/jwks"), 2 * 1024 * 1024)
    })
    .await;
    assert_eq!(start_against(&huge).await.status(), 502);
}
