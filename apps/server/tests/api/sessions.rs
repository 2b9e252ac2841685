//! Sessions across restarts and processes: they live in the database on the embedded default
//! (Redis with `REDIS_URL`), so a restart keeps them and a revocation made by any process,
//! the admin CLI included, holds in every other one.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

const BIN: &str = env!("CARGO_BIN_EXE_sage-server");

/// A user `name` (password `<name>-Secret-9`) logged in: the cookie client and the tokens.
async fn logged_in(app: &TestApp, name: &str) -> (reqwest::Client, String, String) {
    let admin = app.admin().await;
    let created = app
        .post_json(
            &admin,
            "/api/user/add",
            json!({"username": name, "password": format!("{name}-Secret-9")}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let client = app.new_client();
    let login = envelope(app.login(&client, name, &format!("{name}-Secret-9")).await).await;
    let access = login["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh = login["data"]["refresh_token"].as_str().unwrap().to_owned();
    (client, access, refresh)
}

async fn bearer_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/auth/session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn cookie_status(base: &str, client: &reqwest::Client) -> u16 {
    client
        .get(format!("{base}/api/auth/session"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn refresh_with(base: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/api/auth/refresh"))
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bearer_token_survives_a_restart_and_revocations_reach_every_process() {
    let app = TestApp::spawn().await;
    let (_, access, refresh) = logged_in(&app, "rhea").await;
    assert_eq!(bearer_status(&app.address, &access).await, 200);

    // A restart (a new process state over the same data) keeps the session and its tokens.
    let restarted = app.another_server().await;
    assert_eq!(bearer_status(&restarted, &access).await, 200);

    // Refreshing on one process revokes the previous pair on the other, which had the old
    // access token cached.
    let rotated = envelope(refresh_with(&restarted, &refresh).await).await;
    let new_access = rotated["data"]["access_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&app.address, &access).await, 401);
    assert_eq!(bearer_status(&app.address, &new_access).await, 200);

    // Logging out on one ends the session on the other.
    let logout = reqwest::Client::new()
        .post(format!("{restarted}/api/auth/logout"))
        .bearer_auth(&new_access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(bearer_status(&app.address, &new_access).await, 401);
}

#[tokio::test]
async fn the_cli_password_reset_ends_sessions_in_a_running_server() {
    let app = TestApp::spawn().await;
    let (client, access, refresh) = logged_in(&app, "sable").await;
    assert_eq!(cookie_status(&app.address, &client).await, 200);
    assert_eq!(bearer_status(&app.address, &access).await, 200);

    let mut cmd = Command::new(BIN);
    cmd.args([
        "admin",
        "reset-password",
        "--username",
        "sable",
        "--password-stdin",
    ])
    .env_clear()
    .envs(app.binary_env())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Sable-reset-pass-2\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");

    assert_eq!(cookie_status(&app.address, &client).await, 401);
    assert_eq!(bearer_status(&app.address, &access).await, 401);
    assert_eq!(refresh_with(&app.address, &refresh).await.status(), 401);
    let fresh = app.new_client();
    assert_eq!(
        app.login(&fresh, "sable", "Sable-reset-pass-2")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_in_every_process() {
    let app = TestApp::spawn().await;
    let (_, access, refresh) = logged_in(&app, "tansy").await;
    let other = app.another_server().await;
    assert_eq!(bearer_status(&other, &access).await, 200);
    let admin = app.admin().await;
    let users = envelope(
        admin
            .get(app.url("/api/user/list?page=1&page_size=100"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = users["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "tansy")
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .unwrap();
    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": id}))
        .await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(bearer_status(&other, &access).await, 401);
    assert_eq!(refresh_with(&other, &refresh).await.status(), 401);
}

#[tokio::test]
async fn each_refresh_revokes_the_previous_pair() {
    let app = TestApp::spawn().await;
    let (_, first_access, mut refresh) = logged_in(&app, "ulla").await;
    let mut accesses = vec![first_access];
    for _ in 0..5 {
        let body: Value = envelope(refresh_with(&app.address, &refresh).await).await;
        refresh = body["data"]["refresh_token"].as_str().unwrap().to_owned();
        accesses.push(body["data"]["access_token"].as_str().unwrap().to_owned());
    }
    let (current, previous) = accesses.split_last().unwrap();
    assert_eq!(bearer_status(&app.address, current).await, 200);
    for old in previous {
        assert_eq!(bearer_status(&app.address, old).await, 401);
    }
}

#[tokio::test]
async fn a_bearer_token_alone_never_mints_a_refresh_token() {
    let app = TestApp::spawn().await;
    let (cookie_client, access, _) = logged_in(&app, "vega").await;
    let bearer_only = reqwest::Client::new()
        .post(app.url("/api/auth/refresh"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer_only.status(), 401);
    // The web UI's form, from the cookie session, still works.
    let from_cookie = cookie_client
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(from_cookie.status(), 200);
}

fn sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Every key name and string or set value of this test's Redis prefix.
async fn redis_dump(url: &str, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut dump = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        match kind.as_str() {
            "string" => {
                let value: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                dump.push(String::from_utf8_lossy(&value).into_owned());
            }
            "set" => {
                let members: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                dump.extend(members);
            }
            _ => {}
        }
        dump.push(key);
    }
    dump
}

/// Every value of the session and token tables.
async fn table_dump(app: &TestApp) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = platform::db::connect(&app.config).await.unwrap();
    let backend = db.get_database_backend();
    let mut dump = Vec::new();
    for sql in [
        r#"SELECT "key" AS a, user_id AS b FROM auth_sessions"#,
        "SELECT hash AS a, session_key AS b FROM auth_tokens",
        "SELECT COALESCE(pair, '') AS a, kind AS b FROM auth_tokens",
    ] {
        for row in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
        {
            dump.push(row.try_get::<String>("", "a").unwrap());
            dump.push(row.try_get::<String>("", "b").unwrap());
        }
    }
    dump
}

#[tokio::test]
async fn the_store_holds_only_digests_of_session_ids_and_tokens() {
    let app = TestApp::spawn().await;
    let client = app.new_client();
    let admin = app.admin().await;
    let created = app
        .post_json(
            &admin,
            "/api/user/add",
            json!({"username": "wren", "password": "wren-Secret-9"}),
        )
        .await;
    assert_eq!(created.status(), 200);
    let response = app.login(&client, "wren", "wren-Secret-9").await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find_map(|c| {
            c.strip_prefix("sage_session=")
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .unwrap();
    let body = envelope(response).await;
    let secrets = [
        cookie.clone(),
        body["data"]["access_token"].as_str().unwrap().to_owned(),
        body["data"]["refresh_token"].as_str().unwrap().to_owned(),
    ];
    let dump = match &app.config.redis_url {
        Some(url) => redis_dump(url, &app.config.redis_prefix).await,
        None => table_dump(&app).await,
    };
    for secret in &secrets {
        assert!(
            dump.iter().all(|entry| !entry.contains(secret.as_str())),
            "a credential is stored in clear"
        );
    }
    let key = sha256(&cookie);
    assert!(
        dump.iter().any(|entry| entry.contains(&key)),
        "the session is stored under the SHA-256 of its id"
    );
}

#[tokio::test]
async fn a_cookie_session_mints_a_bounded_number_of_token_pairs() {
    let app = TestApp::spawn().await;
    let (cookie_client, _, refresh) = logged_in(&app, "mira").await;
    for _ in 0..60 {
        let minted = cookie_client
            .post(app.url("/api/auth/refresh"))
            .send()
            .await
            .unwrap();
        assert_eq!(minted.status(), 200);
    }
    let over = cookie_client
        .post(app.url("/api/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    // A refresh token rotates (it mints no extra pair), so it still works.
    let rotated = app
        .post_json(
            &app.new_client(),
            "/api/auth/refresh",
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(rotated.status(), 200);
}

/// A Bearer request to `base` with an optional JSON body; the envelope's `data`.
async fn bearer_call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = envelope(request.send().await.unwrap()).await;
    answer["data"].clone()
}

/// What `GET /api/agent/list` on `base` names.
async fn agent_names(base: &str, token: &str) -> Vec<String> {
    let data = bearer_call(base, token, "GET", "/api/agent/list", None).await;
    data.as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

/// What `read` answers once `holds` is true of it, or its last answer after two seconds.
/// On a SQLite file another process's change is seen by the very next read (the first try
/// must hold); on PostgreSQL once its notification reaches this process, normally well under a
/// millisecond. Two seconds is less than a cached entry's five-second age limit, so a change
/// nobody announced still fails.
async fn seen<T, F, Fut>(app: &TestApp, read: F, holds: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let value = read().await;
        if holds(&value)
            || !app.database_url.starts_with("postgres")
            || std::time::Instant::now() > deadline
        {
            return value;
        }
    }
}

#[tokio::test]
async fn the_session_view_and_agent_list_show_what_another_process_just_changed() {
    let app = TestApp::spawn().await;
    let llm = llm_double::LlmDouble::start(None, &[]).await.unwrap();
    let (_, owner, _) = logged_in(&app, "wren").await;
    let (_, guest, _) = logged_in(&app, "yarrow").await;
    let guest_id = bearer_call(&app.address, &guest, "GET", "/api/auth/session", None).await
        ["user"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.another_server().await;
    let session = |token: String| {
        let base = app.address.clone();
        async move { bearer_call(&base, &token, "GET", "/api/auth/session", None).await }
    };

    // This process has read (and may cache) the views before the other one changes them.
    let before = session(owner.clone()).await;
    assert_eq!(before["user"]["nickname"], "wren");
    assert_eq!(before["has_agent"], false);
    assert_eq!(before["has_provider"], false);
    assert!(agent_names(&app.address, &owner).await.is_empty());
    assert!(agent_names(&app.address, &guest).await.is_empty());

    bearer_call(
        &other,
        &owner,
        "PUT",
        "/api/user/profile",
        Some(json!({"nickname": "Wren W."})),
    )
    .await;
    let created = bearer_call(
        &other,
        &owner,
        "POST",
        "/api/agent/create",
        Some(json!({"name": "Scout", "systemPrefix": "You scout.", "maxLoopCount": 5})),
    )
    .await;
    let agent_id = created["agent_id"].as_str().unwrap().to_owned();
    bearer_call(&other, &owner, "POST", "/api/llm-provider/create",
        Some(json!({"base_url": llm.base_url, "api_keys": ["sk-cache-test"], "model": "m", "is_default": true}))).await;

    let after = seen(
        &app,
        || session(owner.clone()),
        |s| {
            s["user"]["nickname"] == "Wren W."
                && s["has_agent"] == true
                && s["has_provider"] == true
        },
    )
    .await;
    assert_eq!(after["user"]["nickname"], "Wren W.");
    assert_eq!(after["has_agent"], true);
    assert_eq!(after["has_provider"], true);
    let names = |token: &String| {
        let (base, token) = (app.address.clone(), token.clone());
        move || {
            let (base, token) = (base.clone(), token.clone());
            async move { agent_names(&base, &token).await }
        }
    };
    assert_eq!(
        seen(&app, names(&owner), |n| n == &["Scout"]).await,
        ["Scout"]
    );

    // A grant made elsewhere reaches the grantee's list here; its removal too.
    assert!(agent_names(&app.address, &guest).await.is_empty());
    bearer_call(
        &other,
        &owner,
        "POST",
        &format!("/api/agent/{agent_id}/auth"),
        Some(json!({"user_ids": [guest_id]})),
    )
    .await;
    assert_eq!(
        seen(&app, names(&guest), |n| n == &["Scout"]).await,
        ["Scout"]
    );
    bearer_call(
        &other,
        &owner,
        "DELETE",
        &format!("/api/agent/{agent_id}"),
        None,
    )
    .await;
    assert!(seen(&app, names(&guest), Vec::is_empty).await.is_empty());
    assert!(seen(&app, names(&owner), Vec::is_empty).await.is_empty());
    let session_now = seen(&app, || session(owner.clone()), |s| s["has_agent"] == false).await;
    assert_eq!(session_now["has_agent"], false);
}
