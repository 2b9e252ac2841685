//! Agent file workspaces: upload, list, download (file and zip), delete, confinement of every
//! path, and who may touch whose workspace.

use serde_json::json;

use crate::helpers::{TestApp, envelope};

async fn agent(app: &TestApp, client: &reqwest::Client, name: &str) -> String {
    let body = envelope(
        app.post_json(
            client,
            "/api/agent/create",
            json!({"name": name, "maxLoopCount": 5}),
        )
        .await,
    )
    .await;
    body["data"]["agent_id"].as_str().unwrap().to_owned()
}

async fn upload(
    app: &TestApp,
    client: &reqwest::Client,
    agent: &str,
    target: &str,
    name: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("target_path", target.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()),
        );
    client
        .post(app.url(&format!("/api/agent/{agent}/file_workspace/upload")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn list(
    app: &TestApp,
    client: &reqwest::Client,
    agent: &str,
    query: &str,
) -> serde_json::Value {
    envelope(
        client
            .post(app.url(&format!("/api/agent/{agent}/file_workspace?{query}")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn files_are_uploaded_listed_downloaded_and_deleted() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let id = agent(&app, &alice, "Files").await;
    let up = envelope(
        upload(
            &app,
            &alice,
            &id,
            "reports/2026",
            "summary.md",
            b"# Summary\n",
        )
        .await,
    )
    .await;
    assert_eq!(up["data"]["path"], "reports/2026/summary.md");
    upload(&app, &alice, &id, "", "data.csv", b"a,b\n1,2\n").await;

    let listing = list(&app, &alice, &id, "").await;
    let paths: Vec<_> = listing["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].clone())
        .collect();
    assert_eq!(
        paths,
        vec![
            json!("data.csv"),
            json!("reports"),
            json!("reports/2026"),
            json!("reports/2026/summary.md")
        ]
    );
    let shallow = list(&app, &alice, &id, "max_depth=1").await;
    assert_eq!(shallow["data"]["files"].as_array().unwrap().len(), 2);
    assert_eq!(shallow["data"]["truncated_by_depth"], true);
    let sub = list(&app, &alice, &id, "path=reports/2026").await;
    assert_eq!(sub["data"]["files"][0]["size"], 10);

    let file = alice
        .get(app.url(&format!(
            "/api/agent/{id}/file_workspace/download?file_path=reports/2026/summary.md"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    assert!(
        file.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert!(
        file.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("summary.md")
    );
    assert_eq!(file.bytes().await.unwrap().as_ref(), b"# Summary\n");

    let zip = alice
        .get(app.url(&format!(
            "/api/agent/{id}/file_workspace/download?file_path=reports"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.headers()["content-type"], "application/zip");
    assert!(zip.bytes().await.unwrap().starts_with(b"PK"));

    let deleted = alice
        .delete(app.url(&format!(
            "/api/agent/{id}/file_workspace/delete?file_path=reports"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let missing = alice
        .get(app.url(&format!(
            "/api/agent/{id}/file_workspace/download?file_path=reports/2026/summary.md"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(envelope(missing).await["error_code"], "workspace.not_found");
    let ok_missing = alice
        .delete(app.url(&format!(
            "/api/agent/{id}/file_workspace/delete?file_path=reports&missing_ok=true"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_missing.status(), 200);
}

#[tokio::test]
async fn every_escape_from_the_workspace_is_refused() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let id = agent(&app, &alice, "Jail").await;
    upload(&app, &alice, &id, "", "inside.txt", b"in").await;
    std::fs::write(app.data_path().join("outside.txt"), "secret").unwrap();
    let long = "x".repeat(300);
    let attacks = [
        "..%2F..%2F..%2Foutside.txt".to_owned(),
        "../../../outside.txt".to_owned(),
        "%2Fetc%2Fpasswd".to_owned(),
        "inside.txt%00.png".to_owned(),
        long,
    ];
    for attack in &attacks {
        let r = alice
            .get(app.url(&format!(
                "/api/agent/{id}/file_workspace/download?file_path={attack}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "download {attack}");
        assert_eq!(envelope(r).await["error_code"], "workspace.path_invalid");
        let r = alice
            .delete(app.url(&format!(
                "/api/agent/{id}/file_workspace/delete?file_path={attack}"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "delete {attack}");
    }
    let listing = alice
        .post(app.url(&format!("/api/agent/{id}/file_workspace?path=..")))
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 400);
    let up = upload(&app, &alice, &id, "../..", "evil.txt", b"x").await;
    assert_eq!(up.status(), 400);
    let up = upload(&app, &alice, &id, "", "../evil.txt", b"x").await;
    assert_eq!(up.status(), 400);
    #[cfg(unix)]
    {
        let root = app.data_path().join("workspaces").join(&alice_id).join(&id);
        std::os::unix::fs::symlink(app.data_path().join("outside.txt"), root.join("link.txt"))
            .unwrap();
        std::os::unix::fs::symlink(app.data_path(), root.join("up")).unwrap();
        for path in ["link.txt", "up/outside.txt"] {
            let r = alice
                .get(app.url(&format!(
                    "/api/agent/{id}/file_workspace/download?file_path={path}"
                )))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{path}");
        }
        let up = upload(&app, &alice, &id, "up", "planted.txt", b"x").await;
        assert_eq!(up.status(), 400);
        assert!(!app.data_path().join("planted.txt").exists());
    }
    assert_eq!(
        std::fs::read_to_string(app.data_path().join("outside.txt")).unwrap(),
        "secret"
    );
    let _ = alice_id;
}

#[tokio::test]
async fn workspaces_are_per_user_and_admins_need_an_explicit_parameter() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, bob_id) = app.user("bob").await;
    let id = agent(&app, &alice, "Shared").await;
    upload(&app, &alice, &id, "", "alice.txt", b"a").await;

    let r = bob
        .post(app.url(&format!("/api/agent/{id}/file_workspace")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no access to the agent, no workspace");

    app.post_json(
        &alice,
        &format!("/api/agent/{id}/auth"),
        json!({"user_ids": [bob_id]}),
    )
    .await;
    let own = list(&app, &bob, &id, "").await;
    assert!(
        own["data"]["files"].as_array().unwrap().is_empty(),
        "bob has his own workspace"
    );
    let sneaky = list(&app, &bob, &id, &format!("user_id={alice_id}")).await;
    assert!(
        sneaky["data"]["files"].as_array().unwrap().is_empty(),
        "user_id is ignored for non-admins"
    );
    assert_eq!(sneaky["data"]["user_id"], bob_id);

    let admin = app.admin().await;
    let as_admin = list(&app, &admin, &id, &format!("user_id={alice_id}")).await;
    assert_eq!(as_admin["data"]["files"][0]["name"], "alice.txt");
    let admin_own = list(&app, &admin, &id, "").await;
    assert!(
        admin_own["data"]["files"].as_array().unwrap().is_empty(),
        "without the parameter: the admin's own"
    );
}

#[tokio::test]
async fn whole_workspaces_are_deleted_only_by_their_user_or_an_admin() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, bob_id) = app.user("bob").await;
    let id = agent(&app, &alice, "Temp").await;
    upload(&app, &alice, &id, "", "a.txt", b"a").await;

    // Bob cannot see Alice's agent: exactly the answer for an agent that does not exist.
    let foreign = app
        .post_json(
            &bob,
            "/api/agent/workspace/delete",
            json!({"agent_id": id, "user_id": alice_id}),
        )
        .await;
    assert_eq!(foreign.status(), 404);
    let foreign = envelope(foreign).await;
    let missing = app
        .post_json(
            &bob,
            "/api/agent/workspace/delete",
            json!({"agent_id": "agent_doesnotexist", "user_id": alice_id}),
        )
        .await;
    assert_eq!(missing.status(), 404);
    let missing = envelope(missing).await;
    assert_eq!(foreign["error_code"], "agent.not_found");
    assert_eq!(foreign["error_code"], missing["error_code"]);
    assert_eq!(foreign["message"], missing["message"]);
    let traversal = app
        .post_json(
            &alice,
            "/api/agent/workspace/delete",
            json!({"agent_id": "../../etc", "user_id": alice_id}),
        )
        .await;
    assert_eq!(traversal.status(), 404);

    // Shared with Bob, his `user_id` naming Alice is ignored: his own workspace goes.
    let shared = app
        .post_json(
            &alice,
            &format!("/api/agent/{id}/auth"),
            json!({"user_ids": [bob_id]}),
        )
        .await;
    assert_eq!(shared.status(), 200);
    upload(&app, &bob, &id, "", "b.txt", b"b").await;
    let own = envelope(
        app.post_json(
            &bob,
            "/api/agent/workspace/delete",
            json!({"agent_id": id, "user_id": alice_id}),
        )
        .await,
    )
    .await;
    assert_eq!(own["data"]["user_id"], bob_id.as_str());
    assert_eq!(own["data"]["deleted"], true);
    assert!(
        list(&app, &bob, &id, "").await["data"]["files"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        list(&app, &alice, &id, "").await["data"]["files"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "Alice's workspace is untouched"
    );

    let done = envelope(
        app.post_json(
            &alice,
            "/api/agent/workspace/delete",
            json!({"agent_id": id, "user_id": alice_id}),
        )
        .await,
    )
    .await;
    assert_eq!(done["data"]["deleted"], true);
    let admin = app.admin().await;
    let again = envelope(
        app.post_json(
            &admin,
            "/api/agent/workspace/delete",
            json!({"agent_id": id, "user_id": alice_id}),
        )
        .await,
    )
    .await;
    assert_eq!(again["data"]["deleted"], false);
    assert_eq!(again["data"]["user_id"], alice_id.as_str());
    for (agent_id, user_id, field) in [
        ("../../etc", alice_id.as_str(), "agent_id"),
        (id.as_str(), "../x", "user_id"),
    ] {
        let bad = app
            .post_json(
                &admin,
                "/api/agent/workspace/delete",
                json!({"agent_id": agent_id, "user_id": user_id}),
            )
            .await;
        assert_eq!(bad.status(), 422, "{field}");
        assert_eq!(envelope(bad).await["error_detail"][0]["field"], field);
    }
}
