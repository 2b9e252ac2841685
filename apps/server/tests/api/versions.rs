//! Desktop releases (`/api/system/version*`): the public update check and download page, the
//! list, admin-only create and delete, and the import from a GitHub-style feed served here on
//! loopback.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{TestApp, envelope};

#[tokio::test]
async fn admins_publish_releases_that_the_desktop_app_and_download_page_read() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let admin = app.admin().await;
    let anonymous = app.new_client();

    // Nothing yet: the update check is a 404, the download page gets null.
    let check = anonymous
        .get(app.url("/api/system/version/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 404);
    assert_eq!(envelope(check).await["error_code"], "release.not_found");
    let latest = envelope(app.get("/api/system/version/latest").await).await;
    assert!(latest["data"].is_null(), "{latest}");

    let release = json!({
        "version": "v1.2.0",
        "release_notes": "Faster start.",
        "pub_date": "2026-12-01T10:00:00+01:00",
        "artifacts": [
            {"platform": "darwin-aarch64", "installer_url": "https://dl.example/Sage.dmg",
             "updater_url": "https://dl.example/Sage.app.tar.gz", "updater_signature": "c2ln"},
            {"platform": "linux-x86_64", "installer_url": "https://dl.example/Sage.AppImage",
             "updater_url": "", "updater_signature": null}
        ]
    });
    // Users may not publish; admins may, once per version.
    let refused = app
        .post_json(&alice, "/api/system/version", release.clone())
        .await;
    assert_eq!(refused.status(), 403);
    let created = envelope(
        app.post_json(&admin, "/api/system/version", release.clone())
            .await,
    )
    .await;
    assert_eq!(created["data"]["version"], "1.2.0");
    assert_eq!(created["data"]["pub_date"], "2026-12-01T09:00:00Z");
    let again = app
        .post_json(&admin, "/api/system/version", release.clone())
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(envelope(again).await["error_code"], "release.exists");
    let older = json!({"version": "1.1.9", "release_notes": null, "artifacts": null});
    assert_eq!(
        app.post_json(&admin, "/api/system/version", older)
            .await
            .status(),
        200
    );
    for bad in [
        json!({"version": "../1"}),
        json!({"version": "1.0.0", "pub_date": "yesterday"}),
        json!({"version": "1.0.0", "artifacts": [{"platform": "linux", "installer_url": "https://dl.example/a"}]}),
        json!({"version": "1.0.0", "artifacts": [{"platform": "linux-x86_64", "installer_url": "file:///etc/passwd"}]}),
    ] {
        let response = app
            .post_json(&admin, "/api/system/version", bad.clone())
            .await;
        assert_eq!(response.status(), 422, "{bad}");
    }

    // The update check: the highest version, only platforms with an updater bundle.
    let check = envelope(
        anonymous
            .get(app.url("/api/system/version/check"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        check["data"],
        json!({"version": "1.2.0", "notes": "Faster start.", "pub_date": "2026-12-01T09:00:00Z",
               "platforms": {"darwin-aarch64": {"url": "https://dl.example/Sage.app.tar.gz", "signature": "c2ln"}}})
    );
    let latest = envelope(
        anonymous
            .get(app.url("/api/system/version/latest"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(latest["data"]["version"], "1.2.0");
    assert_eq!(
        latest["data"]["artifacts"][1],
        json!({"platform": "linux-x86_64", "installer_url": "https://dl.example/Sage.AppImage",
               "updater_url": null, "updater_signature": null})
    );

    // The list needs a login and is newest first.
    assert_eq!(
        anonymous
            .get(app.url("/api/system/version"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let listed = envelope(
        alice
            .get(app.url("/api/system/version"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let versions: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.2.0", "1.1.9"]);

    // Delete: admins only; an unknown version is 404; the next highest becomes the latest.
    let delete = |client: &reqwest::Client, v: &str| {
        client
            .delete(app.url(&format!("/api/system/version/{v}")))
            .send()
    };
    assert_eq!(delete(&alice, "1.2.0").await.unwrap().status(), 403);
    let deleted = envelope(delete(&admin, "1.2.0").await.unwrap()).await;
    assert_eq!(deleted["data"], json!({"success": true}));
    let missing = delete(&admin, "1.2.0").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(envelope(missing).await["error_code"], "release.not_found");
    let latest = envelope(app.get("/api/system/version/latest").await).await;
    assert_eq!(latest["data"]["version"], "1.1.9");
}

/// A release feed on loopback: the latest-release document, and `.sig` files (one behind a
/// redirect, as GitHub serves downloads).
async fn feed_server(doc: Value) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let doc = doc.clone();
        App::new()
            .route(
                "/releases/latest",
                web::get().to(move |req: actix_web::HttpRequest| {
                    let doc = doc.clone();
                    async move {
                        // GitHub refuses requests without a User-Agent.
                        if req.headers().get("user-agent").is_none() {
                            return HttpResponse::Forbidden().finish();
                        }
                        HttpResponse::Ok().json(doc)
                    }
                }),
            )
            .route(
                "/dl/{name}",
                web::get().to(|name: web::Path<String>| async move {
                    HttpResponse::Ok().body(format!("signature of {name}\n"))
                }),
            )
            .route(
                "/moved/{name}",
                web::get().to(|name: web::Path<String>| async move {
                    HttpResponse::Found()
                        .insert_header(("location", format!("/dl/{name}")))
                        .finish()
                }),
            )
            .route(
                "/gone",
                web::get().to(|| async { HttpResponse::NotFound().finish() }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    base
}

#[tokio::test]
async fn import_reads_the_latest_release_of_the_feed() {
    let doc = |base: &str| {
        json!({
            "tag_name": "desktop-v2.0.1",
            "body": "Imported notes.",
            "published_at": "2026-12-05T12:00:00Z",
            "assets": [
                {"name": "Sage_2.0.1_aarch64.dmg", "browser_download_url": format!("{base}/dl/Sage_2.0.1_aarch64.dmg")},
                {"name": "Sage_aarch64.app.tar.gz", "browser_download_url": format!("{base}/dl/Sage_aarch64.app.tar.gz")},
                {"name": "Sage_aarch64.app.tar.gz.sig", "browser_download_url": format!("{base}/moved/Sage_aarch64.app.tar.gz.sig")},
                {"name": "Sage_2.0.1_x64-setup.exe", "browser_download_url": format!("{base}/dl/Sage_2.0.1_x64-setup.exe")},
                {"name": "Sage_2.0.1_x64-setup.exe.sig", "browser_download_url": format!("{base}/dl/Sage_2.0.1_x64-setup.exe.sig")}
            ]
        })
    };
    // A first feed tells the port; the document names it (the server clones it per worker).
    let probe = feed_server(json!({})).await;
    let feed = feed_server(doc(&probe)).await;
    let app = TestApp::spawn_with(|c| c.releases_url = format!("{feed}/releases/latest")).await;
    let admin = app.admin().await;
    let (alice, _) = app.user("alice").await;

    let refused = alice
        .post(app.url("/api/system/version/import_github"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let imported = envelope(
        admin
            .post(app.url("/api/system/version/import_github"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(imported["data"]["version"], "2.0.1");
    assert_eq!(imported["data"]["release_notes"], "Imported notes.");
    assert_eq!(imported["data"]["pub_date"], "2026-12-05T12:00:00Z");
    let check = envelope(app.get("/api/system/version/check").await).await;
    assert_eq!(
        check["data"]["platforms"],
        json!({
            "darwin-aarch64": {"url": format!("{probe}/dl/Sage_aarch64.app.tar.gz"),
                               "signature": "signature of Sage_aarch64.app.tar.gz.sig"},
            "windows-x86_64": {"url": format!("{probe}/dl/Sage_2.0.1_x64-setup.exe"),
                               "signature": "signature of Sage_2.0.1_x64-setup.exe.sig"}
        })
    );
    // A second import replaces the same version instead of failing.
    let again = admin
        .post(app.url("/api/system/version/import_github"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let listed = envelope(
        admin
            .get(app.url("/api/system/version"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_feed_that_fails_or_is_not_allowed_answers_502() {
    let feed = feed_server(json!({"assets": []})).await;
    // A missing document, a document without a tag, and (with loopback not allowed) a refusal
    // by the outbound policy: each is a 502 naming the feed, and nothing is stored.
    for (url, allow_loopback) in [
        (format!("{feed}/gone"), true),
        (format!("{feed}/releases/latest"), true),
        (format!("{feed}/releases/latest"), false),
    ] {
        let app = TestApp::spawn_with(|c| {
            c.releases_url = url.clone();
            if !allow_loopback {
                c.outbound_allow.clear();
            }
        })
        .await;
        let admin = app.admin().await;
        let response = admin
            .post(app.url("/api/system/version/import_github"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502, "{url}");
        let body = envelope(response).await;
        assert_eq!(body["error_code"], "release.feed_failed", "{body}");
        let latest = envelope(app.get("/api/system/version/latest").await).await;
        assert!(latest["data"].is_null());
    }
}
