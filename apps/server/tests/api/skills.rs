//! Skills (`/api/skills*`): zip packages installed for the system (admins), a user or an
//! agent workspace; listing, reading and editing `SKILL.md`, deleting, copying into agent
//! workspaces, importing from a URL; bad packages refused with nothing written.

use std::io::Write;

use actix_web::{App, HttpResponse, HttpServer, web};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

fn query(pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    q.finish()
}

fn skill_md(name: &str, description: &str) -> String {
    format!("---\nname: {name}\ndescription: {description}\n---\n# {name}\n")
}

/// A zip of `(path, contents, unix mode)` entries.
fn zip_of(entries: &[(&str, &str, u32)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        for (path, contents, mode) in entries {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            zip.start_file(*path, options).unwrap();
            zip.write_all(contents.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
    }
    out.into_inner()
}

fn skill_zip(name: &str, description: &str) -> Vec<u8> {
    zip_of(&[("SKILL.md", &skill_md(name, description), 0o644)])
}

async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    zip: Vec<u8>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = Form::new().part("file", Part::bytes(zip).file_name("skill.zip"));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    client
        .post(app.url("/api/skills/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body = envelope(response).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client.get(app.url(path)).send().await.unwrap()
}

fn names(list: &Value) -> Vec<String> {
    list["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["dimension"].as_str().unwrap(),
                s["name"].as_str().unwrap()
            )
        })
        .collect()
}

async fn content(app: &TestApp, client: &reqwest::Client, name: &str) -> reqwest::Response {
    client
        .get(app.url(&format!("/api/skills/content?{}", query(&[("name", name)]))))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn skills_are_installed_listed_read_edited_and_deleted_by_who_may() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;

    // System skills are for admins.
    let refused = upload(
        &app,
        &alice,
        skill_zip("Writer", "Writes."),
        &[("is_system", "true")],
    )
    .await;
    assert_eq!(refused.status(), 403);
    let system = ok(upload(
        &app,
        &admin,
        skill_zip("Writer", "Writes well."),
        &[("is_system", "true")],
    )
    .await)
    .await;
    assert_eq!(system["dimension"], "system");
    assert_eq!(system["path"], "skills/Writer");

    // A user's skill from a zip with one top folder; scripts become executable.
    let zip = zip_of(&[
        (
            "mr/SKILL.md",
            &skill_md("Market Research", "Sizes markets."),
            0o644,
        ),
        ("mr/scripts/run.sh", "#!/bin/sh\necho hi\n", 0o644),
        ("mr/notes/readme.txt", "notes", 0o644),
    ]);
    let mine = ok(upload(&app, &alice, zip, &[]).await).await;
    assert_eq!(mine["user_id"], alice_id);
    assert_eq!(mine["dimension"], "user");
    assert_eq!(
        mine["path"],
        format!("users/{alice_id}/skills/Market-Research")
    );
    let script = app.data_path().join(format!(
        "skills/users/{alice_id}/Market-Research/scripts/run.sh"
    ));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    let listed = ok(get(&app, &alice, "/api/skills").await).await;
    assert_eq!(names(&listed), ["system:Writer", "user:Market Research"]);
    assert_eq!(
        names(&ok(get(&app, &bob, "/api/skills").await).await),
        ["system:Writer"]
    );
    assert_eq!(
        names(&ok(get(&app, &alice, "/api/skills?dimension=user").await).await),
        ["user:Market Research"]
    );
    assert_eq!(
        get(&app, &alice, "/api/skills?dimension=other")
            .await
            .status(),
        422
    );
    // Admins see every user's skills.
    assert_eq!(
        names(&ok(get(&app, &admin, "/api/skills").await).await),
        ["system:Writer", "user:Market Research"]
    );

    // A user's skill of the system's name hides it, for that user only.
    ok(upload(&app, &alice, skill_zip("Writer", "Alice's writer."), &[]).await).await;
    let text = ok(content(&app, &alice, "Writer").await).await;
    assert!(
        text["content"]
            .as_str()
            .unwrap()
            .contains("Alice's writer.")
    );
    let text = ok(content(&app, &bob, "Writer").await).await;
    assert!(text["content"].as_str().unwrap().contains("Writes well."));
    let missing = content(&app, &alice, "Nothing").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(envelope(missing).await["error_code"], "skill.not_found");

    // Editing keeps the name and needs a description; system skills are for admins.
    let put = |client: &reqwest::Client, body: Value| {
        client
            .put(app.url("/api/skills/content"))
            .json(&body)
            .send()
    };
    let renamed = put(
        &alice,
        json!({"name": "Writer", "content": skill_md("Other", "x")}),
    )
    .await
    .unwrap();
    assert_eq!(renamed.status(), 422);
    let bare = put(
        &alice,
        json!({"name": "Writer", "content": "# no front-matter"}),
    )
    .await
    .unwrap();
    assert_eq!(bare.status(), 422);
    ok(put(
        &alice,
        json!({"name": "Writer", "content": skill_md("Writer", "Edited.")}),
    )
    .await
    .unwrap())
    .await;
    assert!(
        ok(content(&app, &alice, "Writer").await).await["content"]
            .as_str()
            .unwrap()
            .contains("Edited.")
    );
    let system_edit = put(
        &bob,
        json!({"name": "Writer", "content": skill_md("Writer", "Bob's.")}),
    )
    .await
    .unwrap();
    assert_eq!(system_edit.status(), 403);

    // Delete: the caller's own first, then the system's (admins only); nothing there is fine.
    let delete = |client: &reqwest::Client, name: &str| {
        client
            .delete(app.url(&format!("/api/skills?{}", query(&[("name", name)]))))
            .send()
    };
    ok(delete(&alice, "Writer").await.unwrap()).await;
    assert!(
        ok(content(&app, &alice, "Writer").await).await["content"]
            .as_str()
            .unwrap()
            .contains("Writes well.")
    );
    assert_eq!(delete(&alice, "Writer").await.unwrap().status(), 403);
    ok(delete(&admin, "Writer").await.unwrap()).await;
    assert_eq!(content(&app, &alice, "Writer").await.status(), 404);
    ok(delete(&alice, "Nothing").await.unwrap()).await;

    // Bad packages: nothing is installed, nothing leaves the tree.
    for (zip, what) in [
        (b"not a zip".to_vec(), "not a zip"),
        (
            zip_of(&[
                ("../../evil.txt", "x", 0o644),
                ("SKILL.md", &skill_md("Evil", "x"), 0o644),
            ]),
            "traversal",
        ),
        (zip_of(&[("README.md", "no skill", 0o644)]), "no SKILL.md"),
        (
            zip_of(&[("SKILL.md", "# no front-matter", 0o644)]),
            "no front-matter",
        ),
    ] {
        let response = upload(&app, &alice, zip, &[]).await;
        assert_eq!(response.status(), 400, "{what}");
        assert_eq!(
            envelope(response).await["error_code"],
            "skill.invalid_package",
            "{what}"
        );
    }
    assert!(!app.data_path().join("skills/users/evil.txt").exists());
    assert!(!app.data_path().join("evil.txt").exists());
    assert_eq!(
        names(&ok(get(&app, &alice, "/api/skills").await).await),
        ["user:Market Research"]
    );
    assert_eq!(
        std::fs::read_dir(app.data_path().join("tmp"))
            .unwrap()
            .count(),
        0
    );

    // A deleted user's skills go with them.
    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": alice_id}))
        .await;
    assert_eq!(deleted.status(), 200);
    assert!(
        !app.data_path()
            .join(format!("skills/users/{alice_id}"))
            .exists()
    );
}

async fn agent(app: &TestApp, client: &reqwest::Client, skills: &[&str]) -> String {
    let body = ok(app
        .post_json(
            client,
            "/api/agent/create",
            json!({"name": "Analyst", "maxLoopCount": 5, "availableSkills": skills}),
        )
        .await)
    .await;
    body["agent_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn skills_are_copied_into_agent_workspaces() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    ok(upload(
        &app,
        &admin,
        skill_zip("Writer", "Writes."),
        &[("is_system", "1")],
    )
    .await)
    .await;
    ok(upload(
        &app,
        &alice,
        skill_zip("Market Research", "Sizes markets."),
        &[],
    )
    .await)
    .await;
    let agent_id = agent(&app, &alice, &["Market Research"]).await;

    // Only the skills the agent names, and what it could take.
    let listed = ok(get(&app, &alice, &format!("/api/skills?agent_id={agent_id}")).await).await;
    assert_eq!(names(&listed), ["user:Market Research"]);
    let available = ok(get(
        &app,
        &alice,
        &format!("/api/skills/agent-available?agent_id={agent_id}"),
    )
    .await)
    .await;
    let available = available["skills"].as_array().unwrap();
    assert_eq!(available.len(), 2);
    assert_eq!(available[0]["name"], "Market Research");
    assert_eq!(available[0]["source_dimension"], "user");
    assert_eq!(available[0]["need_update"], false);
    // Copied into the owner's workspace when the agent was created.
    assert_eq!(
        available[0]["agent_path"],
        format!("agents/{alice_id}/{agent_id}/skills/Market-Research")
    );

    // Copy one skill into the caller's workspace (a multipart form, as the web UI sends).
    let synced = ok(alice
        .post(app.url("/api/skills/sync-to-agent"))
        .multipart(
            Form::new()
                .text("skill_name", "Market Research")
                .text("agent_id", agent_id.clone()),
        )
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(synced["sync_status"], "synced");
    assert_eq!(synced["source_dimension"], "user");
    assert_eq!(
        synced["target_path"],
        format!("agents/{alice_id}/{agent_id}/skills/Market-Research")
    );
    let workspace = app
        .data_path()
        .join(format!("workspaces/{alice_id}/{agent_id}"));
    assert!(workspace.join("skills/Market-Research/SKILL.md").is_file());
    let copies = ok(get(
        &app,
        &alice,
        &format!("/api/skills?dimension=agent&agent_id={agent_id}"),
    )
    .await)
    .await;
    assert_eq!(names(&copies), ["agent:Market Research"]);
    assert_eq!(copies["skills"][0]["agent_name"], "Analyst");

    // The source changes: the copy needs an update, and the workspace sync brings it;
    // a skill the agent does not name is purged.
    alice
        .put(app.url("/api/skills/content"))
        .json(&json!({"name": "Market Research", "content": skill_md("Market Research", "Sizes markets, v2.")}))
        .send()
        .await
        .unwrap();
    let available = ok(get(
        &app,
        &alice,
        &format!("/api/skills/agent-available?agent_id={agent_id}"),
    )
    .await)
    .await;
    assert_eq!(available["skills"][0]["need_update"], true);
    ok(app
        .post_json(
            &alice,
            "/api/skills/sync-to-agent",
            json!({"skill_name": "Writer", "agent_id": agent_id}),
        )
        .await)
    .await;
    let outcome = ok(app
        .post_json(
            &alice,
            "/api/skills/sync-workspace-skills",
            json!({"agent_id": agent_id, "purge_extra": true, "user_id": "someone-else"}),
        )
        .await)
    .await;
    assert_eq!(
        outcome,
        json!({"synced": ["Market Research"], "removed": ["Writer"], "unchanged": []})
    );
    assert!(!workspace.join("skills/Writer").exists());
    let again = ok(app
        .post_json(
            &alice,
            "/api/skills/sync-workspace-skills",
            json!({"agent_id": agent_id}),
        )
        .await)
    .await;
    assert_eq!(again["unchanged"], json!(["Market Research"]));

    // Every workspace of the agent: its owner may, others do not see the agent.
    let bulk = ok(app
        .post_json(
            &alice,
            "/api/skills/sync-to-agent-workspaces",
            json!({"agent_id": agent_id}),
        )
        .await)
    .await;
    assert_eq!(bulk["workspace_count"], 1);
    assert_eq!(bulk["updated_workspace_count"], 1);
    assert_eq!(bulk["results"][0]["user_id"], alice_id);
    assert_eq!(bulk["results"][0]["status"], "success");
    for (path, body) in [
        (
            "/api/skills/sync-to-agent-workspaces",
            json!({"agent_id": agent_id}),
        ),
        (
            "/api/skills/sync-to-agent",
            json!({"skill_name": "Writer", "agent_id": agent_id}),
        ),
        (
            "/api/skills/sync-workspace-skills",
            json!({"agent_id": agent_id}),
        ),
    ] {
        let response = app.post_json(&bob, path, body).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(envelope(response).await["error_code"], "agent.not_found");
    }
    let foreign = upload(
        &app,
        &bob,
        skill_zip("X", "x"),
        &[("is_agent", "true"), ("agent_id", &agent_id)],
    )
    .await;
    assert_eq!(foreign.status(), 404);

    // Straight into the workspace, and out of it again.
    let direct = ok(upload(
        &app,
        &alice,
        skill_zip("Notes", "Takes notes."),
        &[("is_agent", "true"), ("agent_id", &agent_id)],
    )
    .await)
    .await;
    assert_eq!(direct["dimension"], "agent");
    assert!(workspace.join("skills/Notes/SKILL.md").is_file());
    ok(alice
        .delete(app.url(&format!(
            "/api/skills?{}",
            query(&[("name", "Notes"), ("agent_id", agent_id.as_str())])
        )))
        .send()
        .await
        .unwrap())
    .await;
    assert!(!workspace.join("skills/Notes").exists());
}

#[tokio::test]
async fn a_skill_is_imported_from_a_url() {
    let zip = skill_zip("Fetched", "From far away.");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let zip = zip.clone();
        App::new()
            .route(
                "/skill.zip",
                web::get().to(move || {
                    let zip = zip.clone();
                    async move { HttpResponse::Ok().content_type("application/zip").body(zip) }
                }),
            )
            .route(
                "/missing.zip",
                web::get().to(|| async { HttpResponse::NotFound().finish() }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let imported = ok(app
        .post_json(
            &alice,
            "/api/skills/import-url",
            json!({"url": format!("{base}/skill.zip"), "is_system": null, "agent_id": ""}),
        )
        .await)
    .await;
    assert_eq!(imported["name"], "Fetched");
    assert_eq!(
        names(&ok(get(&app, &alice, "/api/skills").await).await),
        ["user:Fetched"]
    );
    let failed = app
        .post_json(
            &alice,
            "/api/skills/import-url",
            json!({"url": format!("{base}/missing.zip")}),
        )
        .await;
    assert_eq!(failed.status(), 502);
    assert_eq!(
        envelope(failed).await["error_code"],
        "skill.download_failed"
    );
    let system = app
        .post_json(
            &alice,
            "/api/skills/import-url",
            json!({"url": format!("{base}/skill.zip"), "is_system": true}),
        )
        .await;
    assert_eq!(system.status(), 403);
}

#[tokio::test]
async fn an_agent_run_offers_its_skills_and_loads_one() {
    use crate::chat::{body, call, first_result, post, setup};
    let chat = setup(&[]).await;
    let zip = zip_of(&[
        (
            "SKILL.md",
            "---\nname: Market Research\ndescription: Sizes markets.\n---\nUse TAM, SAM and SOM.\n",
            0o644,
        ),
        ("data/sources.txt", "census", 0o644),
    ]);
    ok(upload(&chat.app, &chat.alice, zip, &[]).await).await;
    let agent = ok(chat
        .app
        .post_json(
            &chat.alice,
            "/api/agent/create",
            json!({"name": "Researcher", "maxLoopCount": 5, "availableSkills": ["Market Research"]}),
        )
        .await)
    .await["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();

    chat.llm.push(call(
        "c1",
        "load_skill",
        json!({"skill_name": "Market Research"}),
    ));
    chat.llm.push(llm_double::Reply::text(&["Sized."]));
    let (_, text) = post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&agent, "s-skill", "Size it"),
    )
    .await;
    let shown = first_result(&text);
    assert!(shown.contains("Use TAM, SAM and SOM."), "{shown}");
    assert!(
        shown.contains("skills/Market-Research/data/sources.txt"),
        "{shown}"
    );

    // The model saw the catalogue and the tool; the skill is in the run's workspace.
    let requests = chat.llm.chat_requests();
    let first = requests
        .iter()
        .find(|r| r["messages"].to_string().contains("Size it"))
        .unwrap();
    let system = first["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("- Market Research: Sizes markets."),
        "{system}"
    );
    let tools = crate::chat::tool_names(first);
    assert!(
        tools.iter().any(|t| t == "load_skill") && tools.iter().any(|t| t == "file_read"),
        "{tools:?}"
    );
    let copy = chat.app.data_path().join(format!(
        "workspaces/{}/{agent}/skills/Market-Research/SKILL.md",
        chat.alice_id
    ));
    assert!(copy.is_file());

    // An agent without skills is offered no `load_skill`, even when it names the tool.
    let plain = ok(chat
        .app
        .post_json(
            &chat.alice,
            "/api/agent/create",
            json!({"name": "Plain", "maxLoopCount": 5, "availableTools": ["load_skill", "list_dir"]}),
        )
        .await)
    .await["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    chat.llm.push(llm_double::Reply::text(&["Hi."]));
    post(
        &chat,
        &chat.alice,
        "/api/web-stream",
        body(&plain, "s-plain", "Hi"),
    )
    .await;
    let requests = chat.llm.chat_requests();
    let last = requests.last().unwrap();
    let tools: Vec<&str> = last["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t["function"]["name"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(tools, ["list_dir"]);
    assert!(
        !last["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("<skills>")
    );
    // A request may add the caller's own skills for one run.
    ok(upload(
        &chat.app,
        &chat.alice,
        skill_zip("Notes", "Takes notes."),
        &[],
    )
    .await)
    .await;
    chat.llm.push(llm_double::Reply::text(&["Noted."]));
    let mut with_skill = body(&plain, "s-plain-2", "Note this");
    with_skill["available_skills"] = json!(["Notes"]);
    post(&chat, &chat.alice, "/api/web-stream", with_skill).await;
    let requests = chat.llm.chat_requests();
    let last = requests.last().unwrap();
    let system = last["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("- Notes: Takes notes."), "{system}");
}

#[tokio::test]
async fn a_batch_installs_each_package_on_its_own() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let good = |name: &str| {
        zip_of(&[(
            "SKILL.md",
            &format!("---\nname: {name}\ndescription: Does {name}.\n---\nSteps.\n"),
            0o644,
        )])
    };
    let form = Form::new()
        .part("files[]", Part::bytes(good("Alpha")).file_name("alpha.zip"))
        .part(
            "files[]",
            Part::bytes(b"not a zip".to_vec()).file_name("broken.zip"),
        )
        .part("files[]", Part::bytes(good("Beta")).file_name("beta.zip"));
    let batch = ok(alice
        .post(app.url("/api/skills/upload-batch"))
        .multipart(form)
        .send()
        .await
        .unwrap())
    .await;
    assert_eq!(
        (
            batch["success_count"].as_u64(),
            batch["failed_count"].as_u64()
        ),
        (Some(2), Some(1)),
        "{batch}"
    );
    assert_eq!(batch["user_id"], alice_id.as_str());
    let results = batch["results"].as_array().unwrap();
    assert_eq!(results[1]["filename"], "broken.zip");
    assert_eq!(results[1]["success"], false);
    assert!(!results[1]["message"].as_str().unwrap().is_empty());
    assert_eq!(results[2]["name"], "Beta");
    let listed = ok(alice.get(app.url("/api/skills")).send().await.unwrap()).await;
    let names: Vec<&str> = listed["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Alpha") && names.contains(&"Beta"),
        "{names:?}"
    );

    // System skills stay an admin's: the whole batch is refused, nothing installed.
    let refused = alice
        .post(app.url("/api/skills/upload-batch"))
        .multipart(
            Form::new()
                .text("is_system", "true")
                .part("files[]", Part::bytes(good("Gamma")).file_name("gamma.zip")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let empty = alice
        .post(app.url("/api/skills/upload-batch"))
        .multipart(Form::new().text("is_system", "false"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
}

#[tokio::test]
async fn an_agents_skills_follow_it_into_the_owners_workspace_when_saved() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let zip = zip_of(&[(
        "SKILL.md",
        "---\nname: Market Research\ndescription: Sizes markets.\n---\nUse TAM.\n",
        0o644,
    )]);
    ok(upload(&app, &alice, zip, &[]).await).await;
    let agent = ok(app
        .post_json(
            &alice,
            "/api/agent/create",
            json!({"name": "Researcher", "maxLoopCount": 5, "availableSkills": ["Market Research"]}),
        )
        .await)
    .await["agent_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Copied at create, before any run.
    let copy = app.data_path().join(format!(
        "workspaces/{alice_id}/{agent}/skills/Market-Research/SKILL.md"
    ));
    assert!(copy.is_file());

    // De-selected at update: the copy goes.
    ok(alice
        .put(app.url(&format!("/api/agent/{agent}")))
        .json(&json!({"name": "Researcher", "maxLoopCount": 5, "availableSkills": []}))
        .send()
        .await
        .unwrap())
    .await;
    assert!(!copy.exists());
}

#[tokio::test]
async fn a_user_keeps_at_most_the_configured_number_of_skills() {
    let app = TestApp::spawn_with(|c| c.max_skills_per_user = 2).await;
    let (alice, _) = app.user("alice").await;
    let zip = |name: &str, description: &str| {
        zip_of(&[(
            "SKILL.md",
            &format!("---\nname: {name}\ndescription: {description}\n---\nSteps.\n"),
            0o644,
        )])
    };
    ok(upload(&app, &alice, zip("Alpha", "First."), &[]).await).await;
    ok(upload(&app, &alice, zip("Beta", "Second."), &[]).await).await;
    let third = upload(&app, &alice, zip("Gamma", "Third."), &[]).await;
    assert_eq!(third.status(), 409);
    assert_eq!(envelope(third).await["error_code"], "skill.quota_exceeded");
    // Replacing a kept skill is not a new one.
    ok(upload(&app, &alice, zip("Alpha", "First, again."), &[]).await).await;
    let content = ok(alice
        .get(app.url("/api/skills/content?name=Alpha"))
        .send()
        .await
        .unwrap())
    .await;
    assert!(
        content["content"]
            .as_str()
            .unwrap()
            .contains("First, again.")
    );
}
