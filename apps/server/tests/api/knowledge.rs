//! Knowledge bases over HTTP: Sage's shapes, the upload → background processing → retrieval
//! round trip, filters and paging, redo, clear and delete, and user B on user A's base.

use std::time::{Duration, Instant};

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = envelope(response).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client.get(app.url(path)).send().await.unwrap()
}

async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    kdb_id: &str,
    files: &[(&str, &'static [u8])],
) -> reqwest::Response {
    let mut form = Form::new()
        .text("kdb_id", kdb_id.to_owned())
        .text("override", "false");
    for (name, bytes) in files {
        form = form.part("files", Part::bytes(*bytes).file_name((*name).to_owned()));
    }
    client
        .post(app.url("/api/knowledge-base/doc/add_by_files"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Creates a knowledge base; its id.
async fn create(app: &TestApp, client: &reqwest::Client, body: Value) -> String {
    ok(app.post_json(client, "/api/knowledge-base/add", body).await).await["kdb_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The task id of a successful upload.
async fn task_of(response: reqwest::Response) -> String {
    ok(response).await["taskId"].as_str().unwrap().to_owned()
}

/// Polls the task's progress until no document is waiting or processing.
async fn settled(app: &TestApp, client: &reqwest::Client, kdb_id: &str, task_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = ok(get(
            app,
            client,
            &format!("/api/knowledge-base/doc/task_process?kdb_id={kdb_id}&task_id={task_id}"),
        )
        .await)
        .await;
        if p["waiting"] == 0 && p["inProgress"] == 0 {
            return p;
        }
        assert!(Instant::now() < deadline, "documents stuck: {p}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const GUIDE: &[u8] = b"# Sign-in guide\n\nUsers sign in with a passkey. \
A one-time code is sent by e-mail when the passkey is lost.\n\n## Billing\n\nInvoices arrive monthly.";
const PAGE: &[u8] = b"<html><head><title>Refunds</title><style>p{}</style></head>\
<body><p>Refunds take &lt;5&gt; working days.</p><script>var x=1;</script></body></html>";

#[tokio::test]
async fn documents_go_from_upload_to_retrieval() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let created = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/add",
            json!({"name": "Help center", "type": "document", "intro": "Support articles", "language": "en", "user_id": "someone-else"}),
        )
        .await)
    .await;
    let kdb = created["kdb_id"].as_str().unwrap().to_owned();
    assert_eq!(kdb.len(), 32);
    assert_eq!(created["user_id"], alice_id.as_str());

    let info = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/info?kdb_id={kdb}"),
    )
    .await)
    .await;
    assert_eq!(info["kdbId"], kdb.as_str());
    assert_eq!(info["type"], "document");
    assert!(info["createdAt"].is_i64());
    assert_eq!(info["kdbSetting"]["kdbAttach"]["language"], "en");

    let task = ok(upload(
        &app,
        &alice,
        &kdb,
        &[
            ("guide.md", GUIDE),
            ("refunds.html", PAGE),
            ("broken.pdf", b"not a pdf"),
        ],
    )
    .await)
    .await;
    let task_id = task["taskId"].as_str().unwrap().to_owned();
    let progress = settled(&app, &alice, &kdb, &task_id).await;
    assert_eq!(progress["total"], 3);
    assert_eq!(progress["success"], 2);
    assert_eq!(progress["fail"], 1);
    assert_eq!(progress["taskProcess"], 66);

    // The failed document says why, and can be filtered by status.
    let failed = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/list?kdb_id={kdb}&query_status=3"),
    )
    .await)
    .await;
    assert_eq!(failed["total"], 1);
    let broken = &failed["list"][0];
    assert_eq!(broken["doc_name"], "broken.pdf");
    assert_eq!(broken["status"], 3);
    assert!(
        broken["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{broken}"
    );
    let both = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/list?kdb_id={kdb}&query_status=2&query_status=3&page_no=1&page_size=2"),
    )
    .await)
    .await;
    assert_eq!(
        (
            both["total"].as_u64(),
            both["list"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );
    let named = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/list?kdb_id={kdb}&query_name=GUIDE"),
    )
    .await)
    .await;
    assert_eq!(named["total"], 1);
    // What the web UI's query builder writes for missing values reads as unset.
    let unset = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/list?kdb_id={kdb}&task_id=undefined&query_status=null"),
    )
    .await)
    .await;
    assert_eq!(unset["total"], 3);
    let guide_id = named["list"][0]["id"].as_str().unwrap().to_owned();
    let doc = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/info/{guide_id}"),
    )
    .await)
    .await;
    assert_eq!(
        (
            doc["dataName"].as_str(),
            doc["type"].as_str(),
            doc["status"].as_i64()
        ),
        (Some("guide.md"), Some("file"), Some(2))
    );
    assert_eq!(doc["taskId"], task_id.as_str());
    // The web UI asks with `kdb_id` and `data_id` in the query.
    let asked = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/info?kdb_id={kdb}&data_id={guide_id}"),
    )
    .await)
    .await;
    assert_eq!(asked["id"], guide_id.as_str());

    // Retrieval finds the passage, in Sage's result shape.
    let found = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "what if I lost my passkey?", "top_k": 0}),
        )
        .await)
    .await;
    let first = &found["results"][0];
    assert_eq!(first["path"], "guide.md");
    assert_eq!(first["doc_id"], guide_id.as_str());
    assert!(
        first["doc_content"]
            .as_str()
            .unwrap()
            .contains("one-time code"),
        "{found}"
    );
    assert!(first["score"].as_f64().unwrap() > 0.0);
    let refunds = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "refunds working days"}),
        )
        .await)
    .await;
    let text = refunds["results"][0]["doc_content"].as_str().unwrap();
    assert!(text.contains("Refunds take <5> working days."), "{text}");
    assert!(!text.contains("var x"), "{text}");

    // The list shows the base with its documents.
    let list = ok(get(
        &app,
        &alice,
        "/api/knowledge-base/list?query_name=help&page_no=1&page_size=50",
    )
    .await)
    .await;
    assert_eq!(list["total"], 1);
    let item = &list["list"][0];
    assert_eq!(
        (item["docNum"].as_u64(), item["dataSource"].as_str()),
        (Some(3), Some("document"))
    );
    assert!(item["index_name"].as_str().unwrap().starts_with("kdb_"));

    // Redo one document: it is processed again and ends where it was.
    ok(alice
        .put(app.url(&format!("/api/knowledge-base/doc/redo/{guide_id}")))
        .send()
        .await
        .unwrap())
    .await;
    let again = settled(&app, &alice, &kdb, &task_id).await;
    assert_eq!(again["success"], 2);

    // Deleting the document takes it out of retrieval.
    ok(alice
        .delete(app.url(&format!("/api/knowledge-base/doc/delete/{guide_id}")))
        .send()
        .await
        .unwrap())
    .await;
    let gone = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "passkey"}),
        )
        .await)
    .await;
    assert_eq!(gone["results"], json!([]));
    let missing = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/info/{guide_id}"),
    )
    .await)
    .await;
    assert_eq!(missing, Value::Null);

    // Clear keeps the base and drops every document.
    ok(app
        .post_json(&alice, "/api/knowledge-base/clear", json!({"kdb_id": kdb}))
        .await)
    .await;
    let empty = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/doc/list?kdb_id={kdb}"),
    )
    .await)
    .await;
    assert_eq!(empty["total"], 0);
    let files = app.data_path().join("objects/knowledge").join(&kdb);
    assert!(!files.exists() || std::fs::read_dir(&files).unwrap().next().is_none());

    // Rename, then delete.
    let updated = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/update",
            json!({"kdb_id": kdb, "name": "Support", "intro": ""}),
        )
        .await)
    .await;
    assert_eq!(updated, json!({"success": true, "user_id": alice_id}));
    let info = ok(get(
        &app,
        &alice,
        &format!("/api/knowledge-base/info?kdb_id={kdb}"),
    )
    .await)
    .await;
    assert_eq!(
        (info["name"].as_str(), info["intro"].as_str()),
        (Some("Support"), Some("Support articles"))
    );
    ok(alice
        .delete(app.url(&format!("/api/knowledge-base/delete/{kdb}")))
        .send()
        .await
        .unwrap())
    .await;
    let after = get(
        &app,
        &alice,
        &format!("/api/knowledge-base/info?kdb_id={kdb}"),
    )
    .await;
    assert_eq!(after.status(), 404);
    assert_eq!(envelope(after).await["error_code"], "kdb.not_found");
}

