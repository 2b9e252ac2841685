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

/// Files under the server's upload directory (finished or not).
fn spooled(app: &TestApp) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(app.data_path().join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A multipart body sent in pieces without a length: its head, `body_bytes` of file content,
/// then, when `hang`, nothing more (the stream never ends).
pub(crate) fn streamed_upload(
    name: &str,
    body_bytes: usize,
    hang: bool,
) -> (String, reqwest::Body) {
    let boundary = "sage-test-boundary".to_owned();
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    const PIECE: usize = 64 * 1024;
    let pieces = body_bytes.div_ceil(PIECE);
    let body = futures_util::stream::iter(
        std::iter::once(head.into_bytes())
            .chain((0..pieces).map(move |i| {
                vec![
                    b'u';
                    if i + 1 == pieces {
                        body_bytes - i * PIECE
                    } else {
                        PIECE
                    }
                ]
            }))
            .chain((!hang).then(|| tail.into_bytes()))
            .map(Ok::<_, std::io::Error>),
    );
    let body: futures_util::stream::BoxStream<'static, Result<Vec<u8>, std::io::Error>> = if hang {
        futures_util::StreamExt::boxed(futures_util::StreamExt::chain(
            body,
            futures_util::stream::pending(),
        ))
    } else {
        futures_util::StreamExt::boxed(body)
    };
    (
        format!("multipart/form-data; boundary={boundary}"),
        reqwest::Body::wrap_stream(body),
    )
}

#[tokio::test]
async fn an_upload_over_the_limit_answers_413_and_leaves_no_file() {
    let app = TestApp::spawn_with(|c| c.max_upload_bytes = 256 * 1024).await;
    let (alice, alice_id) = app.user("alice").await;
    let id = agent(&app, &alice, "Limits").await;
    // With a declared length, refused before the body is read.
    let declared = upload(&app, &alice, &id, "", "big.bin", &vec![7u8; 300 * 1024]).await;
    assert_eq!(declared.status(), 413);
    assert_eq!(
        envelope(declared).await["error_code"],
        "request.payload_too_large"
    );
    // Without one, refused while streaming, as soon as the limit is passed.
    let (content_type, body) = streamed_upload("big.bin", 600 * 1024, false);
    let streamed = alice
        .post(app.url(&format!("/api/agent/{id}/file_workspace/upload")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let root = app.data_path().join("workspaces").join(&alice_id).join(&id);
    assert!(!root.join("big.bin").exists());
    assert!(spooled(&app).is_empty(), "{:?}", spooled(&app));
    // Just under the limit is stored, streamed the same way.
    let (content_type, body) = streamed_upload("fits.bin", 200 * 1024, false);
    let fits = alice
        .post(app.url(&format!("/api/agent/{id}/file_workspace/upload")))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(fits).await["data"]["size"], 200 * 1024);
    assert_eq!(
        std::fs::metadata(root.join("fits.bin")).unwrap().len(),
        200 * 1024
    );
    assert!(spooled(&app).is_empty());
}

#[tokio::test]
async fn a_foreign_upload_answers_404_before_its_body_is_read() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let (bob, bob_id) = app.user("bob").await;
    let id = agent(&app, &alice, "Private").await;
    // Bob's body never ends: only an answer given before reading it can arrive.
    let (content_type, body) = streamed_upload("push.bin", 256 * 1024, true);
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        bob.post(app.url(&format!("/api/agent/{id}/file_workspace/upload")))
            .header("content-type", content_type)
            .body(body)
            .send(),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();
    assert_eq!(response.status(), 404);
    let missing = envelope(
        bob.post(app.url("/api/agent/no-such-agent/file_workspace/upload"))
            .multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(vec![1u8; 1024]).file_name("x.bin"),
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing["error_code"], "agent.not_found");
    assert!(spooled(&app).is_empty());
    assert!(!app.data_path().join("workspaces").join(&bob_id).exists());
}

#[tokio::test]
async fn an_interrupted_upload_leaves_nothing_behind() {
    let app =
        TestApp::spawn_with(|c| c.body_read_timeout = std::time::Duration::from_secs(1)).await;
    let (alice, alice_id) = app.user("alice").await;
    let id = agent(&app, &alice, "Slow").await;
    let (content_type, body) = streamed_upload("half.bin", 128 * 1024, true);
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        alice
            .post(app.url(&format!("/api/agent/{id}/file_workspace/upload")))
            .header("content-type", content_type)
            .body(body)
            .send(),
    )
    .await
    .expect("the server gave up on the body")
    .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        envelope(response).await["error_code"],
        "request.body_timeout"
    );
    assert!(spooled(&app).is_empty());
    let root = app.data_path().join("workspaces").join(&alice_id).join(&id);
    assert!(!root.join("half.bin").exists());
}

