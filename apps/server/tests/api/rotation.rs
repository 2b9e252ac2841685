//! Secret key rotation: values sealed under a previous `SAGE_SECRET_KEY` still open when it is
//! listed in `SAGE_SECRET_KEY_PREVIOUS`, new values are sealed under the current key, and
//! `sage-server admin reseal` moves the rest, so the previous key can then be dropped.

use std::process::Command;

use llm_double::{LlmDouble, Reply};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

const BIN: &str = env!("CARGO_BIN_EXE_sage-server");
const KEY: &str = "sk-rotation-key-123456789";
const MODEL: &str = "rotation-model";
const OTHER_MODEL: &str = "rotation-model-2";

const DRAFT: &str = r#"{"name": "Rotated", "systemPrefix": "You rotate.", "maxLoopCount": 4}"#;

/// The caller's default provider works: its stored key opens and reaches the model (the
/// scripted model refuses any other key). Nothing is rewritten.
async fn default_provider_works(app: &TestApp, client: &reqwest::Client, llm: &LlmDouble) {
    llm.push(Reply::text(&[DRAFT]));
    let r = app
        .post_json(
            client,
            "/api/agent/auto-generate",
            json!({"agent_description": "rotates keys"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(envelope(r).await["data"]["name"], "Rotated");
}

fn reseal(env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["admin", "reseal"]).env_clear();
    if let Ok(path) = std::env::var("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn a_rotated_key_keeps_stored_secrets_readable_and_reseal_moves_them() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(crate::helpers::fresh_postgres(&url).await),
        _ => None,
    };
    let key1 = "first-secret-key-0123456789abcdef".to_owned();
    let key2 = "second-secret-key-0123456789abcdef".to_owned();
    let llm = LlmDouble::start(Some(KEY), &[MODEL, OTHER_MODEL])
        .await
        .unwrap();
    let spawn = |current: &str, previous: Vec<String>| {
        let (dir, db, current) = (
            dir.path().to_path_buf(),
            database_url.clone(),
            current.to_owned(),
        );
        TestApp::spawn_with(move |c| {
            c.data_dir = dir;
            c.database_url = db;
            c.secret_key = Some(current);
            c.secret_key_previous = previous;
        })
    };
    let provider = |name: &str, model: &str, is_default: bool| -> Value {
        json!({"name": name, "base_url": format!("{}/", llm.base_url), "api_keys": [KEY],
            "model": model, "is_default": is_default})
    };

    // Sealed under key 1.
    let first = spawn(&key1, vec![]).await;
    let (alice, _) = first.user("alice").await;
    let created = first
        .post_json(
            &alice,
            "/api/llm-provider/create",
            provider("old", MODEL, true),
        )
        .await;
    assert_eq!(created.status(), 200);

    // Rotated: key 2 current, key 1 previous. The old value reads; a new one uses key 2.
    let rotated = spawn(&key2, vec![key1.clone()]).await;
    let alice = rotated.new_client();
    assert_eq!(
        rotated
            .login(&alice, "alice", "alice-Secret-9")
            .await
            .status(),
        200
    );
    default_provider_works(&rotated, &alice, &llm).await;
    let created = rotated
        .post_json(
            &alice,
            "/api/llm-provider/create",
            provider("new", OTHER_MODEL, false),
        )
        .await;
    assert_eq!(created.status(), 200);
    let new_id = envelope(created).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut env = vec![
        ("SAGE_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ("SAGE_SECRET_KEY", key2.clone()),
        ("SAGE_SECRET_KEY_PREVIOUS", key1.clone()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    if let Some(url) = &database_url {
        env.push(("DATABASE_URL", url.clone()));
    }
    let out = reseal(&env);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "resealed 1 of 2 sealed values with the current key"
    );
    let again = reseal(&env);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "resealed 0 of 2 sealed values with the current key"
    );

    // Key 1 dropped: everything still reads.
    let after = spawn(&key2, vec![]).await;
    let alice = after.new_client();
    assert_eq!(
        after
            .login(&alice, "alice", "alice-Secret-9")
            .await
            .status(),
        200
    );
    default_provider_works(&after, &alice, &llm).await;
    // The stored key of the new provider opens too (an update with no key probes with it).
    let updated = alice
        .put(after.url(&format!("/api/llm-provider/update/{new_id}")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    // Without the key that sealed them, values are reported, not silently lost.
    env[1] = (
        "SAGE_SECRET_KEY",
        "third-secret-key-0123456789abcdef".to_owned(),
    );
    env.remove(2);
    let lost = reseal(&env);
    assert_eq!(lost.status.code(), Some(1), "{lost:?}");
    assert!(String::from_utf8_lossy(&lost.stderr).contains("2 sealed values"));
}