#[tokio::test]
async fn qa_bases_take_tables_and_bad_input_is_refused() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let kdb = create(&app, &alice, json!({"name": "FAQ", "type": "qa"})).await;
    let refused = upload(&app, &alice, &kdb, &[("notes.md", b"# notes")]).await;
    assert_eq!(refused.status(), 422);
    let one_column = upload(&app, &alice, &kdb, &[("one.csv", b"only\ncolumn\n")]).await;
    assert_eq!(one_column.status(), 422);
    let task = task_of(upload(
        &app,
        &alice,
        &kdb,
        &[("faq.csv", b"question,answer\nHow do I reset my password?,Use the reset link on the login page\nWhere are invoices?,Under Billing\n")],
    ).await).await;
    assert_eq!(settled(&app, &alice, &kdb, &task).await["success"], 1);
    let found = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "reset password", "top_k": 1}),
        )
        .await)
    .await;
    let results = found["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["title"], "How do I reset my password?");
    assert!(
        results[0]["doc_content"]
            .as_str()
            .unwrap()
            .contains("reset link")
    );

    // Unsupported types, an empty query, a bad top_k or status, and missing ids are 422.
    let exe = upload(&app, &alice, &kdb, &[("tool.exe", b"MZ")]).await;
    assert_eq!(exe.status(), 422);
    for body in [
        json!({"kdb_id": kdb, "query": "  "}),
        json!({"kdb_id": kdb, "query": "x", "top_k": 51}),
        json!({"kdb_id": kdb, "query": "x", "top_k": "many"}),
    ] {
        let r = app
            .post_json(&alice, "/api/knowledge-base/retrieve", body.clone())
            .await;
        assert_eq!(r.status(), 422, "{body}");
    }
    for path in [
        format!("/api/knowledge-base/doc/list?kdb_id={kdb}&query_status=7"),
        "/api/knowledge-base/doc/list".to_owned(),
        format!("/api/knowledge-base/doc/task_process?kdb_id={kdb}"),
        "/api/knowledge-base/list?page_size=0".to_owned(),
    ] {
        assert_eq!(get(&app, &alice, &path).await.status(), 422, "{path}");
    }
    let nameless = app
        .post_json(
            &alice,
            "/api/knowledge-base/add",
            json!({"name": "", "type": "qa"}),
        )
        .await;
    assert_eq!(nameless.status(), 422);
}

