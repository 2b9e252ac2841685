//! The protocol on real storage: SQLite, and PostgreSQL when `TEST_DATABASE_URL` is set; codes
//! in the in-process key-value store; time on a clock the test moves.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use platform::ManualClock;
use platform::store::MemoryKvStore;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::{Value, json};
use sha2::Digest;

use super::{SeaOrmAuthorizationServer, Settings};
use crate::{
    Account, Accounts, AuthorizationServer, AuthorizeOutcome, AuthorizeRequest, ClientCredentials,
    TokenRequest, parse_clients,
};

const ISSUER: &str = "https://sage.example/oauth2";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9zRAgu0ohZaEQ5kqH5fNaqOnk8ZLyb";
const SECRET: &str = "s3cret-s3cret-s3cret";

#[derive(Default)]
struct People(Mutex<Vec<Account>>);

#[async_trait]
impl Accounts for People {
    async fn account(&self, user_id: &str) -> Result<Option<Account>, anyhow::Error> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.user_id == user_id)
            .cloned())
    }
}

fn alice() -> Account {
    Account {
        user_id: "u-alice".into(),
        username: "alice".into(),
        role: "user".into(),
        nickname: Some("Alice".into()),
        email: Some("alice@example.com".into()),
        avatar: None,
    }
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(VERIFIER.as_bytes()))
}

struct Fixture {
    server: SeaOrmAuthorizationServer,
    clock: Arc<ManualClock>,
    people: Arc<People>,
    _dir: tempfile::TempDir,
}

async fn fixture(clients: Value) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = migration::test_database(dir.path()).await.unwrap();
    let clock = Arc::new(ManualClock::new(
        DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .to_utc(),
    ));
    let people = Arc::new(People::default());
    people.0.lock().unwrap().push(alice());
    let key = platform::secret::load_or_create(dir.path(), Some(&"k".repeat(40))).unwrap();
    let server = SeaOrmAuthorizationServer::new(
        db,
        Arc::new(MemoryKvStore::new()),
        platform::secret::Sealer::new(&key),
        people.clone(),
        Settings::default(),
    )
    .with_clock(clock.clone());
    server
        .sync_clients(&parse_clients(&clients).unwrap())
        .await
        .unwrap();
    Fixture {
        server,
        clock,
        people,
        _dir: dir,
    }
}

fn confidential() -> Value {
    json!([{
        "client_id": "wiki",
        "client_secret": SECRET,
        "name": "Team wiki",
        "redirect_uris": "https://wiki.example/cb https://wiki.example/other",
    }, {
        "client_id": "cli-app",
        "redirect_uris": ["http://127.0.0.1:7777/cb"],
        "scope": "openid profile",
        "skip_consent": false,
    }])
}

fn request(client_id: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        state: Some("st-1".into()),
        code_challenge: Some(challenge()),
        code_challenge_method: Some("S256".into()),
        nonce: Some("n-1".into()),
        ..AuthorizeRequest::default()
    }
}

fn basic(id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        authorization: Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )),
        ..ClientCredentials::default()
    }
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').unwrap().1;
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn param(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

async fn code_for(fx: &Fixture, client_id: &str) -> String {
    match fx
        .server
        .authorize(Some("u-alice"), request(client_id), ISSUER)
        .await
        .unwrap()
    {
        AuthorizeOutcome::Redirect(url) => param(&url, "code").unwrap(),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn exchange(code: &str, redirect_uri: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(redirect_uri.into()),
        code_verifier: Some(VERIFIER.into()),
        ..TokenRequest::default()
    }
}

fn refresh(token: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(token.into()),
        ..TokenRequest::default()
    }
}

fn code_of(result: Result<impl std::fmt::Debug, crate::OAuthError>) -> &'static str {
    result.unwrap_err().code()
}

