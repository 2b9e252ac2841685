//! `/api/llm-provider/*` against the scripted OpenAI-compatible server on loopback.

use llm_double::{LlmDouble, Reply};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

const KEY: &str = "sk-test-key-1234567890";
const MODEL: &str = "gpt-test";

async fn double() -> LlmDouble {
    LlmDouble::start(Some(KEY), &[MODEL]).await.unwrap()
}

fn provider(double: &LlmDouble) -> Value {
    json!({
        "base_url": format!("{}/", double.base_url),
        "api_keys": [KEY],
        "model": MODEL,
        "max_tokens": 4096,
        "temperature": 0.7,
        "top_p": 1,
        "presence_penalty": 0,
        "max_model_len": 128000,
        "supports_multimodal": true,
    })
}

async fn list(app: &TestApp, client: &reqwest::Client) -> Vec<Value> {
    envelope(
        client
            .get(app.url("/api/llm-provider/list"))
            .send()
            .await
            .unwrap(),
    )
    .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn create(app: &TestApp, client: &reqwest::Client, body: Value) -> reqwest::Response {
    app.post_json(client, "/api/llm-provider/create", body)
        .await
}

#[tokio::test]
async fn a_created_provider_is_listed_with_its_key_masked() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, alice_id) = app.user("alice").await;
    let response = create(&app, &alice, provider(&llm)).await;
    let body = envelope(response).await;
    let id = body["data"]["provider_id"].as_str().unwrap().to_owned();
    assert_eq!(llm.chat_requests().len(), 1, "probed before saving");
    assert_eq!(llm.chat_requests()[0]["max_tokens"], 5);

    let raw = alice
        .get(app.url("/api/llm-provider/list"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains(KEY), "the key never leaves in clear");
    let providers = list(&app, &alice).await;
    assert_eq!(providers.len(), 1);
    let p = &providers[0];
    assert_eq!(p["id"], id);
    assert_eq!(p["api_keys"], json!(["sk***90"]));
    assert_eq!(p["base_url"], llm.base_url, "trailing slash removed");
    assert_eq!(p["model"], MODEL);
    assert_eq!(p["name"], format!("{MODEL}@127.0.0.1"));
    assert_eq!(p["max_tokens"], 4096);
    assert_eq!(p["max_model_len"], 128000);
    assert_eq!(p["supports_multimodal"], true);
    assert_eq!(p["is_default"], false);
    assert_eq!(p["user_id"], alice_id);

    let again = envelope(create(&app, &alice, provider(&llm)).await).await;
    assert_eq!(
        again["data"]["provider_id"], id,
        "the same provider is not saved twice"
    );
    assert_eq!(llm.chat_requests().len(), 1, "nor probed again");

    let session = envelope(
        alice
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(session["data"]["has_provider"], true);
}

#[tokio::test]
async fn a_provider_that_does_not_answer_is_refused_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;

    let mut wrong_key = provider(&llm);
    wrong_key["api_keys"] = json!(["sk-wrong-key-000000"]);
    let r = create(&app, &alice, wrong_key).await;
    assert_eq!(r.status(), 422);
    let body = envelope(r).await;
    assert_eq!(body["error_code"], "provider.rejected");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key"),
        "{body}"
    );

    let mut no_model = provider(&llm);
    no_model["model"] = json!("gpt-missing");
    let r = create(&app, &alice, no_model).await;
    assert_eq!(r.status(), 422);
    assert!(
        envelope(r).await["message"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );

    llm.push(Reply::Html);
    let r = create(&app, &alice, provider(&llm)).await;
    assert_eq!(r.status(), 502);
    assert_eq!(envelope(r).await["error_code"], "provider.probe_failed");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable = provider(&llm);
    unreachable["base_url"] = json!(format!("http://127.0.0.1:{closed}/v1"));
    let r = create(&app, &alice, unreachable).await;
    assert_eq!(r.status(), 502);
    let message = envelope(r).await["message"].as_str().unwrap().to_owned();
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        message.contains("refused the connection") && !message.contains("os error"),
        "a classified text, not the operating system's: {message}"
    );

    assert!(list(&app, &alice).await.is_empty(), "nothing was saved");
}

