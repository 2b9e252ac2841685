//! No existence leaks, structurally: every operation of the OpenAPI document that takes an id
//! (in the path, the query or the JSON body) is called by user B once with user A's resource
//! and once with a random id of the same shape, and both answers must be identical (status,
//! `error_code`, `message`). The operations come from `/openapi.json`, so routes added later
//! join the walk by themselves; the only table here says how to create a resource of each id
//! kind. An id parameter of an unknown kind fails the test until the table learns it.

use llm_double::{LlmDouble, Reply};
use serde_json::{Map, Value, json};

use crate::helpers::{TestApp, envelope};

/// Id kinds the walk can create a resource for.
const KINDS: &[&str] = &[
    "agent_id",
    "task_id",
    "provider_id",
    "user_id",
    "session_id",
    "planner_task_id",
    "recurring_task_id",
    "kdb_id",
    "doc_id",
    "kdb_task_id",
];

/// The kind of an id parameter: its name, except that the planner's `/tasks/*` routes name
/// their own task ids `task_id` too (as Sage does), which are not the agent jobs' ones.
fn kind_of(path: &str, name: &str) -> String {
    match (name, path) {
        ("task_id", p)
            if p.starts_with("/tasks/recurring/")
                || p.starts_with("/tasks/internal/recurring/") =>
        {
            "recurring_task_id".to_owned()
        }
        ("task_id", p) if p.starts_with("/tasks/") => "planner_task_id".to_owned(),
        ("task_id", p) if p.starts_with("/api/knowledge-base/") => "kdb_task_id".to_owned(),
        // The web UI's name for a document id.
        ("data_id", p) if p.starts_with("/api/knowledge-base/") => "doc_id".to_owned(),
        _ => name.to_owned(),
    }
}

/// Ids of features not built yet, references stored inside a document (an agent's provider),
/// ids scoped inside another resource (a queued guidance message exists only inside its
/// session's live run, so it is varied through its session), and names in the caller's own
/// space (a questionnaire id names the caller's own questionnaire, never another user's):
/// always the same random value.
const NOT_YET: &[&str] = &[
    "llm_provider_id",
    "fast_llm_provider_id",
    "guidance_id",
    "questionnaire_id",
];

/// Operations where an unknown id of the client's choosing creates the resource (a chat with
/// a new `session_id` starts a conversation), so a random id is not "missing". Another user's
/// session there is refused with 404 (tested in `chat.rs`).
const CREATES_ON_UNKNOWN: &[(&str, &str, &str)] = &[
    ("POST", "/api/web-stream", "session_id"),
    ("POST", "/api/stream", "session_id"),
    ("POST", "/api/chat", "session_id"),
];

/// Paths whose ids are not per-user resources (the deployment's login providers and OAuth2
/// clients).
const NOT_RESOURCES: &[&str] = &["/api/auth/upstream/", "/api/user/oauth/", "/oauth2/"];

const KEY: &str = "sk-walk-key-1234567890";
const MODEL: &str = "walk-model";

/// One user's resource of each kind.
struct Owned {
    ids: std::collections::BTreeMap<&'static str, String>,
}

impl Owned {
    fn get(&self, kind: &str) -> String {
        self.ids[kind].clone()
    }
}

async fn data(response: reqwest::Response, what: &str) -> Value {
    assert_eq!(response.status(), 200, "creating {what}");
    envelope(response).await["data"].clone()
}