#[tokio::test]
async fn a_slow_json_body_is_cut_off_at_the_read_timeout() {
    let app =
        TestApp::spawn_with(|c| c.body_read_timeout = std::time::Duration::from_secs(1)).await;
    let (alice, _) = app.user("alice").await;
    let body = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(b"{\"name\": \"sl".to_vec())]),
        futures_util::stream::pending(),
    );
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        alice
            .post(app.url("/api/agent/create"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("the server gave up on the body")
    .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        envelope(response).await["error_code"],
        "request.body_timeout"
    );
}

#[tokio::test]
async fn conflicts_symlinks_and_files_as_directories_are_4xx_never_500() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let id = agent(&app, &alice, "Edges").await;
    assert_eq!(
        upload(&app, &alice, &id, "", "a.txt", b"first")
            .await
            .status(),
        200
    );
    let again = upload(&app, &alice, &id, "", "a.txt", b"second").await;
    assert_eq!(again.status(), 409);
    assert_eq!(envelope(again).await["error_code"], "workspace.file_exists");
    let root = app.data_path().join("workspaces").join(&alice_id).join(&id);
    assert_eq!(
        std::fs::read_to_string(root.join("a.txt")).unwrap(),
        "first"
    );
    let under_file = alice
        .get(app.url(&format!(
            "/api/agent/{id}/file_workspace/download?file_path=a.txt/x"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(under_file.status(), 404);
    // A dangling symlink named like the upload, and one as its directory: nothing is
    // written through either.
    let outside = app.data_path().join("planted.txt");
    std::os::unix::fs::symlink(&outside, root.join("b.txt")).unwrap();
    std::os::unix::fs::symlink(app.data_path().join("newdir"), root.join("dir")).unwrap();
    let through_file = upload(&app, &alice, &id, "", "b.txt", b"x").await;
    assert_eq!(through_file.status(), 409);
    let through_dir = upload(&app, &alice, &id, "dir", "c.txt", b"x").await;
    assert_eq!(through_dir.status(), 400);
    assert!(!outside.exists());
    assert!(!app.data_path().join("newdir").exists());
    // A symlink loop and a link back to the root: the listing ends and shows neither.
    std::os::unix::fs::symlink(root.join("loop"), root.join("loop")).unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("sub/root")).unwrap();
    let listing = list(&app, &alice, &id, "max_depth=20").await;
    let paths: Vec<_> = listing["data"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(paths, vec!["a.txt", "sub"]);
}

#[tokio::test]
async fn workspace_files_are_private_and_go_with_their_agent() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let id = agent(&app, &alice, "Gone").await;
    upload(&app, &alice, &id, "docs", "报告.md", b"x").await;
    let root = app.data_path().join("workspaces").join(&alice_id).join(&id);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("docs")), 0o700);
    let stored = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(mode(&stored.path()), 0o600);
    let db = app.data_path().join("sage.db");
    if db.exists() {
        // The embedded default (PostgreSQL has no file here).
        assert_eq!(mode(&db), 0o600);
    }
    // A non-ASCII name is downloaded under its own name (RFC 6266 `filename*`).
    std::fs::write(root.join("docs/résumé.txt"), "cv").unwrap();
    let download = alice
        .get(app.url(&format!(
            "/api/agent/{id}/file_workspace/download?file_path=docs/r%C3%A9sum%C3%A9.txt"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        download.headers()["content-disposition"].to_str().unwrap(),
        "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"
    );
    let deleted = alice
        .delete(app.url(&format!("/api/agent/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(!root.exists(), "the workspace went with the agent");
}

#[tokio::test]
async fn a_directory_zip_is_streamed_as_it_is_made() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let id = agent(&app, &alice, "Zips").await;
    // Incompressible bytes, so the archive is at least as large as the file.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let big: Vec<u8> = (0..3 * 1024 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 32) as u8
        })
        .collect();
    upload(&app, &alice, &id, "out", "big.bin", &big).await;
    upload(&app, &alice, &id, "out/sub", "small.txt", b"small").await;
    let zip = alice
        .get(app.url(&format!(
            "/api/agent/{id}/file_workspace/download?file_path=out"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    assert_eq!(zip.headers()["content-type"], "application/zip");
    assert!(
        zip.headers().get("content-length").is_none(),
        "sent while it is written, so its length is not known up front"
    );
    let bytes = zip.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK\x03\x04"));
    // The central directory at the end names every entry.
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    let text = String::from_utf8_lossy(tail);
    assert!(
        text.contains("big.bin") && text.contains("sub/small.txt"),
        "{text}"
    );
    assert!(bytes.len() > big.len());
}
