//! Seeds a server's database for `cargo xtask bench conversations` through the storage service
//! itself (the rows are exactly what runs write): the first user of `SAGE_BENCH_USERS` (a comma
//! list of user ids) gets `SAGE_BENCH_CONVERSATIONS` conversations (default 10,000) of 20
//! messages and one of 200 messages; every other user gets `SAGE_BENCH_OTHER_CONVERSATIONS`
//! (default 20). The database is `SAGE_BENCH_DATABASE_URL`, already migrated by the server.
//! Prints one JSON line: the 200-message conversation's session id.

use chrono::Utc;
use conversations::{Conversations, NewConversation, SeaOrmConversations, StoredMessage};
use platform::Actor;
use sea_orm::ConnectionTrait;
use serde_json::json;

const TOPICS: [&str; 8] = [
    "Quarterly report",
    "Travel plans",
    "Rust lifetimes",
    "Garden layout",
    "Budget review",
    "Recipe ideas",
    "Release notes",
    "Interview prep",
];

fn message(position: usize, session: &str) -> StoredMessage {
    let user = position.is_multiple_of(2);
    StoredMessage {
        message_id: format!("{session}-{position}"),
        role: if user { "user" } else { "assistant" }.into(),
        message_type: if user { "normal" } else { "do_subtask_result" }.into(),
        content: json!(if user {
            format!("Question {position}: could you look at this again and summarise it?")
        } else {
            format!(
                "Answer {position}: here is a summary in a few sentences, with the main points \
                 first and the details after them, as a real answer would have."
            )
        }),
        reasoning_content: None,
        tool_calls: None,
        tool_call_id: None,
        agent_name: (!user).then(|| "SimpleAgent".into()),
        metadata: json!({}),
        created_at: Utc::now(),
    }
}

async fn seed(
    store: &SeaOrmConversations,
    user: &str,
    index: usize,
    messages: usize,
) -> anyhow::Result<String> {
    let actor = Actor::new(user, false);
    let session = format!("{}-{index:06}", &user[..user.len().min(16)]);
    store
        .open(
            &actor,
            NewConversation {
                session_id: session.clone(),
                agent_id: format!("agent_{}", index % 5),
                agent_name: "Helper".into(),
                title: format!("{} {index}", TOPICS[index % TOPICS.len()]),
            },
        )
        .await?;
    let batch: Vec<StoredMessage> = (0..messages).map(|p| message(p, &session)).collect();
    store.append(&actor, &session, batch).await?;
    Ok(session)
}

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("SAGE_BENCH_DATABASE_URL")?;
    let users: Vec<String> = std::env::var("SAGE_BENCH_USERS")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let heavy = users.first().ok_or_else(|| anyhow::anyhow!("no users"))?;
    let db = platform::db::connect_url(&url).await?;
    let store = std::sync::Arc::new(SeaOrmConversations::new(db));
    // Writers in parallel on PostgreSQL; one at a time on SQLite, where a second connection's
    // read-then-write transaction would fail with SQLITE_BUSY_SNAPSHOT.
    let parallel = if url.starts_with("sqlite:") { 1 } else { 8 };
    let mut jobs: Vec<(String, usize, usize)> = (0..number("SAGE_BENCH_CONVERSATIONS", 10_000))
        .map(|i| (heavy.clone(), i, 20))
        .collect();
    for user in &users[1..] {
        for i in 0..number("SAGE_BENCH_OTHER_CONVERSATIONS", 20) {
            jobs.push((user.clone(), i, 20));
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for (n, (user, index, messages)) in jobs.into_iter().enumerate() {
        if set.len() >= parallel
            && let Some(done) = set.join_next().await
        {
            done??;
        }
        let store = store.clone();
        set.spawn(async move { seed(&store, &user, index, messages).await });
        if n.is_multiple_of(2000) {
            eprintln!("bench_seed: {n} conversations");
        }
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    // Last, so it is the most recently updated.
    let long = seed(&store, heavy, 999_999, 200).await?;
    // Settled now, as a database in service would be: on PostgreSQL what autovacuum does
    // later (the open-then-append writes left a dead version of every row, in every index),
    // on SQLite the write-ahead log folded back into the file, and statistics on both.
    // PostgreSQL then writes the vacuumed pages out at once (`CHECKPOINT`) instead of in the
    // middle of the first measurement. VACUUM runs outside a transaction: one statement each.
    let settle: &[&str] = if url.starts_with("sqlite:") {
        &["PRAGMA wal_checkpoint(TRUNCATE)", "ANALYZE"]
    } else {
        &["VACUUM ANALYZE", "CHECKPOINT"]
    };
    let db = platform::db::connect_url(&url).await?;
    for statement in settle {
        db.execute_unprepared(statement).await?;
    }
    println!("{}", json!({"long_session": long}));
    Ok(())
}
