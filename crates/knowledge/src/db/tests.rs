//! Storage, ingestion and retrieval on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is
//! set.

use std::path::PathBuf;
use std::sync::Arc;

use platform::Actor;
use platform::objects::LocalObjects;
use platform::pagination::PageRequest;

use super::{IngestSettings, SeaOrmKnowledge};
use crate::{
    DocQuery, DocStatus, KnowledgeBaseQuery, KnowledgeBaseUpdate, KnowledgeBases, KnowledgeError,
    NewFile, NewKnowledgeBase,
};

async fn service(dir: &tempfile::TempDir) -> SeaOrmKnowledge {
    let db = migration::test_database(dir.path()).await.unwrap();
    SeaOrmKnowledge::new(
        db,
        Arc::new(LocalObjects::new(dir.path().join("objects"))),
        &dir.path().join("index"),
        IngestSettings {
            max_per_user: 3,
            max_docs_per_user: 4,
            ..IngestSettings::default()
        },
    )
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> NewFile {
    let path: PathBuf = dir
        .path()
        .join(format!("upload-{}", platform::ids::new_hex_id()));
    std::fs::write(&path, text).unwrap();
    NewFile {
        name: name.into(),
        path,
        size: text.len() as u64,
    }
}

fn new_base(name: &str, kb_type: &str) -> NewKnowledgeBase {
    NewKnowledgeBase {
        name: name.into(),
        kb_type: kb_type.into(),
        intro: Some("docs".into()),
        language: None,
    }
}

async fn drain(kb: &SeaOrmKnowledge) {
    while kb.run_one().await.unwrap() {}
}

#[tokio::test]
async fn documents_are_ingested_retrieved_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let kb = service(&dir).await;
    let alice = Actor::new("alice", false);
    let base = kb
        .create(&alice, new_base("Product", "document"))
        .await
        .unwrap();
    assert_eq!(base.setting["kdbAttach"]["language"], "zh-cn");
    let (_, task) = kb
        .add_files(
            &alice,
            &base.id,
            vec![
                file(
                    &dir,
                    "login.md",
                    "# Login\n\nSign in with a passkey or a one-time code.",
                ),
                file(&dir, "billing.txt", "Invoices are sent monthly."),
                file(&dir, "empty.txt", "   "),
            ],
        )
        .await
        .unwrap();
    let (_, progress) = kb.task_progress(&alice, &base.id, &task).await.unwrap();
    assert_eq!((progress.waiting, progress.total), (3, 3));
    drain(&kb).await;
    let (_, progress) = kb.task_progress(&alice, &base.id, &task).await.unwrap();
    assert_eq!((progress.success, progress.fail, progress.total), (2, 1, 3));
    assert_eq!(progress.percent(), 66);

    let (_, docs) = kb
        .docs(
            &alice,
            DocQuery {
                kdb_id: base.id.clone(),
                statuses: vec![DocStatus::Failed],
                ..DocQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(docs.total, 1);
    assert_eq!(docs.items[0].name, "empty.txt");
    assert_eq!(
        docs.items[0].error.as_deref(),
        Some("no readable text was found in the document")
    );

    let (_, hits) = kb
        .retrieve(&alice, &base.id, "how do I sign in?", 5)
        .await
        .unwrap();
    assert_eq!(hits[0].path, "login.md");
    assert!(hits[0].content.contains("passkey"), "{hits:?}");

    // Deleting the document takes its passages out of retrieval.
    let login = hits[0].doc_id.clone();
    kb.delete_doc(&alice, &login).await.unwrap();
    let (_, hits) = kb.retrieve(&alice, &base.id, "passkey", 5).await.unwrap();
    assert!(hits.is_empty(), "{hits:?}");
    assert!(matches!(
        kb.doc(&alice, &login).await,
        Err(KnowledgeError::DocNotFound)
    ));

    // Bob sees none of it; an admin sees all.
    let bob = Actor::new("bob", false);
    assert!(matches!(
        kb.get(&bob, &base.id).await,
        Err(KnowledgeError::NotFound)
    ));
    assert!(matches!(
        kb.retrieve(&bob, &base.id, "invoices", 5).await,
        Err(KnowledgeError::NotFound)
    ));
    assert_eq!(
        kb.list(&bob, KnowledgeBaseQuery::default())
            .await
            .unwrap()
            .total,
        0
    );
    let all = kb
        .list(&Actor::new("root", true), KnowledgeBaseQuery::default())
        .await
        .unwrap();
    assert_eq!((all.total, all.items[0].doc_count), (1, 2));

    // Clearing removes documents, chunks and files.
    kb.clear(&alice, &base.id).await.unwrap();
    let (_, hits) = kb.retrieve(&alice, &base.id, "invoices", 5).await.unwrap();
    assert!(hits.is_empty());
    let left = dir.path().join("objects/knowledge").join(&base.id);
    assert!(!left.exists() || std::fs::read_dir(&left).unwrap().next().is_none());
    kb.delete(&alice, &base.id).await.unwrap();
    assert!(matches!(
        kb.get(&alice, &base.id).await,
        Err(KnowledgeError::NotFound)
    ));
}

#[tokio::test]
async fn bases_are_validated_updated_listed_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let kb = service(&dir).await;
    let alice = Actor::new("alice", false);
    assert!(matches!(
        kb.create(&alice, new_base("  ", "document")).await,
        Err(KnowledgeError::Invalid { field: "name", .. })
    ));
    let a = kb
        .create(&alice, new_base("Alpha 50%", "qa"))
        .await
        .unwrap();
    kb.create(&alice, new_base("Beta", "document"))
        .await
        .unwrap();
    kb.create(&alice, new_base("Gamma", "")).await.unwrap();
    assert!(matches!(
        kb.create(&alice, new_base("Delta", "document")).await,
        Err(KnowledgeError::QuotaExceeded { limit: 3 })
    ));
    let found = kb
        .list(
            &alice,
            KnowledgeBaseQuery {
                name: Some("50%".into()),
                ..KnowledgeBaseQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(found.total, 1);
    let docs_only = kb
        .list(
            &alice,
            KnowledgeBaseQuery {
                kb_type: Some("document".into()),
                page: PageRequest::new(Some(1), Some(1)).unwrap(),
                ..KnowledgeBaseQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((docs_only.total, docs_only.items.len()), (2, 1));

    let updated = kb
        .update(
            &alice,
            &a.id,
            KnowledgeBaseUpdate {
                name: Some(String::new()),
                intro: Some("FAQ".into()),
                setting: Some(serde_json::json!({"kdbAttach": {"language": "en"}})),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.intro.as_str()),
        ("Alpha 50%", "FAQ")
    );
    assert_eq!(updated.setting["kdbAttach"]["language"], "en");

    // A QA base takes question/answer tables only.
    assert!(matches!(
        kb.add_files(&alice, &a.id, vec![file(&dir, "notes.md", "# hi")])
            .await,
        Err(KnowledgeError::Invalid { field: "files", .. })
    ));
    let (_, task) = kb
        .add_files(
            &alice,
            &a.id,
            vec![file(&dir, "faq.csv", "How do I reset my password?,Use the reset link\nWhere are invoices?,Under billing\n")],
        )
        .await
        .unwrap();
    drain(&kb).await;
    let (_, progress) = kb.task_progress(&alice, &a.id, &task).await.unwrap();
    assert_eq!(progress.success, 1);
    let (_, hits) = kb
        .retrieve(&alice, &a.id, "reset password", 1)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].content.contains("reset link"));
    assert!(matches!(
        kb.retrieve(&alice, &a.id, "x", 51).await,
        Err(KnowledgeError::Invalid { field: "top_k", .. })
    ));

    // Redoing puts documents back in the queue; they are processed again.
    kb.redo_task(&alice, &a.id, &task).await.unwrap();
    let (_, progress) = kb.task_progress(&alice, &a.id, &task).await.unwrap();
    assert_eq!(progress.waiting, 1);
    drain(&kb).await;
    let (_, hits) = kb.retrieve(&alice, &a.id, "invoices", 5).await.unwrap();
    assert!(hits.iter().any(|h| h.content.contains("Under billing")));

    // A deleted user's bases go.
    platform::UserCleanup::user_deleted(&kb, "alice")
        .await
        .unwrap();
    assert_eq!(
        kb.list(&Actor::new("root", true), KnowledgeBaseQuery::default())
            .await
            .unwrap()
            .total,
        0
    );
}

#[tokio::test]
async fn a_second_process_sees_what_the_first_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let kb = service(&dir).await;
    let alice = Actor::new("alice", false);
    let base = kb
        .create(&alice, new_base("Shared", "document"))
        .await
        .unwrap();
    kb.add_files(
        &alice,
        &base.id,
        vec![file(&dir, "a.txt", "The quick brown fox.")],
    )
    .await
    .unwrap();
    drain(&kb).await;
    let (_, hits) = kb.retrieve(&alice, &base.id, "fox", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    // Another replica has its own index directory; it builds it from the table.
    let other = SeaOrmKnowledge::new(
        kb.db.clone(),
        kb.objects.clone(),
        &dir.path().join("replica-2"),
        IngestSettings::default(),
    );
    let (_, hits) = other.retrieve(&alice, &base.id, "brown", 5).await.unwrap();
    assert_eq!(hits.len(), 1);
    // A change made by the first shows up in the second's next search.
    kb.add_files(&alice, &base.id, vec![file(&dir, "b.txt", "A brown bear.")])
        .await
        .unwrap();
    drain(&kb).await;
    let (_, hits) = other.retrieve(&alice, &base.id, "brown", 5).await.unwrap();
    assert_eq!(hits.len(), 2);
}

#[tokio::test]
async fn a_redo_during_processing_wins_over_the_old_claim() {
    let dir = tempfile::tempdir().unwrap();
    let kb = service(&dir).await;
    let alice = Actor::new("alice", false);
    let base = kb
        .create(&alice, new_base("Race", "document"))
        .await
        .unwrap();
    kb.add_files(&alice, &base.id, vec![file(&dir, "a.txt", "First text.")])
        .await
        .unwrap();
    // A worker claims the document; the owner redoes it; a second worker claims it again.
    let first = kb.claim().await.unwrap().unwrap();
    kb.redo_doc(&alice, &first.id).await.unwrap();
    let second = kb.claim().await.unwrap().unwrap();
    assert_eq!((first.attempts, second.attempts), (1, 1));
    // The first worker's late result is dropped; the second one's stands.
    let late = kb.process(&first).await;
    kb.finish(&first, late).await.unwrap();
    let doc = kb.doc(&alice, &first.id).await.unwrap();
    assert_eq!(doc.status, DocStatus::Processing);
    let outcome = kb.process(&second).await;
    kb.finish(&second, outcome).await.unwrap();
    assert_eq!(
        kb.doc(&alice, &first.id).await.unwrap().status,
        DocStatus::Done
    );
}

#[tokio::test]
async fn a_claim_handed_back_at_shutdown_is_due_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let kb = service(&dir).await;
    let alice = Actor::new("alice", false);
    let base = kb
        .create(&alice, new_base("Stop", "document"))
        .await
        .unwrap();
    kb.add_files(&alice, &base.id, vec![file(&dir, "a.txt", "Some text.")])
        .await
        .unwrap();
    let claimed = kb.claim().await.unwrap().unwrap();
    assert!(kb.claim().await.unwrap().is_none());
    kb.hand_back(&claimed).await.unwrap();
    let doc = kb.doc(&alice, &claimed.id).await.unwrap();
    assert_eq!((doc.status, doc.attempts), (DocStatus::Pending, 0));
    // Another worker takes it at once, not after the lease.
    let again = kb.claim().await.unwrap().unwrap();
    assert_eq!(again.id, claimed.id);
    // A hand-back of the old claim no longer touches the new one.
    kb.hand_back(&claimed).await.unwrap();
    assert_eq!(
        kb.doc(&alice, &claimed.id).await.unwrap().status,
        DocStatus::Processing
    );
}

#[tokio::test]
async fn documents_are_limited_per_owner() {
    let dir = tempfile::tempdir().unwrap();
    let kb = service(&dir).await;
    let alice = Actor::new("alice", false);
    let a = kb.create(&alice, new_base("A", "document")).await.unwrap();
    let b = kb.create(&alice, new_base("B", "document")).await.unwrap();
    let files = |n: usize| {
        (0..n)
            .map(|i| file(&dir, &format!("{i}.txt"), "text"))
            .collect()
    };
    kb.add_files(&alice, &a.id, files(3)).await.unwrap();
    // The limit (4) counts every base of the owner; a refused upload stores nothing.
    assert!(matches!(
        kb.add_files(&alice, &b.id, files(2)).await,
        Err(KnowledgeError::DocQuotaExceeded { limit: 4 })
    ));
    let (_, docs) = kb
        .docs(
            &alice,
            DocQuery {
                kdb_id: b.id.clone(),
                ..DocQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(docs.total, 0);
    kb.add_files(&alice, &b.id, files(1)).await.unwrap();
}