#[tokio::test]
async fn another_user_meets_only_missing_bases() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let kdb = create(&app, &alice, json!({"name": "Private", "type": "document"})).await;
    let task = task_of(
        upload(
            &app,
            &alice,
            &kdb,
            &[("secret.txt", b"The vault code is 4711.")],
        )
        .await,
    )
    .await;
    settled(&app, &alice, &kdb, &task).await;

    let theirs = upload(&app, &bob, &kdb, &[("x.txt", b"spam")]).await;
    assert_eq!(theirs.status(), 404);
    let r = app
        .post_json(
            &bob,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "vault code"}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(envelope(r).await["error_code"], "kdb.not_found");
    let listed = ok(get(&app, &bob, "/api/knowledge-base/list").await).await;
    assert_eq!(listed["total"], 0);
    // A picker asking for everything gets the largest page.
    let all = ok(get(
        &app,
        &alice,
        "/api/knowledge-base/list?page_no=1&page_size=1000",
    )
    .await)
    .await;
    assert_eq!(all["list"].as_array().unwrap().len(), 1);

    // An admin sees and searches it.
    let admin = app.admin().await;
    let all = ok(get(&app, &admin, "/api/knowledge-base/list").await).await;
    assert_eq!(all["list"][0]["user_id"], alice_id.as_str());
    let found = ok(app
        .post_json(
            &admin,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "vault"}),
        )
        .await)
    .await;
    assert_eq!(found["user_id"], alice_id.as_str());
    assert!(
        found["results"][0]["doc_content"]
            .as_str()
            .unwrap()
            .contains("4711")
    );
}

