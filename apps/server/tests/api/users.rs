//! User administration, options and per-user configuration.

use serde_json::json;

use crate::helpers::{TestApp, envelope};

#[tokio::test]
async fn admins_list_users_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for name in ["u_one", "u_two", "u_three"] {
        let r = app
            .post_json(
                &admin,
                "/api/user/add",
                json!({"username": name, "password": format!("{name}-Secret-9")}),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let page = envelope(
        admin
            .get(app.url("/api/user/list?page=1&page_size=2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["data"]["total"], 4);
    let names: Vec<_> = page["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["u_three", "u_two"]);
    let rest = envelope(
        admin
            .get(app.url("/api/user/list?page=2&page_size=2"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest["data"]["items"][1]["username"], "admin");
    assert!(rest["data"]["items"][0]["created_at"].is_string());
    let bad = admin
        .get(app.url("/api/user/list?page_size=1000"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let bad = admin
        .get(app.url("/api/user/list?page=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    // Found by schemathesis: a page number past i64 used to crash the SQLite driver.
    let huge = admin
        .get(app.url("/api/user/list?page=9223372036854775808"))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 422);
}

#[tokio::test]
async fn non_admins_cannot_administer_users() {
    let app = TestApp::spawn().await;
    let (user, user_id) = app.user("mallory").await;
    let list = user.get(app.url("/api/user/list")).send().await.unwrap();
    assert_eq!(list.status(), 403);
    let add = app
        .post_json(
            &user,
            "/api/user/add",
            json!({"username": "sneaky", "password": "sneaky-Secret-9", "role": "admin"}),
        )
        .await;
    assert_eq!(add.status(), 403);
    let delete = app
        .post_json(&user, "/api/user/delete", json!({"user_id": user_id}))
        .await;
    assert_eq!(delete.status(), 403);
    let options = envelope(user.get(app.url("/api/user/options")).send().await.unwrap()).await;
    let labels: Vec<_> = options["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].clone())
        .collect();
    assert_eq!(
        labels,
        vec![json!("mallory")],
        "a user sees only themselves"
    );
}

#[tokio::test]
async fn adding_users_validates_and_refuses_duplicates() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ok = envelope(
        app.post_json(&admin, "/api/user/add", json!({"username": "olga", "password": "olga-Secret-9", "email": "olga@example.com", "role": "admin"}))
            .await,
    )
    .await;
    assert_eq!(ok["code"], 200);
    let olga = app.new_client();
    let login = envelope(app.login(&olga, "olga", "olga-Secret-9").await).await;
    assert_eq!(login["code"], 200);
    let session = envelope(olga.get(app.url("/api/auth/session")).send().await.unwrap()).await;
    assert_eq!(session["data"]["user"]["role"], "admin");

    let cases = [
        (
            json!({"username": "OLGA", "password": "other-Secret-9"}),
            409,
            "user.username_taken",
        ),
        (
            json!({"username": "olga2", "password": "other-Secret-9", "email": "OLGA@example.com"}),
            409,
            "user.email_taken",
        ),
        (
            json!({"username": "pat", "password": "short"}),
            422,
            "request.validation",
        ),
        (
            json!({"username": "pat", "password": "pat-Secret-9", "email": "nope"}),
            422,
            "request.validation",
        ),
        (
            json!({"username": "pat", "password": "pat-Secret-9", "role": "root"}),
            422,
            "request.validation",
        ),
        (
            json!({"username": "a b", "password": "pat-Secret-9"}),
            422,
            "request.validation",
        ),
    ];
    for (body, status, key) in cases {
        let response = app.post_json(&admin, "/api/user/add", body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(envelope(response).await["error_code"], key, "{body}");
    }
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_but_never_the_last_admin() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (victim, victim_id) = app.user("quinn").await;
    let me = envelope(
        admin
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let admin_id = me["data"]["user"]["userid"].as_str().unwrap().to_owned();

    let last = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": admin_id}))
        .await;
    assert_eq!(last.status(), 409);
    assert_eq!(envelope(last).await["error_code"], "user.last_admin");
    let unknown = app
        .post_json(
            &admin,
            "/api/user/delete",
            json!({"user_id": "0".repeat(32)}),
        )
        .await;
    assert_eq!(unknown.status(), 404);

    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": victim_id}))
        .await;
    assert_eq!(deleted.status(), 200);
    let after = victim
        .get(app.url("/api/auth/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert_eq!(
        app.login(&app.new_client(), "quinn", "quinn-Secret-9")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn user_config_is_private_and_shallow_merged() {
    let app = TestApp::spawn().await;
    let (alice, _) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let empty = envelope(alice.get(app.url("/api/user/config")).send().await.unwrap()).await;
    assert_eq!(empty["data"]["config"], json!({}));
    let first = envelope(
        app.post_json(
            &alice,
            "/api/user/config",
            json!({"config": {"theme": "dark", "nested": {"a": 1}}}),
        )
        .await,
    )
    .await;
    assert_eq!(first["data"]["config"]["theme"], "dark");
    let merged = envelope(
        app.post_json(
            &alice,
            "/api/user/config",
            json!({"config": {"nested": {"b": 2}}, "user_id": "someone"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        merged["data"]["config"],
        json!({"theme": "dark", "nested": {"b": 2}})
    );
    let bobs = envelope(bob.get(app.url("/api/user/config")).send().await.unwrap()).await;
    assert_eq!(
        bobs["data"]["config"],
        json!({}),
        "one user's config never leaks to another"
    );
    let not_object = app
        .post_json(&alice, "/api/user/config", json!({"config": [1, 2]}))
        .await;
    assert_eq!(not_object.status(), 422);
    let kept = envelope(alice.get(app.url("/api/user/config")).send().await.unwrap()).await;
    assert_eq!(
        kept["data"]["config"]["theme"], "dark",
        "a refused update loses nothing"
    );
}

#[tokio::test]
async fn the_profile_form_changes_nickname_avatar_email_and_language() {
    let app = TestApp::spawn().await;
    let (client, _) = app.user("iris").await;
    let put = |body: serde_json::Value| {
        let client = client.clone();
        let url = app.url("/api/user/profile");
        async move { client.put(url).json(&body).send().await.unwrap() }
    };
    let changed = envelope(
        put(
            json!({"nickname": "Iris W.", "avatar": "https://img.example.com/i.png",
                   "email": "iris.new@example.com", "language": "zh-CN"}),
        )
        .await,
    )
    .await;
    assert_eq!(changed["code"], 200);
    assert_eq!(changed["data"]["nickname"], "Iris W.");
    assert_eq!(changed["data"]["email"], "iris.new@example.com");
    assert_eq!(changed["data"]["avatar"], "https://img.example.com/i.png");
    assert_eq!(changed["data"]["language"], "zh-CN");

    // Empty fields mean "unchanged", as the web UI sends them.
    let same =
        envelope(put(json!({"nickname": "", "avatar": null, "email": "", "language": ""})).await)
            .await;
    assert_eq!(same["data"]["nickname"], "Iris W.");
    assert_eq!(same["data"]["email"], "iris.new@example.com");
    let session = envelope(
        client
            .get(app.url("/api/auth/session"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(session["data"]["user"]["nickname"], "Iris W.");
    assert_eq!(
        session["data"]["user"]["avatar"],
        "https://img.example.com/i.png"
    );

    // Another account's address is taken; bad values are refused with the field named.
    let taken = put(json!({"email": "admin-not-here@example.com"})).await;
    assert_eq!(taken.status(), 200);
    let (_, _) = app.user("jude").await;
    let taken = put(json!({"email": "jude@example.com"})).await;
    assert_eq!(taken.status(), 409);
    for (body, field) in [
        (json!({"nickname": "a\u{0}b"}), "nickname"),
        (json!({"email": "not-an-address"}), "email"),
        (json!({"language": "en us!"}), "language"),
    ] {
        let refused = put(body).await;
        assert_eq!(refused.status(), 422);
        assert!(envelope(refused).await.to_string().contains(field));
    }
    // Anonymous callers are stopped at the gate.
    let anonymous = app
        .new_client()
        .put(app.url("/api/user/profile"))
        .json(&json!({"nickname": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// Rows of `table` whose `column` is `value`, counted straight in the server's database.
async fn count(db: &sea_orm::DatabaseConnection, table: &str, column: &str, value: &str) -> i64 {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    use sea_orm::{ConnectionTrait, QueryResult};
    let query = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new(column)).eq(value))
        .to_owned();
    let row: QueryResult = db.query_one(&query).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn a_deleted_users_data_left_behind_by_a_stopped_process_is_removed_at_the_next_start() {
    use sea_orm::ConnectionTrait;
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};

    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let db = sea_orm::Database::connect(app.database_url.as_str())
        .await
        .unwrap();
    let agent = |name: &str| json!({"name": name, "agentMode": "simple", "maxLoopCount": 3});

    // A normal deletion removes the user's data and leaves nothing pending.
    let (quinn, quinn_id) = app.user("quinn").await;
    let created = app.post_json(&quinn, "/api/agent/create", agent("Q")).await;
    assert_eq!(created.status(), 200);
    assert_eq!(count(&db, "agents", "user_id", &quinn_id).await, 1);
    let deleted = app
        .post_json(&admin, "/api/user/delete", json!({"user_id": quinn_id}))
        .await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(count(&db, "agents", "user_id", &quinn_id).await, 0);
    assert_eq!(count(&db, "user_cleanups", "user_id", &quinn_id).await, 0);

    // A process that stopped after deleting Rob but before his data went: the user row is
    // gone and the clean-up is still recorded as pending, his agents are still there.
    let (rob, rob_id) = app.user("rob").await;
    for name in ["R1", "R2"] {
        let created = app.post_json(&rob, "/api/agent/create", agent(name)).await;
        assert_eq!(created.status(), 200);
    }
    let delete_user = Query::delete()
        .from_table(Alias::new("users"))
        .and_where(Expr::col(Alias::new("id")).eq(rob_id.as_str()))
        .to_owned();
    let pending = Query::insert()
        .into_table(Alias::new("user_cleanups"))
        .columns([Alias::new("user_id"), Alias::new("deleted_at")])
        .values_panic([rob_id.as_str().into(), chrono::Utc::now().into()])
        .to_owned();
    db.execute(&delete_user).await.unwrap();
    db.execute(&pending).await.unwrap();
    assert_eq!(count(&db, "agents", "user_id", &rob_id).await, 2);

    // The next start's workers finish it.
    let _restarted = app.another_server().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count(&db, "user_cleanups", "user_id", &rob_id).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pending clean-up was not taken"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count(&db, "agents", "user_id", &rob_id).await, 0);
}
