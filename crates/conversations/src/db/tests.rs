//! Storage tests on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.

use chrono::Utc;
use platform::Actor;
use serde_json::json;

use super::SeaOrmConversations;
use crate::{ConversationError, Conversations, NewConversation, StoredMessage, UsageRecord};

async fn database(dir: &tempfile::TempDir) -> platform::db::Db {
    migration::test_database(dir.path()).await.unwrap()
}

fn message(id: &str, role: &str, content: &str) -> StoredMessage {
    StoredMessage {
        message_id: id.into(),
        role: role.into(),
        message_type: "do_subtask_result".into(),
        content: json!(content),
        reasoning_content: None,
        tool_calls: (role == "assistant").then(|| {
            json!([{"id": "c1", "type": "function",
            "function": {"name": "file_read", "arguments": "{}"}}])
        }),
        tool_call_id: None,
        agent_name: Some("SimpleAgent".into()),
        metadata: json!({}),
        created_at: Utc::now(),
    }
}

fn new(session: &str) -> NewConversation {
    NewConversation {
        session_id: session.into(),
        agent_id: "agent_1".into(),
        agent_name: "Helper".into(),
        title: "Hello".into(),
    }
}

#[tokio::test]
async fn messages_and_usage_round_trip_and_stay_with_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let store = SeaOrmConversations::new(database(&dir).await);
    let alice = Actor::new("alice", false);
    let bob = Actor::new("bob", false);
    let admin = Actor::new("root", true);

    let created = store.open(&alice, new("s1")).await.unwrap();
    assert_eq!(
        (created.user_id.as_str(), created.title.as_str()),
        ("alice", "Hello")
    );
    // A second open keeps the first row (title and owner never change here).
    let mut again = new("s1");
    again.title = "Other".into();
    assert_eq!(store.open(&alice, again).await.unwrap().title, "Hello");

    store
        .append(
            &alice,
            "s1",
            vec![
                message("m1", "user", "hi"),
                message("m2", "assistant", "yo"),
            ],
        )
        .await
        .unwrap();
    store
        .append(&alice, "s1", vec![message("m3", "tool", "{\"ok\": true}")])
        .await
        .unwrap();
    let stored = store.messages(&alice, "s1").await.unwrap();
    let ids: Vec<_> = stored.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    assert_eq!(stored[1].content, json!("yo"));
    assert_eq!(stored[1].tool_calls.as_ref().unwrap()[0]["id"], "c1");

    let usage = UsageRecord {
        session_id: "s1".into(),
        user_id: "ignored".into(),
        agent_id: "agent_1".into(),
        request_source: "api/web-stream".into(),
        model: "m".into(),
        input_tokens: 10,
        output_tokens: 3,
        total_tokens: 13,
        cached_tokens: 0,
        reasoning_tokens: 1,
        step_count: 2,
        step_model_names: vec!["m".into(), "m".into()],
        started_at: Utc::now(),
        finished_at: Utc::now(),
    };
    store.record_usage(&alice, usage.clone()).await.unwrap();
    let rows = store.usage(&alice, "s1").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].user_id.as_str(), rows[0].total_tokens),
        ("alice", 13)
    );
    assert_eq!(rows[0].step_model_names, vec!["m", "m"]);

    // Bob sees nothing of it and cannot take the session id over.
    for result in [
        store.get(&bob, "s1").await.map(|_| ()),
        store.messages(&bob, "s1").await.map(|_| ()),
        store
            .append(&bob, "s1", vec![message("x", "user", "x")])
            .await,
        store.open(&bob, new("s1")).await.map(|_| ()),
        store.record_usage(&bob, usage).await,
        store.get(&alice, "../s1").await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(ConversationError::NotFound)),
            "{result:?}"
        );
    }
    assert_eq!(store.messages(&alice, "s1").await.unwrap().len(), 3);
    assert_eq!(store.get(&admin, "s1").await.unwrap().user_id, "alice");
}

#[tokio::test]
async fn concurrent_appends_to_different_conversations_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SeaOrmConversations::new(database(&dir).await));
    let alice = Actor::new("alice", false);
    for i in 0..8 {
        store.open(&alice, new(&format!("c{i}"))).await.unwrap();
    }
    // Eight runs finishing steps at once, on as many pool connections.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (store, alice) = (store.clone(), alice.clone());
        set.spawn(async move {
            for step in 0..5 {
                let id = format!("c{i}-{step}");
                store
                    .append(&alice, &format!("c{i}"), vec![message(&id, "user", "step")])
                    .await?;
            }
            Ok::<_, ConversationError>(())
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap().unwrap();
    }
    for i in 0..8 {
        let stored = store.messages(&alice, &format!("c{i}")).await.unwrap();
        assert_eq!(stored.len(), 5, "c{i}");
        assert_eq!(
            store
                .get(&alice, &format!("c{i}"))
                .await
                .unwrap()
                .message_count,
            5
        );
    }
}

#[tokio::test]
async fn list_totals_follow_opens_and_deletes_for_owners_filters_and_admins() {
    use crate::{ListQuery, SortBy};
    let dir = tempfile::tempdir().unwrap();
    let store = SeaOrmConversations::new(database(&dir).await);
    let alice = Actor::new("alice", false);
    let bob = Actor::new("bob", false);
    let admin = Actor::new("root", true);
    let query = |search: Option<&str>, user: Option<&str>| ListQuery {
        page: 1,
        page_size: 2,
        search: search.map(str::to_owned),
        agent_id: None,
        user_id: user.map(str::to_owned),
        sort_by: SortBy::Date,
    };
    let total = |actor: Actor, search: Option<&'static str>, user: Option<&'static str>| {
        let store = &store;
        async move { store.list(&actor, query(search, user)).await.unwrap().total }
    };
    assert_eq!(total(alice.clone(), None, None).await, 0);
    for session in ["a1", "a2", "a3"] {
        store.open(&alice, new(session)).await.unwrap();
    }
    // Opening an existing conversation again (the next run) counts nothing.
    store.open(&alice, new("a1")).await.unwrap();
    // Someone else's session id is not opened for bob and not counted for him.
    assert!(store.open(&bob, new("a2")).await.is_err());
    store.open(&bob, new("b1")).await.unwrap();

    let page = store.list(&alice, query(None, None)).await.unwrap();
    assert_eq!((page.items.len(), page.total), (2, 3));
    assert_eq!(total(alice.clone(), Some("A3"), None).await, 1);
    assert_eq!(total(bob.clone(), None, None).await, 1);
    // A non-admin's user_id is ignored; an admin's selects.
    assert_eq!(total(bob.clone(), None, Some("alice")).await, 1);
    assert_eq!(total(admin.clone(), None, Some("alice")).await, 3);
    assert_eq!(total(admin.clone(), None, None).await, 4);

    store.delete(&alice, "a2").await.unwrap();
    assert!(store.delete(&alice, "a2").await.is_err());
    assert!(store.delete(&bob, "a1").await.is_err());
    assert_eq!(total(alice.clone(), None, None).await, 2);
    assert_eq!(total(admin.clone(), None, Some("alice")).await, 2);
    assert_eq!(total(bob, None, None).await, 1);
}
