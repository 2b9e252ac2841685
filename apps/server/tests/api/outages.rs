//! Outages: liveness needs neither store, readiness names what is down, and a database or
//! Redis that cannot be reached answers 503 `service.unavailable` with `Retry-After` (never 500
//! or a long hang); the server recovers by itself when they return. The outage test owns its
//! PostgreSQL and Redis (stopped and started under the server), so it runs on the PostgreSQL +
//! Redis leg, where their binaries are installed.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};
use crate::services::{OwnPostgres, OwnRedis};

/// Far above the configured acquire timeout, far below the old 10 s hang.
const BOUND: Duration = Duration::from_secs(5);

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client
        .get(app.url(path))
        .timeout(BOUND)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} did not answer within {BOUND:?}: {e}"))
}

async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(
        response.headers().contains_key("retry-after"),
        "{what}: Retry-After"
    );
    let body = envelope(response).await;
    assert_eq!(body["error_code"], "service.unavailable", "{what}: {body}");
}

async fn ready_body(app: &TestApp, client: &reqwest::Client) -> (u16, Value) {
    let response = get(app, client, "/api/ready").await;
    let status = response.status().as_u16();
    (status, envelope(response).await)
}

async fn wait_ready(app: &TestApp, client: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready_body(app, client).await;
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn probes_answer_on_every_backend() {
    let app = TestApp::spawn().await;
    let anonymous = app.new_client();
    let (status, body) = ready_body(&app, &anonymous).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["checks"]["database"], "up");
    let redis = std::env::var("TEST_REDIS_URL").is_ok_and(|v| !v.trim().is_empty());
    assert_eq!(body["data"]["checks"]["redis"].is_string(), redis, "{body}");
    // A stale cookie and token are not even looked at by the probes.
    for path in ["/api/health", "/api/ready"] {
        let r = anonymous
            .get(app.url(path))
            .header("cookie", "sage_session=stale")
            .bearer_auth("stale")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn outages_answer_503_at_once_and_the_server_recovers() {
    if std::env::var("TEST_DATABASE_URL").map_or(true, |v| v.trim().is_empty()) {
        // Embedded leg: no PostgreSQL or Redis binaries are required there.
        return;
    }
    let pg = OwnPostgres::start();
    let mut redis = OwnRedis::start().await;
    let (db_url, redis_url) = (pg.url(), redis.url());
    let app = TestApp::spawn_with(move |c| {
        c.database_url = Some(db_url);
        c.redis_url = Some(redis_url);
    })
    .await;
    let (alice, _) = app.user("alice").await;
    let created = app
        .post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Before", "maxLoopCount": 3}),
        )
        .await;
    assert_eq!(created.status(), 200);
    wait_ready(&app, &alice).await;

    // Redis down: liveness holds, readiness names Redis, what needs it answers 503.
    redis.stop().await;
    assert_eq!(get(&app, &alice, "/api/health").await.status(), 200);
    let (status, body) = ready_body(&app, &alice).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error_code"], "service.not_ready");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("redis") && !message.contains("database"),
        "{message}"
    );
    assert_unavailable(
        get(&app, &alice, "/api/auth/session").await,
        "session, Redis down",
    )
    .await;
    redis.resume().await;
    wait_ready(&app, &alice).await;
    // This Redis keeps nothing across restarts: sessions are gone, logging in works again.
    let password = "alice-Secret-9";
    assert_eq!(app.login(&alice, "alice", password).await.status(), 200);
    assert_eq!(get(&app, &alice, "/api/auth/session").await.status(), 200);

    // PostgreSQL down: the same.
    pg.stop();
    assert_eq!(get(&app, &alice, "/api/health").await.status(), 200);
    let (status, body) = ready_body(&app, &alice).await;
    assert_eq!(status, 503, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("database") && !message.contains("redis"),
        "{message}"
    );
    assert_unavailable(
        get(&app, &alice, "/api/agent/list").await,
        "agent list, database down",
    )
    .await;
    let create = alice
        .post(app.url("/api/agent/create"))
        .json(&json!({"name": "During", "maxLoopCount": 3}))
        .timeout(BOUND)
        .send()
        .await
        .expect("create answers within the bound");
    assert_unavailable(create, "agent create, database down").await;
    let session = get(&app, &alice, "/api/auth/session").await;
    if session.status() != 200 {
        assert_unavailable(session, "session, database down").await;
    }
    let login = alice
        .post(app.url("/api/auth/login"))
        .json(&json!({"username_or_email": "alice", "password": password}))
        .timeout(BOUND)
        .send()
        .await
        .expect("login answers within the bound");
    assert_unavailable(login, "login, database down").await;

    pg.resume();
    wait_ready(&app, &alice).await;
    let list = envelope(get(&app, &alice, "/api/agent/list").await).await;
    assert_eq!(list["data"][0]["name"], "Before");
}