#[tokio::test]
async fn an_agent_searches_its_knowledge_bases_in_a_run() {
    use crate::chat::{body, call, parse, post, setup};
    let chat = setup(&[]).await;
    let app = &chat.app;
    let kdb = create(
        app,
        &chat.alice,
        json!({"name": "Handbook", "type": "document", "intro": "Company rules"}),
    )
    .await;
    let task = task_of(
        upload(
            app,
            &chat.alice,
            &kdb,
            &[(
                "leave.txt",
                b"Employees get 30 days of paid leave per year.",
            )],
        )
        .await,
    )
    .await;
    settled(app, &chat.alice, &kdb, &task).await;
    // Bob's base, named in Alice's request, is left out.
    let (bob, _) = app.user("bob").await;
    let bobs = create(
        app,
        &bob,
        json!({"name": "Bob's secrets", "type": "document"}),
    )
    .await;
    let agent = ok(app
        .post_json(
            &chat.alice,
            "/api/agent/create",
            json!({"name": "HR", "maxLoopCount": 5, "availableKnowledgeBases": [kdb]}),
        )
        .await)
    .await["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();

    chat.llm.push(call(
        "k1",
        "search_knowledge_base",
        json!({"query": "paid leave days"}),
    ));
    chat.llm.push(llm_double::Reply::text(&["30 days."]));
    let mut request = body(&agent, "s-kb", "How much leave do I get?");
    request["available_knowledge_bases"] = json!([bobs]);
    let (_, text) = post(&chat, &chat.alice, "/api/web-stream", request).await;
    let lines = parse(&text);
    let result = lines
        .iter()
        .find(|l| l["type"] == "tool_call_result")
        .unwrap_or_else(|| panic!("{text}"));
    let shown = result["content"].as_str().unwrap();
    assert!(shown.contains("30 days of paid leave"), "{shown}");
    assert!(shown.contains("leave.txt"), "{shown}");

    let requests = chat.llm.chat_requests();
    let first = requests
        .iter()
        .find(|r| r["messages"].to_string().contains("How much leave"))
        .unwrap();
    let system = first["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains(&format!("- Handbook (kdb_id {kdb}): Company rules")),
        "{system}"
    );
    assert!(!system.contains("Bob's secrets"), "{system}");
    let tool = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "search_knowledge_base")
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(
        tool["function"]["parameters"]["properties"]["kdb_id"]["enum"],
        json!([kdb])
    );
}

#[tokio::test]
async fn with_an_embedding_model_retrieval_is_hybrid() {
    let llm = llm_double::LlmDouble::start(Some("sk-embed"), &[])
        .await
        .unwrap();
    let base_url = llm.base_url.clone();
    let app = TestApp::spawn_with(move |c| {
        c.embedding = Some(platform::config::ModelEndpoint {
            base_url,
            api_key: Some("sk-embed".into()),
            model: "embed-small".into(),
        });
    })
    .await;
    let (alice, _) = app.user("alice").await;
    let kdb = create(&app, &alice, json!({"name": "Vectors", "type": "document"})).await;
    let task = task_of(
        upload(
            &app,
            &alice,
            &kdb,
            &[
                ("a.txt", b"Alpha beta gamma."),
                ("b.txt", b"Delta epsilon."),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(settled(&app, &alice, &kdb, &task).await["success"], 2);
    // Each passage went to the embedding model with the configured model and key.
    let embedded: Vec<Value> = llm
        .requests()
        .into_iter()
        .filter(|(kind, _)| kind == "embeddings")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(embedded.len(), 2, "{embedded:?}");
    assert!(embedded.iter().all(|b| b["model"] == "embed-small"));
    assert!(
        embedded
            .iter()
            .any(|b| b["input"] == json!(["Alpha beta gamma."]))
    );

    // A query with no word in common still finds passages by vector, and a word query is
    // answered by both (the query itself is embedded).
    let by_vector = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "？！", "top_k": 2}),
        )
        .await)
    .await;
    assert_eq!(
        by_vector["results"].as_array().unwrap().len(),
        2,
        "{by_vector}"
    );
    let hybrid = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "epsilon", "top_k": 1}),
        )
        .await)
    .await;
    assert_eq!(hybrid["results"][0]["path"], "b.txt", "{hybrid}");
    let queries = llm
        .requests()
        .into_iter()
        .filter(|(kind, body)| kind == "embeddings" && body["input"] == json!(["epsilon"]))
        .count();
    assert_eq!(queries, 1);
}

