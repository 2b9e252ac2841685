//! Uploads (`POST /api/oss/upload`) and their signed links (`GET /api/oss/files/{key}`):
//! private to the uploader's space, readable by whoever holds an unaltered link, gone with
//! their user.

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

fn form(name: &str, bytes: &'static [u8], path: Option<&str>) -> Form {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
    match path {
        Some(p) => form.text("path", p.to_owned()),
        None => form,
    }
}

async fn upload(app: &TestApp, client: &reqwest::Client, form: Form) -> reqwest::Response {
    client
        .post(app.url("/api/oss/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn uploaded(app: &TestApp, client: &reqwest::Client, form: Form) -> Value {
    let response = upload(app, client, form).await;
    assert_eq!(response.status(), 200);
    envelope(response).await["data"].clone()
}

#[tokio::test]
async fn an_upload_answers_a_signed_link_that_opens_without_login() {
    let app = TestApp::spawn().await;
    let (alice, alice_id) = app.user("alice").await;
    let anonymous = app.new_client();

    assert_eq!(
        upload(&app, &anonymous, form("a.txt", b"x", None))
            .await
            .status(),
        401
    );

    let data = uploaded(&app, &alice, form("../../notes.txt", b"hello", None)).await;
    let key = data["key"].as_str().unwrap();
    assert!(key.starts_with(&format!("{alice_id}/")), "{key}");
    assert!(key.ends_with("_notes.txt"), "{key}");
    assert_eq!(data["size"], 5);
    let url = data["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/api/oss/files/")), "{url}");
    let response = anonymous.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.headers()["content-disposition"], "inline");
    assert_eq!(response.text().await.unwrap(), "hello");

    // A page is never shown as this origin: it downloads, sandboxed.
    let page = uploaded(
        &app,
        &alice,
        form(
            "x.html",
            b"<script>alert(1)</script>",
            Some("site/ä page.html"),
        ),
    )
    .await;
    assert_eq!(page["key"], format!("{alice_id}/site/ä page.html"));
    let response = anonymous
        .get(page["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );

    // An altered link, a prolonged one, another key with the same signature, none: 404.
    let (base, query) = url.split_once('?').unwrap();
    let sig = query.split("sig=").nth(1).unwrap();
    let expires: i64 = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .unwrap()
        .parse()
        .unwrap();
    let mut flipped = sig.to_owned();
    flipped.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
    for bad in [
        format!("{base}?expires={expires}&sig={flipped}"),
        format!("{base}?expires={}&sig={sig}", expires + 3600),
        format!(
            "{}?expires={expires}&sig={sig}",
            page["url"].as_str().unwrap().split('?').next().unwrap()
        ),
        base.to_owned(),
        app.url("/api/oss/files/nobody/x.txt?expires=1&sig=00"),
    ] {
        let response = anonymous.get(&bad).send().await.unwrap();
        assert_eq!(response.status(), 404, "{bad}");
        assert_eq!(envelope(response).await["error_code"], "upload.not_found");
    }
}

#[tokio::test]
async fn uploads_stay_in_the_callers_space_and_go_with_their_user() {
    let app = TestApp::spawn_with(|c| c.max_upload_bytes = 64 * 1024).await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let admin = app.admin().await;

    let first = uploaded(&app, &alice, form("a.txt", b"first", Some("docs/a.txt"))).await;
    // Bob cannot name Alice's space, nor leave his own.
    for path in [
        format!("../{alice_id}/docs/a.txt"),
        "/etc/passwd".to_owned(),
        "docs/../../x".to_owned(),
    ] {
        let response = upload(&app, &bob, form("a.txt", b"evil", Some(&path))).await;
        assert_eq!(response.status(), 422, "{path}");
    }
    let bobs = uploaded(&app, &bob, form("a.txt", b"bob's", Some("docs/a.txt"))).await;
    assert_ne!(bobs["key"], first["key"]);
    let read = |url: Value| {
        let client = app.new_client();
        async move {
            client
                .get(url.as_str().unwrap())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    assert_eq!(read(first["url"].clone()).await, "first");

    // The same path again replaces Alice's file; a folder in the way is a conflict.
    let second = uploaded(&app, &alice, form("a.txt", b"second", Some("docs/a.txt"))).await;
    assert_eq!(read(second["url"].clone()).await, "second");
    let conflict = upload(&app, &alice, form("d", b"x", Some("docs"))).await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(
        envelope(conflict).await["error_code"],
        "upload.path_conflict"
    );

    // No file, or too large: refused, nothing stored.
    let missing = alice
        .post(app.url("/api/oss/upload"))
        .multipart(Form::new().text("path", "x.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 422);
    static BIG: [u8; 100 * 1024] = [b'x'; 100 * 1024];
    let big = upload(&app, &alice, form("big.bin", &BIG, Some("big.bin"))).await;
    assert_eq!(big.status(), 413);
    assert!(
        !app.data_path()
            .join("oss")
            .join(&alice_id)
            .join("big.bin")
            .exists()
    );
    let leftovers = std::fs::read_dir(app.data_path().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);

    // Deleting Alice deletes her uploads (Bob's stay).
    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": alice_id}))
        .await;
    assert_eq!(deleted.status(), 200);
    let gone = app
        .new_client()
        .get(second["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(read(bobs["url"].clone()).await, "bob's");
}

#[tokio::test]
async fn with_object_storage_uploads_live_in_the_bucket() {
    use platform::objects::{ObjectError, ObjectStore, S3Objects};
    let s3 = crate::knowledge::S3Peer::start();
    let config = s3.config();
    let for_app = config.clone();
    let app = TestApp::spawn_with(move |c| c.s3 = Some(for_app)).await;
    let admin = app.admin().await;
    let (alice, alice_id) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let data = uploaded(
        &app,
        &alice,
        form("notes.txt", b"kept in S3", Some("docs/a b.txt")),
    )
    .await;
    assert_eq!(data["key"], format!("{alice_id}/docs/a b.txt"));
    let bobs = uploaded(&app, &bob, form("b.txt", b"bob's", None)).await;

    // The link streams the object from the bucket; nothing is on the server's disk.
    let anonymous = app.new_client();
    let response = anonymous
        .get(data["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], "10");
    assert_eq!(response.text().await.unwrap(), "kept in S3");
    assert!(!app.data_path().join("oss").exists());
    let bucket = S3Objects::new(&config).unwrap();
    let key = format!("oss/{alice_id}/docs/a b.txt");
    assert_eq!(bucket.get(&key, 100).await.unwrap(), b"kept in S3");

    // Deleting Alice lists and deletes her objects; Bob's stay.
    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": alice_id}))
        .await;
    assert_eq!(deleted.status(), 200);
    assert!(matches!(
        bucket.get(&key, 100).await,
        Err(ObjectError::NotFound)
    ));
    let gone = anonymous
        .get(data["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let kept = anonymous
        .get(bobs["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(kept.text().await.unwrap(), "bob's");
}