#[tokio::test]
async fn private_addresses_need_the_deployment_allowance() {
    let app = TestApp::spawn_with(|c| c.outbound_allow = Vec::new()).await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let r = create(&app, &alice, provider(&llm)).await;
    assert_eq!(r.status(), 422);
    let body = envelope(r).await;
    assert_eq!(body["error_code"], "provider.address_forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("loopback"),
        "{body}"
    );
    assert!(llm.chat_requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let cases = [
        ("api_keys", json!([])),
        ("api_keys", json!(["a", "b"])),
        ("api_keys", json!(["sk-one\nsk-two"])),
        ("api_keys", json!(["   "])),
        ("temperature", json!(5)),
        ("base_url", json!("ftp://example.com")),
        ("model", json!("")),
    ];
    for (field, value) in cases {
        let mut body = provider(&llm);
        body[field] = value.clone();
        let r = create(&app, &alice, body).await;
        assert_eq!(r.status(), 422, "{field} = {value}");
        assert_eq!(
            envelope(r).await["error_detail"][0]["field"],
            field,
            "{field} = {value}"
        );
    }
    let mut missing = provider(&llm);
    missing.as_object_mut().unwrap().remove("model");
    let r = create(&app, &alice, missing).await;
    assert_eq!(r.status(), 422);
    assert_eq!(envelope(r).await["error_detail"][0]["field"], "model");
    assert!(llm.chat_requests().is_empty());
}

#[tokio::test]
async fn only_the_owner_sees_or_changes_a_provider() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let id = envelope(create(&app, &alice, provider(&llm)).await).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(list(&app, &bob).await.is_empty());
    let update = bob
        .put(app.url(&format!("/api/llm-provider/update/{id}")))
        .json(&json!({"name": "stolen"}))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 404);
    let delete = bob
        .delete(app.url(&format!("/api/llm-provider/delete/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    let probe = bob
        .post(app.url(&format!("/api/llm-provider/verify-capabilities/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 404);
    let admin = app.admin().await;
    assert!(
        list(&app, &admin).await.is_empty(),
        "admins do not see users' keys either"
    );
    assert_eq!(
        list(&app, &alice).await[0]["name"],
        format!("{MODEL}@127.0.0.1"),
        "unchanged"
    );
}

#[tokio::test]
async fn one_default_per_user_and_the_default_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let mut first = provider(&llm);
    first["is_default"] = json!(true);
    let first_id = envelope(create(&app, &alice, first).await).await["data"]["provider_id"].clone();
    // A second server makes it a distinct provider.
    let llm2 = double().await;
    let mut second = provider(&llm2);
    second["is_default"] = json!(true);
    second["name"] = json!("second");
    let second_id =
        envelope(create(&app, &alice, second).await).await["data"]["provider_id"].clone();
    let providers = list(&app, &alice).await;
    let default_of =
        |id: &Value| providers.iter().find(|p| &p["id"] == id).unwrap()["is_default"].clone();
    assert_eq!(default_of(&second_id), true);
    assert_eq!(
        default_of(&first_id),
        false,
        "the older default was cleared"
    );

    let refused = alice
        .delete(app.url(&format!(
            "/api/llm-provider/delete/{}",
            second_id.as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(
        envelope(refused).await["error_code"],
        "provider.default_in_use"
    );

    let switched = alice
        .put(app.url(&format!(
            "/api/llm-provider/update/{}",
            first_id.as_str().unwrap()
        )))
        .json(&json!({"is_default": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(switched).await["data"]["is_default"], true);
    let deleted = alice
        .delete(app.url(&format!(
            "/api/llm-provider/delete/{}",
            second_id.as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(deleted).await["data"]["deleted"], true);
    assert_eq!(list(&app, &alice).await.len(), 1);
}

#[tokio::test]
async fn the_masked_key_sent_back_by_the_edit_form_keeps_the_stored_key() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let id = envelope(create(&app, &alice, provider(&llm)).await).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = list(&app, &alice).await[0]["api_keys"].clone();
    assert_ne!(shown, json!([KEY]), "the list masks the key");
    let mut form = list(&app, &alice).await[0].clone();
    form["name"] = json!("edited");
    let saved = alice
        .put(app.url(&format!("/api/llm-provider/update/{id}")))
        .json(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        saved.status(),
        200,
        "the stored key still answers the probe"
    );
    assert_eq!(
        list(&app, &alice).await[0]["api_keys"],
        shown,
        "key unchanged"
    );
    let other_host = alice
        .put(app.url(&format!("/api/llm-provider/update/{id}")))
        .json(&json!({"api_keys": shown, "base_url": "http://127.0.0.2:9/v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_host.status(),
        422,
        "a mask is no key for another host"
    );
}

#[tokio::test]
async fn updates_probe_first_and_null_clears_optional_numbers() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let id = envelope(create(&app, &alice, provider(&llm)).await).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = app.url(&format!("/api/llm-provider/update/{id}"));
    let updated = envelope(
        alice
            .put(&url)
            .json(&json!({"name": "renamed", "max_tokens": null, "temperature": 0.2}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(updated["data"]["name"], "renamed");
    assert!(updated["data"]["max_tokens"].is_null());
    assert_eq!(updated["data"]["temperature"], 0.2);
    assert_eq!(
        updated["data"]["max_model_len"], 128000,
        "absent fields are kept"
    );
    assert_eq!(
        llm.chat_requests()[1]["model"],
        MODEL,
        "the stored key was used to probe"
    );

    let bad = alice
        .put(&url)
        .json(&json!({"api_keys": ["sk-wrong-wrong-wrong"], "name": "broken"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(
        list(&app, &alice).await[0]["name"],
        "renamed",
        "a refused update loses nothing"
    );
    let unknown = alice
        .put(app.url("/api/llm-provider/update/does-not-exist"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn verification_reports_each_capability() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;

    let ok = envelope(
        app.post_json(&alice, "/api/llm-provider/verify", provider(&llm))
            .await,
    )
    .await;
    assert_eq!(ok["data"]["supported"], true);
    let mut wrong = provider(&llm);
    wrong["api_keys"] = json!(["sk-nope-nope-nope"]);
    assert_eq!(
        app.post_json(&alice, "/api/llm-provider/verify", wrong)
            .await
            .status(),
        422
    );

    llm.push(Reply::text(&["Hi!"]));
    llm.push(Reply::text(&["Red"]));
    llm.push(Reply::text(&["{\"ok\": true}"]));
    let caps = envelope(
        app.post_json(
            &alice,
            "/api/llm-provider/verify-capabilities",
            provider(&llm),
        )
        .await,
    )
    .await;
    let d = &caps["data"];
    assert_eq!(d["connection"]["supported"], true);
    assert_eq!(d["supports_multimodal"], true);
    assert_eq!(d["supports_structured_output"], true);
    assert_eq!(d["model"], MODEL);
    let requests = llm.chat_requests();
    let image = &requests[requests.len() - 2]["messages"][0]["content"][1];
    assert!(
        image["image_url"]["url"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(
        requests[requests.len() - 1]["response_format"]["type"],
        "json_object"
    );

    llm.push(Reply::text(&["Hi!"]));
    llm.push(Reply::error(
        400,
        "image input is not supported by this model",
    ));
    llm.push(Reply::text(&["not json"]));
    let caps = envelope(
        app.post_json(
            &alice,
            "/api/llm-provider/verify-capabilities",
            provider(&llm),
        )
        .await,
    )
    .await;
    assert_eq!(caps["data"]["supports_multimodal"], false);
    assert!(
        caps["data"]["multimodal"]["response"]
            .as_str()
            .unwrap()
            .contains("not supported")
    );
    assert_eq!(caps["data"]["supports_structured_output"], false);

    llm.push(Reply::text(&["It is red."]));
    let mm = envelope(
        app.post_json(
            &alice,
            "/api/llm-provider/verify-multimodal",
            provider(&llm),
        )
        .await,
    )
    .await;
    assert_eq!(mm["data"]["supports_multimodal"], true);
    assert_eq!(mm["data"]["recognized"], true);
}

#[tokio::test]
async fn stored_providers_are_verified_with_their_stored_key() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    let id = envelope(create(&app, &alice, provider(&llm)).await).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let caps = envelope(
        alice
            .post(app.url(&format!("/api/llm-provider/verify-capabilities/{id}")))
            .json(&json!({"model": MODEL}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(caps["data"]["connection"]["supported"], true);
    let empty = alice
        .post(app.url(&format!("/api/llm-provider/verify-capabilities/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 200, "the web UI may send no body");
}

#[tokio::test]
async fn the_deployment_default_is_usable_by_all_and_editable_by_none() {
    let llm = double().await;
    let base = llm.base_url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.default_llm = Some(platform::config::ModelEndpoint {
            base_url: base,
            api_key: Some(KEY.into()),
            model: MODEL.into(),
        });
    })
    .await;
    let (alice, _) = app.user("alice").await;
    let session = envelope(
        alice
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(session["data"]["has_provider"], true);
    let edit = alice
        .put(app.url("/api/llm-provider/update/system-default"))
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edit.status(), 403);
    assert_eq!(
        envelope(edit).await["error_code"],
        "provider.system_readonly"
    );
    let delete = alice
        .delete(app.url("/api/llm-provider/delete/system-default"))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 403);
}

#[tokio::test]
async fn a_stored_key_is_never_sent_to_another_host() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let elsewhere = LlmDouble::start(None, &[]).await.unwrap();
    let (alice, _) = app.user("alice").await;
    let id = envelope(create(&app, &alice, provider(&llm)).await).await["data"]["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = app.url(&format!("/api/llm-provider/verify-capabilities/{id}"));
    let update = app.url(&format!("/api/llm-provider/update/{id}"));
    for request in [
        alice
            .post(&verify)
            .json(&json!({"base_url": elsewhere.base_url})),
        alice
            .put(&update)
            .json(&json!({"base_url": elsewhere.base_url, "api_keys": []})),
        alice
            .put(&update)
            .json(&json!({"base_url": elsewhere.base_url.replace("http:", "https:")})),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 422);
        let body = envelope(response).await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("enter the API key again"),
            "{body}"
        );
    }
    assert!(
        elsewhere.requests().is_empty(),
        "nothing reached the other host"
    );
    assert_eq!(list(&app, &alice).await[0]["base_url"], llm.base_url);

    // The same host with another path keeps the stored key; a new host with a new key works.
    let same_host = alice
        .post(&verify)
        .json(&json!({"base_url": format!("{}/", llm.base_url)}))
        .send()
        .await
        .unwrap();
    assert_eq!(same_host.status(), 200);
    let moved = alice
        .put(&update)
        .json(&json!({"base_url": elsewhere.base_url, "api_keys": ["sk-elsewhere"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    assert_eq!(elsewhere.chat_requests().len(), 1);
}

#[tokio::test]
async fn an_oversized_answer_is_a_clear_502_and_the_server_carries_on() {
    let app = TestApp::spawn().await;
    let llm = double().await;
    let (alice, _) = app.user("alice").await;
    // Past the 16 MiB cap on a JSON answer; the rest of the body is never read.
    llm.push(Reply::Huge {
        bytes: 40 * 1024 * 1024,
        status: 200,
    });
    let response = create(&app, &alice, provider(&llm)).await;
    assert_eq!(response.status(), 502);
    let body = envelope(response).await;
    assert_eq!(body["error_code"], "provider.probe_failed");
    assert!(
        body["message"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    assert!(list(&app, &alice).await.is_empty());
    let ok = create(&app, &alice, provider(&llm)).await;
    assert_eq!(ok.status(), 200);
}

const NETNS_PROXY_URL: &str = "http://127.0.0.1:3128";
const NETNS_TEST: &str =
    "providers::special_addresses_are_refused_inside_a_private_network_namespace";

/// How to run a command in a new network namespace with only loopback, if this machine lets us.
fn netns_prefix() -> Option<Vec<&'static str>> {
    let script = "ip link set lo up && exec \"$0\" \"$@\"";
    [vec!["unshare", "-n"], vec!["unshare", "-rn"]]
        .into_iter()
        .map(|mut args| {
            args.extend(["--", "sh", "-c", script]);
            args
        })
        .find(|args| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .arg("true")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Runs itself again inside a network namespace where only loopback exists, so that even a
/// regression of the guard cannot send a packet off this machine; there, every address of
/// the review is refused before a connection, and proxies from the environment are not used.
#[tokio::test]
async fn special_addresses_are_refused_inside_a_private_network_namespace() {
    if std::env::var_os("SAGE_TEST_IN_NETNS").is_none() {
        let Some(prefix) = netns_prefix() else {
            eprintln!("SKIPPED: this machine does not allow `unshare -n` with `ip`");
            return;
        };
        let output = std::process::Command::new(prefix[0])
            .args(&prefix[1..])
            .arg(std::env::current_exe().unwrap())
            .args([NETNS_TEST, "--exact", "--nocapture"])
            .env("SAGE_TEST_IN_NETNS", "1")
            .envs(
                [
                    "HTTP_PROXY",
                    "HTTPS_PROXY",
                    "ALL_PROXY",
                    "http_proxy",
                    "https_proxy",
                ]
                .map(|var| (var, NETNS_PROXY_URL)),
            )
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .env_remove("TEST_DATABASE_URL")
            .env_remove("TEST_REDIS_URL")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    // Inside the namespace (every port free): the environment's proxy, counting connections.
    let proxy = tokio::net::TcpListener::bind(NETNS_PROXY_URL.trim_start_matches("http://"))
        .await
        .unwrap();
    let proxied = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = proxied.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = proxy.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });

    let app = TestApp::spawn_with(|c| c.outbound_allow = Vec::new()).await;
    let (alice, _) = app.user("alice").await;
    for base_url in [
        "http://198.18.0.1/v1",
        "http://198.19.255.1/v1",
        "http://192.0.0.8/v1",
        "http://[64:ff9b:1::a00:1]/v1",
        "http://[64:ff9b::a9fe:a9fe]/v1",
        "http://[2002:a00:1::1]/v1",
        "http://[::10.0.0.1]/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://169.254.169.254/v1",
        "http://[fec0::1]/v1",
    ] {
        let response = create(
            &app,
            &alice,
            json!({"base_url": base_url, "api_keys": [KEY], "model": MODEL}),
        )
        .await;
        let status = response.status();
        let body = envelope(response).await;
        assert_eq!(status, 422, "{base_url}: {body}");
        assert_eq!(
            body["error_code"], "provider.address_forbidden",
            "{base_url}"
        );
    }

    // With loopback allowed, a model on `localhost` is called directly, not through the proxy.
    let open = TestApp::spawn().await;
    let llm = double().await;
    let (bob, _) = open.user("bob").await;
    let mut body = provider(&llm);
    body["base_url"] = json!(llm.base_url.replace("127.0.0.1", "localhost"));
    let created = create(&open, &bob, body).await;
    assert_eq!(created.status(), 200);
    assert_eq!(llm.chat_requests().len(), 1);
    assert_eq!(proxied.load(std::sync::atomic::Ordering::SeqCst), 0);
}
