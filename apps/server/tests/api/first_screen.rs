//! The web UI's first screen, with the exact requests Sage's web UI sends: after the first
//! login it opens a set-up dialog that cannot be closed until a provider is saved, then it
//! creates its default `fibre` agent. Empty form fields arrive as `0`, `null` or `""`.

use llm_double::LlmDouble;
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

const KEY: &str = "sk-first-screen-0123456789";
const MODEL: &str = "deepseek-chat";

/// The dialog's provider payload: `max_tokens` is `Number(null)` (the field starts empty),
/// the other numbers are the dialog's defaults.
fn dialog_payload(llm: &LlmDouble) -> Value {
    json!({
        "name": "DeepSeek",
        "base_url": llm.base_url,
        "api_keys": [KEY],
        "model": MODEL,
        "max_tokens": 0,
        "temperature": 0.7,
        "top_p": 0.95,
        "presence_penalty": 0,
        "max_model_len": 64000,
    })
}

async fn session(app: &TestApp, client: &reqwest::Client) -> Value {
    envelope(
        client
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await["data"]
        .clone()
}

#[tokio::test]
async fn a_new_user_gets_past_the_set_up_dialog_and_gets_the_default_agent() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(Some(KEY), &[MODEL]).await.unwrap();
    let (alice, alice_id) = app.user("alice").await;
    let before = session(&app, &alice).await;
    assert_eq!(before["has_provider"], false, "the dialog opens");
    assert_eq!(before["has_agent"], false);

    // "Verify" in the dialog.
    let verified = app
        .post_json(
            &alice,
            "/api/llm-provider/verify-capabilities",
            dialog_payload(&llm),
        )
        .await;
    assert_eq!(verified.status(), 200);
    assert_eq!(
        envelope(verified).await["data"]["connection"]["supported"],
        true
    );
    let verified = app
        .post_json(&alice, "/api/llm-provider/verify", dialog_payload(&llm))
        .await;
    assert_eq!(verified.status(), 200);

    // "Save": the same payload with is_default.
    let mut save = dialog_payload(&llm);
    save["is_default"] = json!(true);
    let created = app
        .post_json(&alice, "/api/llm-provider/create", save)
        .await;
    assert_eq!(created.status(), 200);
    let created = envelope(created).await;
    let provider_id = created["data"]["provider_id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["data"]["id"], provider_id,
        "the dialog reads `id` to link its agent"
    );
    let providers = envelope(
        alice
            .get(app.url("/api/llm-provider/list"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let stored = &providers["data"][0];
    assert!(
        stored["max_tokens"].is_null(),
        "0 is stored as not set: {stored}"
    );
    assert_eq!(stored["max_model_len"], 64000);
    assert_eq!(stored["presence_penalty"], 0.0);
    assert_eq!(stored["is_default"], true);
    let probe = llm.chat_requests().last().cloned().unwrap();
    assert_eq!(probe["max_tokens"], 5, "the probe's own small limit");
    assert_eq!(
        session(&app, &alice).await["has_provider"],
        true,
        "the dialog closes"
    );

    // The dialog then asks for the default prompt and creates Zavix.
    let prompt = envelope(
        alice
            .get(app.url("/api/agent/template/default_system_prompt"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let system_prefix = prompt["data"]["content"].as_str().unwrap().to_owned();
    assert!(!system_prefix.is_empty());
    let agent = json!({
        "name": "Zavix",
        "description": "默认智能体",
        "maxLoopCount": 100,
        "memoryType": "session",
        "agentMode": "fibre",
        "availableTools": [
            "todo_write", "todo_read", "execute_shell_command", "execute_python_code",
            "execute_javascript_code", "file_read", "file_write", "download_file_from_url",
            "file_update", "load_skill", "add_task", "delete_task", "complete_task",
            "enable_task", "get_task_details", "fetch_webpages"
        ],
        "availableSkills": [],
        "systemPrefix": system_prefix,
        "llm_provider_id": provider_id,
    });
    let made = app.post_json(&alice, "/api/agent/create", agent).await;
    assert_eq!(made.status(), 200);
    let agent_id = envelope(made).await["data"]["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let list = envelope(alice.get(app.url("/api/agent/list")).send().await.unwrap()).await;
    let agents = list["data"].as_array().unwrap();
    assert_eq!(agents.len(), 1);
    let zavix = &agents[0];
    assert_eq!(zavix["id"], agent_id);
    assert_eq!(zavix["name"], "Zavix");
    assert_eq!(zavix["agentMode"], "fibre");
    assert_eq!(zavix["maxLoopCount"], 100);
    assert_eq!(zavix["llm_provider_id"], provider_id);
    assert_eq!(zavix["user_id"], alice_id);
    let tools: Vec<&str> = zavix["availableTools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tools.contains(&"file_read") && tools.contains(&"sys_delegate_task"),
        "{tools:?}"
    );
    let after = session(&app, &alice).await;
    assert_eq!(after["has_provider"], true);
    assert_eq!(after["has_agent"], true);
}

#[tokio::test]
async fn empty_optional_numbers_are_unset_on_every_provider_route() {
    let app = TestApp::spawn().await;
    let llm = LlmDouble::start(Some(KEY), &[MODEL]).await.unwrap();
    let (alice, _) = app.user("alice").await;
    for empty in [json!(0), json!(null), json!("")] {
        let mut body = dialog_payload(&llm);
        body["max_tokens"] = empty.clone();
        body["max_model_len"] = empty.clone();
        body["temperature"] = if empty == json!(0) {
            json!(0)
        } else {
            empty.clone()
        };
        body["top_p"] = empty.clone();
        body["presence_penalty"] = empty.clone();
        for route in [
            "/api/llm-provider/verify",
            "/api/llm-provider/verify-capabilities",
            "/api/llm-provider/verify-multimodal",
        ] {
            let answer = app.post_json(&alice, route, body.clone()).await;
            assert_eq!(answer.status(), 200, "{route} with {empty}");
        }
    }
    let mut body = dialog_payload(&llm);
    body["max_tokens"] = json!("4096");
    body["temperature"] = json!("");
    let created = envelope(
        app.post_json(&alice, "/api/llm-provider/create", body)
            .await,
    )
    .await;
    let id = created["data"]["provider_id"].as_str().unwrap().to_owned();
    let listed = envelope(
        alice
            .get(app.url("/api/llm-provider/list"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        listed["data"][0]["max_tokens"], 4096,
        "a numeric string is a number"
    );
    assert!(listed["data"][0]["temperature"].is_null());

    // In an update, an empty spelling clears, absence keeps.
    let updated = envelope(
        alice
            .put(app.url(&format!("/api/llm-provider/update/{id}")))
            .json(&json!({"max_tokens": 0, "top_p": "", "max_model_len": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(updated["data"]["max_tokens"].is_null(), "{updated}");
    assert!(updated["data"]["top_p"].is_null());
    assert!(updated["data"]["max_model_len"].is_null());
    assert_eq!(
        updated["data"]["presence_penalty"], 0.0,
        "absent fields are kept"
    );
    let stored = envelope(
        alice
            .post(app.url(&format!("/api/llm-provider/verify-capabilities/{id}")))
            .json(&json!({"max_tokens": 0, "temperature": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(stored["data"]["connection"]["supported"], true);

    // Values that are not numbers at all still name the field.
    let mut bad = dialog_payload(&llm);
    bad["max_tokens"] = json!("lots");
    let refused = app.post_json(&alice, "/api/llm-provider/verify", bad).await;
    assert_eq!(refused.status(), 422);
    let refused = envelope(refused).await;
    assert!(refused.to_string().contains("max_tokens"), "{refused}");
    let mut negative = dialog_payload(&llm);
    negative["max_tokens"] = json!(-1);
    let refused = app
        .post_json(&alice, "/api/llm-provider/verify", negative)
        .await;
    assert_eq!(refused.status(), 422);
}

#[tokio::test]
async fn agent_forms_accept_what_the_web_ui_sends_for_empty_fields() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let made = app
        .post_json(
            &alice,
            "/api/agent/create",
            json!({
                "name": "Forms",
                "maxLoopCount": 25,
                "deepThinking": null,
                "enableMultimodal": null,
                "llm_provider_id": null,
                "description": "",
                "systemContext": {},
                "availableWorkflows": {},
                "availableTools": [],
            }),
        )
        .await;
    let made = envelope(made).await;
    assert_eq!(made["code"], 200, "{made}");
    let id = made["data"]["agent_id"].as_str().unwrap().to_owned();
    let agent = envelope(
        alice
            .get(app.url(&format!("/api/agent/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(agent["data"]["maxLoopCount"], 25);
    assert_eq!(agent["data"]["deepThinking"], false, "null is the default");
    let zero = app
        .post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Zero", "maxLoopCount": 0}),
        )
        .await;
    assert_eq!(zero.status(), 422, "a loop count of at least 1 is required");
}