#[tokio::test]
async fn the_code_flow_issues_tokens_once_and_a_replayed_code_revokes_them() {
    let fx = fixture(confidential()).await;
    let AuthorizeOutcome::Redirect(url) = fx
        .server
        .authorize(Some("u-alice"), request("wiki"), ISSUER)
        .await
        .unwrap()
    else {
        panic!("wiki skips consent");
    };
    assert!(url.starts_with("https://wiki.example/cb?"), "{url}");
    assert_eq!(param(&url, "state").as_deref(), Some("st-1"));
    assert_eq!(param(&url, "iss").as_deref(), Some(ISSUER));
    let code = param(&url, "code").unwrap();

    // The wrong verifier, client or redirect URI gets nothing; the code is spent either way.
    let mut wrong = exchange(&code, "https://wiki.example/cb");
    wrong.code_verifier = Some("x".repeat(43));
    assert_eq!(
        code_of(fx.server.token(basic("wiki", SECRET), wrong, ISSUER).await),
        "invalid_grant"
    );
    let code = code_for(&fx, "wiki").await;
    let tokens = fx
        .server
        .token(
            basic("wiki", SECRET),
            exchange(&code, "https://wiki.example/cb"),
            ISSUER,
        )
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 3600);
    assert_eq!(tokens.scope, "openid profile email");
    assert_eq!(tokens.access_token.len(), 48);
    assert!(tokens.refresh_token.is_some());

    // The id_token verifies against the published key and names the user and the client.
    let id_token = tokens.id_token.clone().unwrap();
    let parts: Vec<&str> = id_token.split('.').collect();
    let jwks = fx.server.jwks().await.unwrap();
    let jwk = &jwks["keys"][0];
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["kid"], jwk["kid"]);
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(jwk["y"].as_str().unwrap()).unwrap());
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
        .unwrap();
    let body: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(body["sub"], "u-alice");
    assert_eq!(body["aud"], "wiki");
    assert_eq!(body["iss"], ISSUER);
    assert_eq!(body["nonce"], "n-1");
    assert_eq!(body["email"], "alice@example.com");

    let info = fx
        .server
        .userinfo(&tokens.access_token, ISSUER)
        .await
        .unwrap();
    assert_eq!(info["sub"], "u-alice");
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["name"], "Alice");
    assert_eq!(info["email"], "alice@example.com");

    // Replaying the code fails and revokes what it issued.
    assert_eq!(
        code_of(
            fx.server
                .token(
                    basic("wiki", SECRET),
                    exchange(&code, "https://wiki.example/cb"),
                    ISSUER,
                )
                .await
        ),
        "invalid_grant"
    );
    assert_eq!(
        code_of(fx.server.userinfo(&tokens.access_token, ISSUER).await),
        "invalid_token"
    );
    assert_eq!(
        code_of(
            fx.server
                .token(
                    basic("wiki", SECRET),
                    refresh(tokens.refresh_token.as_deref().unwrap()),
                    ISSUER
                )
                .await
        ),
        "invalid_grant"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_grant() {
    let fx = fixture(confidential()).await;
    let code = code_for(&fx, "wiki").await;
    let first = fx
        .server
        .token(
            basic("wiki", SECRET),
            exchange(&code, "https://wiki.example/cb"),
            ISSUER,
        )
        .await
        .unwrap();
    let old_refresh = first.refresh_token.clone().unwrap();
    let mut narrower = refresh(&old_refresh);
    narrower.scope = Some("openid email".into());
    let second = fx
        .server
        .token(basic("wiki", SECRET), narrower, ISSUER)
        .await
        .unwrap();
    assert_eq!(second.scope, "openid email");
    assert_ne!(second.refresh_token.as_deref(), Some(old_refresh.as_str()));
    // The rotated pair is retired, the new one works and releases only the narrower scope.
    assert_eq!(
        code_of(fx.server.userinfo(&first.access_token, ISSUER).await),
        "invalid_token"
    );
    let info = fx
        .server
        .userinfo(&second.access_token, ISSUER)
        .await
        .unwrap();
    assert!(info.get("name").is_none(), "{info:?}");
    assert_eq!(info["email"], "alice@example.com");
    // A wider scope than granted is refused.
    let mut wider = refresh(second.refresh_token.as_deref().unwrap());
    wider.scope = Some("openid profile".into());
    assert_eq!(
        code_of(fx.server.token(basic("wiki", SECRET), wider, ISSUER).await),
        "invalid_scope"
    );
    // Reusing the old refresh token is theft: the whole grant dies.
    assert_eq!(
        code_of(
            fx.server
                .token(basic("wiki", SECRET), refresh(&old_refresh), ISSUER)
                .await
        ),
        "invalid_grant"
    );
    assert_eq!(
        code_of(fx.server.userinfo(&second.access_token, ISSUER).await),
        "invalid_token"
    );
    let introspected = fx
        .server
        .introspect(
            basic("wiki", SECRET),
            second.refresh_token.as_deref().unwrap(),
            ISSUER,
        )
        .await
        .unwrap();
    assert_eq!(introspected["active"], false);
}

#[tokio::test]
async fn authorization_requests_are_checked_in_order_and_pkce_s256_is_required() {
    let fx = fixture(confidential()).await;
    let cases: Vec<(AuthorizeRequest, &str)> = vec![
        (
            AuthorizeRequest {
                response_type: Some("token".into()),
                ..request("wiki")
            },
            "unsupported_response_type",
        ),
        (
            AuthorizeRequest {
                client_id: Some(String::new()),
                ..request("wiki")
            },
            "invalid_request",
        ),
        (request("nobody"), "invalid_client"),
        (
            AuthorizeRequest {
                redirect_uri: Some("https://wiki.example/cb/../evil".into()),
                ..request("wiki")
            },
            "invalid_request",
        ),
        (
            AuthorizeRequest {
                scope: Some("openid admin".into()),
                ..request("wiki")
            },
            "invalid_scope",
        ),
        (
            AuthorizeRequest {
                code_challenge: None,
                ..request("wiki")
            },
            "invalid_request",
        ),
        (
            AuthorizeRequest {
                code_challenge_method: Some("plain".into()),
                ..request("wiki")
            },
            "invalid_request",
        ),
    ];
    for (req, expected) in cases {
        let got = fx
            .server
            .authorize(Some("u-alice"), req.clone(), ISSUER)
            .await;
        assert_eq!(code_of(got), expected, "{req:?}");
    }
    // Valid but nobody logged in: to the login page.
    assert_eq!(
        fx.server
            .authorize(None, request("wiki"), ISSUER)
            .await
            .unwrap(),
        AuthorizeOutcome::Login
    );
    // The second registered URI matches exactly.
    let other = AuthorizeRequest {
        redirect_uri: Some("https://wiki.example/other".into()),
        ..request("wiki")
    };
    let AuthorizeOutcome::Redirect(url) = fx
        .server
        .authorize(Some("u-alice"), other, ISSUER)
        .await
        .unwrap()
    else {
        panic!("expected a redirect");
    };
    assert!(url.starts_with("https://wiki.example/other?code="), "{url}");
}

#[tokio::test]
async fn clients_authenticate_only_their_registered_way() {
    let fx = fixture(confidential()).await;
    let code = code_for(&fx, "wiki").await;
    let req = || exchange(&code, "https://wiki.example/cb");
    assert_eq!(
        code_of(
            fx.server
                .token(basic("wiki", "wrong-secret-123456"), req(), ISSUER)
                .await
        ),
        "invalid_client"
    );
    let post = ClientCredentials {
        client_id: Some("wiki".into()),
        client_secret: Some(SECRET.into()),
        ..ClientCredentials::default()
    };
    assert_eq!(
        code_of(fx.server.token(post, req(), ISSUER).await),
        "invalid_client"
    );
    let bearer = ClientCredentials {
        authorization: Some("Bearer abc".into()),
        ..ClientCredentials::default()
    };
    assert_eq!(
        code_of(fx.server.token(bearer, req(), ISSUER).await),
        "invalid_client"
    );
    let public_as_wiki = ClientCredentials {
        client_id: Some("wiki".into()),
        ..ClientCredentials::default()
    };
    assert_eq!(
        code_of(fx.server.token(public_as_wiki, req(), ISSUER).await),
        "invalid_client"
    );
    let mut no_grant = req();
    no_grant.grant_type = Some("password".into());
    assert_eq!(
        code_of(
            fx.server
                .token(basic("wiki", SECRET), no_grant, ISSUER)
                .await
        ),
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn consent_tickets_are_single_use_and_only_their_user_answers_them() {
    let fx = fixture(confidential()).await;
    let prompt = |outcome| match outcome {
        AuthorizeOutcome::Consent(p) => p,
        other => panic!("expected consent, got {other:?}"),
    };
    let first = prompt(
        fx.server
            .authorize(Some("u-alice"), request("cli-app"), ISSUER)
            .await
            .unwrap(),
    );
    assert_eq!(first.client_name, "cli-app");
    assert_eq!(first.scopes, vec!["openid", "profile"]);
    assert_eq!(first.redirect_host, "127.0.0.1:7777");
    assert_eq!(
        code_of(
            fx.server
                .consent("u-bob", &first.ticket, true, ISSUER)
                .await
        ),
        "invalid_request"
    );
    let second = prompt(
        fx.server
            .authorize(Some("u-alice"), request("cli-app"), ISSUER)
            .await
            .unwrap(),
    );
    let denied = fx
        .server
        .consent("u-alice", &second.ticket, false, ISSUER)
        .await
        .unwrap();
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&denied, "state").as_deref(), Some("st-1"));
    assert!(param(&denied, "code").is_none());
    let third = prompt(
        fx.server
            .authorize(Some("u-alice"), request("cli-app"), ISSUER)
            .await
            .unwrap(),
    );
    let approved = fx
        .server
        .consent("u-alice", &third.ticket, true, ISSUER)
        .await
        .unwrap();
    let code = param(&approved, "code").unwrap();
    assert_eq!(
        code_of(
            fx.server
                .consent("u-alice", &third.ticket, true, ISSUER)
                .await
        ),
        "invalid_request"
    );
    // A public client proves itself with PKCE alone, and gets no refresh token it may not use.
    let public = ClientCredentials {
        client_id: Some("cli-app".into()),
        ..ClientCredentials::default()
    };
    let tokens = fx
        .server
        .token(public, exchange(&code, "http://127.0.0.1:7777/cb"), ISSUER)
        .await
        .unwrap();
    assert!(tokens.id_token.is_some());
}

#[tokio::test]
async fn tokens_expire_and_die_with_their_user_client_or_revocation() {
    let fx = fixture(confidential()).await;
    let issue = || async {
        let code = code_for(&fx, "wiki").await;
        fx.server
            .token(
                basic("wiki", SECRET),
                exchange(&code, "https://wiki.example/cb"),
                ISSUER,
            )
            .await
            .unwrap()
    };
    let a = issue().await;
    let live = fx
        .server
        .introspect(basic("wiki", SECRET), &a.access_token, ISSUER)
        .await
        .unwrap();
    assert_eq!(live["active"], true);
    assert_eq!(live["sub"], "u-alice");
    assert_eq!(live["client_id"], "wiki");
    fx.clock.advance(chrono::Duration::seconds(3601));
    assert_eq!(
        code_of(fx.server.userinfo(&a.access_token, ISSUER).await),
        "invalid_token"
    );
    // The refresh token outlives the access token.
    let b = fx
        .server
        .token(
            basic("wiki", SECRET),
            refresh(a.refresh_token.as_deref().unwrap()),
            ISSUER,
        )
        .await
        .unwrap();
    fx.server
        .revoke(basic("wiki", SECRET), b.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        code_of(fx.server.userinfo(&b.access_token, ISSUER).await),
        "invalid_token"
    );
    // Unknown tokens are ignored by revocation and inactive for introspection.
    fx.server
        .revoke(basic("wiki", SECRET), "no-such-token")
        .await
        .unwrap();
    let c = issue().await;
    // A client removed from configuration stops working, and so do its tokens.
    fx.server
        .sync_clients(&parse_clients(&json!([])).unwrap())
        .await
        .unwrap();
    assert_eq!(
        code_of(fx.server.userinfo(&c.access_token, ISSUER).await),
        "invalid_token"
    );
    fx.server
        .sync_clients(&parse_clients(&confidential()).unwrap())
        .await
        .unwrap();
    assert!(fx.server.userinfo(&c.access_token, ISSUER).await.is_ok());
    // A deleted user's tokens end.
    fx.people.0.lock().unwrap().clear();
    assert_eq!(
        code_of(fx.server.userinfo(&c.access_token, ISSUER).await),
        "invalid_token"
    );
}

#[test]
fn bad_client_configuration_is_refused_with_its_reason() {
    let refuse = |v: Value| parse_clients(&v).unwrap_err();
    assert!(refuse(json!({"a": 1})).contains("JSON array"));
    assert!(
        refuse(json!([{"client_id": "x", "redirect_uris": ["https://a/cb"]}])).contains("2 to 128")
    );
    assert!(refuse(json!([{"client_id": "app"}])).contains("redirect URI"));
    assert!(
        refuse(json!([{"client_id": "app", "redirect_uris": "javascript:alert(1)"}]))
            .contains("absolute http(s)")
    );
    assert!(
        refuse(json!([{"client_id": "app", "redirect_uris": "https://a/cb", "grant_types": ["password"]}]))
            .contains("not supported")
    );
    assert!(
        refuse(json!([{"client_id": "app", "redirect_uris": "https://a/cb", "token_endpoint_auth_method": "client_secret_post"}]))
            .contains("needs a client_secret")
    );
    assert!(
        refuse(json!([{"client_id": "app", "redirect_uris": "https://a/cb"}, {"id": "app", "redirect_uri": "https://b/cb"}]))
            .contains("twice")
    );
    let parsed = parse_clients(
        &json!([{"id": "app", "redirect_uri": "[\"https://a/cb\"]", "client_secret": SECRET}]),
    )
    .unwrap();
    assert_eq!(parsed[0].redirect_uris, vec!["https://a/cb"]);
    assert_eq!(parsed[0].auth_method, crate::AuthMethod::Basic);
    assert_eq!(parsed[0].scopes, vec!["openid", "profile", "email"]);
}