/// An S3-compatible server (s3rver from npm, `fixtures/s3`) on a free loopback port with a
/// bucket `sage`, stopped on drop.
pub(crate) struct S3Peer {
    child: std::process::Child,
    pub(crate) endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for S3Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Peer {
    pub(crate) fn start() -> S3Peer {
        use std::io::{BufRead, BufReader};
        let script =
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/s3"))
                .join("node_modules/s3rver/bin/s3rver.js");
        assert!(
            script.exists(),
            "s3rver is not installed: run `npm ci --prefix fixtures/s3` (.ci/run and cargo xtask test do)"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .args([
                "-d",
                dir.path().to_str().unwrap(),
                "-a",
                "127.0.0.1",
                "-p",
                "0",
            ])
            .args(["--configure-bucket", "sage"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node runs");
        // It prints `S3rver listening on 127.0.0.1:<port>` once it listens.
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("listening on ")
                    .nth(1)
                    .map(|a| a.trim().to_owned())
            })
            .expect("s3rver started");
        std::thread::spawn(move || lines.for_each(drop));
        S3Peer {
            child,
            endpoint: format!("http://{address}"),
            _dir: dir,
        }
    }

    pub(crate) fn config(&self) -> platform::config::S3Config {
        platform::config::S3Config {
            endpoint: Some(self.endpoint.clone()),
            bucket: "sage".into(),
            region: None,
            access_key: Some("S3RVER".into()),
            secret_key: Some("S3RVER".into()),
        }
    }
}

#[tokio::test]
async fn with_object_storage_documents_live_in_the_bucket() {
    use platform::objects::{ObjectError, ObjectStore, S3Objects};
    let s3 = S3Peer::start();
    let config = s3.config();
    let for_app = config.clone();
    let app = TestApp::spawn_with(move |c| c.s3 = Some(for_app)).await;
    let (alice, _) = app.user("alice").await;
    let kdb = create(
        &app,
        &alice,
        json!({"name": "Bucketed", "type": "document"}),
    )
    .await;
    let task = task_of(
        upload(
            &app,
            &alice,
            &kdb,
            &[("notes.md", b"# Notes\n\nThe bucket keeps the original.")],
        )
        .await,
    )
    .await;
    assert_eq!(settled(&app, &alice, &kdb, &task).await["success"], 1);
    let found = ok(app
        .post_json(
            &alice,
            "/api/knowledge-base/retrieve",
            json!({"kdb_id": kdb, "query": "original"}),
        )
        .await)
    .await;
    let doc_id = found["results"][0]["doc_id"].as_str().unwrap().to_owned();

    // The original is in the bucket, not on the server's disk.
    let bucket = S3Objects::new(&config).unwrap();
    let key = format!("knowledge/{kdb}/{doc_id}");
    assert_eq!(
        bucket.get(&key, 1 << 20).await.unwrap(),
        b"# Notes\n\nThe bucket keeps the original."
    );
    assert!(!app.data_path().join("objects").exists());

    // Deleting the document deletes the object.
    ok(alice
        .delete(app.url(&format!("/api/knowledge-base/doc/delete/{doc_id}")))
        .send()
        .await
        .unwrap())
    .await;
    assert!(matches!(
        bucket.get(&key, 1 << 20).await,
        Err(ObjectError::NotFound)
    ));

    // (s3rver does not check Signature Version 4 signatures; `platform::objects` checks its
    // signing against AWS's published example.)
}