async fn create_all(
    app: &TestApp,
    client: &reqwest::Client,
    user_id: &str,
    llm: &LlmDouble,
) -> Owned {
    let agent = data(
        app.post_json(
            client,
            "/api/agent/create",
            json!({"name": format!("agent of {user_id}"), "maxLoopCount": 3}),
        )
        .await,
        "an agent",
    )
    .await["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let task = data(
        app.post_json(
            client,
            "/api/agent/system-prompt/optimize/submit",
            json!({"original_prompt": "Be brief."}),
        )
        .await,
        "a task",
    )
    .await["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let provider = data(
        app.post_json(
            client,
            "/api/llm-provider/create",
            json!({"base_url": format!("{}/", llm.base_url), "api_keys": [KEY], "model": MODEL,
                   "is_default": true}),
        )
        .await,
        "a provider",
    )
    .await["provider_id"]
        .as_str()
        .unwrap()
        .to_owned();
    llm.push(Reply::text(&["Hello."]));
    let run = app
        .post_json(
            client,
            "/api/web-stream",
            json!({"messages": [{"role": "user", "content": "Hi"}], "agent_id": agent,
                   "max_loop_count": 3}),
        )
        .await;
    assert_eq!(run.status(), 200, "a chat");
    let text = run.text().await.unwrap();
    let session = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|line| line["session_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("a session id in {text}"));
    let planner_task = app
        .post_json(
            client,
            "/tasks/one-time",
            json!({"name": "a task", "agent_id": agent, "execute_at": "2030-01-01T09:00:00Z"}),
        )
        .await;
    assert_eq!(planner_task.status(), 200, "a planner task");
    let planner_task = planner_task.json::<Value>().await.unwrap()["id"].to_string();
    let recurring = app
        .post_json(
            client,
            "/tasks/recurring",
            json!({"name": "a recurring task", "agent_id": agent, "cron_expression": "0 9 * * *"}),
        )
        .await;
    assert_eq!(recurring.status(), 200, "a recurring task");
    let recurring = recurring.json::<Value>().await.unwrap()["id"].to_string();
    let kdb = data(
        app.post_json(
            client,
            "/api/knowledge-base/add",
            json!({"name": format!("notes of {user_id}"), "type": "document"}),
        )
        .await,
        "a knowledge base",
    )
    .await["kdb_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upload = client
        .post(app.url("/api/knowledge-base/doc/add_by_files"))
        .multipart(
            reqwest::multipart::Form::new()
                .text("kdb_id", kdb.clone())
                .part(
                    "files",
                    reqwest::multipart::Part::bytes(&b"Some notes."[..]).file_name("notes.txt"),
                ),
        )
        .send()
        .await
        .unwrap();
    let kdb_task = data(upload, "a document").await["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let docs = data(
        client
            .get(app.url(&format!("/api/knowledge-base/doc/list?kdb_id={kdb}")))
            .send()
            .await
            .unwrap(),
        "a document list",
    )
    .await;
    let doc = docs["list"][0]["id"].as_str().unwrap().to_owned();
    let mut ids = std::collections::BTreeMap::new();
    ids.insert("kdb_id", kdb);
    ids.insert("doc_id", doc);
    ids.insert("kdb_task_id", kdb_task);
    ids.insert("planner_task_id", planner_task);
    ids.insert("recurring_task_id", recurring);
    ids.insert("session_id", session);
    ids.insert("agent_id", agent);
    ids.insert("task_id", task);
    ids.insert("provider_id", provider);
    ids.insert("user_id", user_id.to_owned());
    Owned { ids }
}

/// A random id shaped like `real`: same prefix up to the last `_`, same length (a number
/// for a numeric id, far past any row the test creates).
fn random_like(real: &str) -> String {
    if !real.is_empty() && real.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{}", 1_000_000_000 + rand_number());
    }
    let (prefix, rest) = match real.rfind('_') {
        Some(i) => real.split_at(i + 1),
        None => ("", real),
    };
    let mut random = String::new();
    while random.len() < rest.len() {
        random.push_str(&platform::ids::new_hex_id());
    }
    random.truncate(rest.len());
    format!("{prefix}{random}")
}

fn rand_number() -> u64 {
    u64::from_str_radix(&platform::ids::new_hex_id()[..8], 16).unwrap()
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// A value of the schema's type, for required non-id fields.
fn sample(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    let ty = match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .find(|t| *t != "null")
            .cloned()
            .unwrap_or(Value::Null),
        other => other.clone(),
    };
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match ty.as_str() {
        Some("string") => json!("walk"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => json!({}),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Path,
    Query,
    Body,
}

/// One operation's id parameters and how to fill the rest of a request.
struct Operation {
    method: String,
    path: String,
    ids: Vec<(String, Place)>,
    required_query: Vec<(String, Value)>,
    body: Option<(Map<String, Value>, bool)>,
}

fn is_id(name: &str) -> bool {
    name == "id" || name.ends_with("_id")
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut ids = Vec::new();
            let mut required_query = Vec::new();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap().to_owned();
                let place = match p["in"].as_str() {
                    Some("path") => Place::Path,
                    Some("query") => Place::Query,
                    _ => continue,
                };
                if is_id(&name) {
                    ids.push((name, place));
                } else if place == Place::Path || p["required"] == true {
                    required_query.push((name, sample(doc, &p["schema"])));
                }
            }
            let mut body = None;
            let content = &op["requestBody"]["content"];
            if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
                let schema = resolve(doc, schema);
                let mut fields = Map::new();
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                    if prop["readOnly"] == true {
                        continue;
                    }
                    if is_id(name) {
                        ids.push((name.clone(), Place::Body));
                    } else if required.contains(&name.as_str()) {
                        fields.insert(name.clone(), sample(doc, prop));
                    }
                }
                body = Some((fields, true));
            } else if content.is_object() {
                body = Some((Map::new(), false));
            }
            if !ids.is_empty() && !NOT_RESOURCES.iter().any(|p| path.starts_with(p)) {
                out.push(Operation {
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    ids,
                    required_query,
                    body,
                });
            }
        }
    }
    out
}

/// Calls `op` as `client` with the given id values; returns (status, error_code, message).
async fn call(
    app: &TestApp,
    client: &reqwest::Client,
    op: &Operation,
    values: &[(String, String)],
) -> (u16, Value, Value) {
    let value_of = |name: &str| {
        values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let mut path = op.path.clone();
    let mut query: Vec<(String, String)> = Vec::new();
    for (name, sample) in &op.required_query {
        let text = match sample {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if path.contains(&format!("{{{name}}}")) {
            path = path.replace(&format!("{{{name}}}"), &text);
        } else {
            query.push((name.clone(), text));
        }
    }
    let mut body = op.body.clone();
    for (name, place) in &op.ids {
        let v = value_of(name);
        match place {
            Place::Path => path = path.replace(&format!("{{{name}}}"), &v),
            Place::Query => query.push((name.clone(), v)),
            Place::Body => {
                if let Some((fields, _)) = body.as_mut() {
                    fields.insert(name.clone(), json!(v));
                }
            }
        }
    }
    let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
    let mut url = app.url(&path);
    if !query.is_empty() {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        url = format!("{url}?{encoded}");
    }
    let mut request = client.request(method, url);
    if let Some((fields, true)) = body {
        request = request.json(&Value::Object(fields));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body.get("error_code")
            .cloned()
            .unwrap_or_else(|| body["code"].clone()),
        body.get("message")
            .cloned()
            .unwrap_or_else(|| body["detail"].clone()),
    )
}

#[tokio::test]
async fn foreign_ids_answer_exactly_like_random_ones_on_every_route() {
    // The walk makes many model-calling requests; the per-user bucket is not under test.
    let app = TestApp::spawn_with(|c| c.model_calls_per_minute = 0).await;
    let llm = LlmDouble::start(Some(KEY), &[MODEL]).await.unwrap();
    let (alice, alice_id) = app.user("alice").await;
    let (bob, bob_id) = app.user("bob").await;
    let a = create_all(&app, &alice, &alice_id, &llm).await;
    let b = create_all(&app, &bob, &bob_id, &llm).await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();

    let ops = operations(&doc);
    assert!(
        ops.len() >= 15,
        "the walk found only {} operations taking ids",
        ops.len()
    );
    let mut unknown = Vec::new();
    let mut failures = Vec::new();
    let mut compared = 0;
    for op in &ops {
        for (name, _) in &op.ids {
            let kind = kind_of(&op.path, name);
            if !KINDS.contains(&kind.as_str()) && !NOT_YET.contains(&kind.as_str()) {
                unknown.push(format!("{} {}: `{name}`", op.method, op.path));
            }
        }
        let varied_ids = op.ids.iter().filter(|(n, _)| {
            KINDS.contains(&kind_of(&op.path, n).as_str())
                && !CREATES_ON_UNKNOWN.contains(&(op.method.as_str(), op.path.as_str(), n.as_str()))
        });
        for (varied, _) in varied_ids {
            // The other ids are Bob's own (his request is otherwise valid), then Alice's.
            for others in [&b, &a] {
                let fill = |foreign: Option<String>| -> Vec<(String, String)> {
                    op.ids
                        .iter()
                        .map(|(n, _)| {
                            let kind = kind_of(&op.path, n);
                            let v = if n == varied {
                                foreign
                                    .clone()
                                    .unwrap_or_else(|| random_like(&a.get(&kind)))
                            } else if KINDS.contains(&kind.as_str()) {
                                others.get(&kind)
                            } else {
                                "sess_walk0000".to_owned()
                            };
                            (n.clone(), v)
                        })
                        .collect()
                };
                let foreign = call(
                    &app,
                    &bob,
                    op,
                    &fill(Some(a.get(&kind_of(&op.path, varied)))),
                )
                .await;
                let random = call(&app, &bob, op, &fill(None)).await;
                compared += 1;
                let label = format!("{} {} varying `{varied}`", op.method, op.path);
                // 502 is the scripted model's reply being unusable (a route that reaches the
                // model with Bob's own agent), not a server fault; it must still be identical.
                let fault = |status: u16| status >= 500 && status != 502;
                if fault(foreign.0) || fault(random.0) {
                    failures.push(format!("{label}: 5xx {foreign:?} / {random:?}"));
                } else if foreign != random {
                    failures.push(format!(
                        "{label}: A's resource answers {foreign:?}, a random id {random:?}"
                    ));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "id parameters of a kind the walk cannot create (add it to KINDS or NOT_YET):\n{}",
        unknown.join("\n")
    );
    assert!(
        failures.is_empty(),
        "existence leaks:\n{}",
        failures.join("\n")
    );
    println!("existence walk: {compared} (operation, id) pairs compared");
    // Alice's resources survived Bob's attempts.
    for (path, kind) in [
        ("/api/agent/{}", "agent_id"),
        ("/api/agent/tasks/{}", "task_id"),
        ("/tasks/one-time/{}", "planner_task_id"),
        ("/tasks/recurring/{}", "recurring_task_id"),
    ] {
        let r = alice
            .get(app.url(&path.replace("{}", &a.get(kind))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{kind}");
    }
}
