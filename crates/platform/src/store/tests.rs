//! One suite for both backends: in-process by default, Redis when `TEST_REDIS_URL` is set
//! (`.ci/run` runs the workspace once each way). Each test uses its own key prefix.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::*;

async fn stores() -> Stores {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let prefix = format!("sage-test:{}:", crate::ids::new_hex_id());
            let handle = crate::redis_conn::connect(&url, &prefix)
                .await
                .expect("TEST_REDIS_URL must answer");
            Stores::redis(&handle)
        }
        _ => Stores::in_memory(),
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn values_are_set_read_replaced_and_deleted() {
    let kv = stores().await.kv;
    assert_eq!(kv.get("a").await.unwrap(), None);
    kv.set("a", b"one", None).await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&b"one"[..]));
    kv.set("a", b"two", Some(MINUTE)).await.unwrap();
    assert_eq!(kv.get("a").await.unwrap().as_deref(), Some(&b"two"[..]));
    let ttl = kv.ttl("a").await.unwrap().unwrap();
    assert!(ttl <= MINUTE && ttl > Duration::from_secs(50), "{ttl:?}");
    assert!(kv.delete("a").await.unwrap());
    assert!(!kv.delete("a").await.unwrap());
    assert_eq!(kv.get("a").await.unwrap(), None);
    assert_eq!(kv.ttl("a").await.unwrap(), None);
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    let kv = stores().await.kv;
    kv.set("short", b"x", Some(Duration::from_millis(50)))
        .await
        .unwrap();
    kv.set("long", b"y", Some(MINUTE)).await.unwrap();
    // Waiting here is the behaviour under test (time passing), not synchronisation.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(kv.get("short").await.unwrap(), None);
    assert_eq!(kv.get("long").await.unwrap().as_deref(), Some(&b"y"[..]));
    assert!(kv.expire("long", Duration::from_millis(30)).await.unwrap());
    assert!(!kv.expire("missing", MINUTE).await.unwrap());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(kv.get("long").await.unwrap(), None);
}

#[tokio::test]
async fn exactly_one_concurrent_set_if_absent_wins() {
    let kv = stores().await.kv;
    let mut tasks = Vec::new();
    for i in 0..20u8 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            kv.set_if_absent("lock", &[i], Some(MINUTE)).await.unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let holder = kv.get("lock").await.unwrap().unwrap();
    assert!(
        !kv.delete_if_equals("lock", &[99]).await.unwrap(),
        "not the holder"
    );
    assert!(kv.get("lock").await.unwrap().is_some());
    assert!(kv.delete_if_equals("lock", &holder).await.unwrap());
    assert!(kv.set_if_absent("lock", b"next", None).await.unwrap());
}

#[tokio::test]
async fn take_returns_a_value_once() {
    let kv = stores().await.kv;
    kv.set("code", b"123456", Some(MINUTE)).await.unwrap();
    let kv2 = kv.clone();
    let (a, b) = tokio::join!(kv.take("code"), kv2.take("code"));
    let taken: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(taken, vec![b"123456".to_vec()]);
    assert_eq!(kv.get("code").await.unwrap(), None);
}

#[tokio::test]
async fn concurrent_increments_are_all_counted_in_a_fixed_window() {
    let kv = stores().await.kv;
    let first = kv.incr("hits", 1, MINUTE).await.unwrap();
    assert_eq!(first.value, 1);
    let window = first.ttl.unwrap();
    assert!(window <= MINUTE && window > Duration::from_secs(50));
    let tasks: Vec<_> = (0..49)
        .map(|_| {
            let kv = kv.clone();
            tokio::spawn(
                async move { kv.incr("hits", 1, Duration::from_secs(3600)).await.unwrap() },
            )
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let last = kv.incr("hits", 0, MINUTE).await.unwrap();
    assert_eq!(last.value, 50);
    assert!(
        last.ttl.unwrap() <= MINUTE,
        "later increments keep the first window"
    );
    assert_eq!(kv.get("hits").await.unwrap().as_deref(), Some(&b"50"[..]));
    kv.set("text", b"abc", None).await.unwrap();
    assert!(kv.incr("text", 1, MINUTE).await.is_err());
}

#[tokio::test]
async fn sets_index_members_and_keep_the_longest_ttl() {
    let kv = stores().await.kv;
    kv.set_add("user:1:sessions", "s2", MINUTE).await.unwrap();
    kv.set_add("user:1:sessions", "s1", Duration::from_secs(5))
        .await
        .unwrap();
    kv.set_add("user:1:sessions", "s1", MINUTE).await.unwrap();
    assert_eq!(
        kv.set_members("user:1:sessions").await.unwrap(),
        vec!["s1", "s2"]
    );
    assert!(kv.ttl("user:1:sessions").await.unwrap().unwrap() > Duration::from_secs(50));
    kv.set_remove("user:1:sessions", "s2").await.unwrap();
    assert_eq!(kv.set_members("user:1:sessions").await.unwrap(), vec!["s1"]);
    kv.set_remove("user:1:sessions", "s1").await.unwrap();
    assert!(kv.set_members("user:1:sessions").await.unwrap().is_empty());
    assert!(kv.set_members("nobody").await.unwrap().is_empty());
}

async fn collect(reader: LogReader) -> Vec<LogEntry> {
    reader.map(|r| r.unwrap()).collect().await
}

#[tokio::test]
async fn appends_get_increasing_indexes_and_replay_after_an_index() {
    let logs = stores().await.logs;
    assert_eq!(logs.info("run").await.unwrap(), None);
    assert!(logs.read("run", 0).await.unwrap().is_none());
    for (i, line) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(
            logs.append("run", line.as_bytes()).await.unwrap(),
            i as u64 + 1
        );
    }
    assert_eq!(
        logs.info("run").await.unwrap(),
        Some(LogInfo {
            len: 3,
            closed: false
        })
    );
    logs.close("run", MINUTE).await.unwrap();
    let entries = collect(logs.read("run", 1).await.unwrap().unwrap()).await;
    assert_eq!(
        entries,
        vec![
            LogEntry {
                index: 2,
                data: b"b".to_vec()
            },
            LogEntry {
                index: 3,
                data: b"c".to_vec()
            },
        ]
    );
    assert!(
        collect(logs.read("run", 3).await.unwrap().unwrap())
            .await
            .is_empty()
    );
    assert!(matches!(
        logs.append("run", b"late").await,
        Err(StoreError::Closed(_))
    ));
    assert_eq!(
        logs.info("run").await.unwrap(),
        Some(LogInfo {
            len: 3,
            closed: true
        })
    );
}

#[tokio::test]
async fn a_reader_follows_live_appends_without_gaps_until_close() {
    let logs = stores().await.logs;
    logs.append("live", b"0").await.unwrap();
    let reader = logs.read("live", 0).await.unwrap().unwrap();
    let consumer = tokio::spawn(collect(reader));
    let writer = {
        let logs = logs.clone();
        tokio::spawn(async move {
            for i in 1..200u32 {
                logs.append("live", i.to_string().as_bytes()).await.unwrap();
            }
            logs.close("live", MINUTE).await.unwrap();
        })
    };
    writer.await.unwrap();
    let entries = consumer.await.unwrap();
    assert_eq!(entries.len(), 200);
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.index, i as u64 + 1);
        assert_eq!(entry.data, i.to_string().into_bytes());
    }
}

#[tokio::test]
async fn several_readers_each_see_everything() {
    let logs: Arc<dyn LogStore> = stores().await.logs;
    logs.append("fan", b"first").await.unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let logs = logs.clone();
            tokio::spawn(async move { collect(logs.read("fan", 0).await.unwrap().unwrap()).await })
        })
        .collect();
    logs.append("fan", b"second").await.unwrap();
    logs.close("fan", MINUTE).await.unwrap();
    for r in readers {
        let entries = r.await.unwrap();
        let data: Vec<_> = entries.into_iter().map(|e| e.data).collect();
        assert_eq!(data, vec![b"first".to_vec(), b"second".to_vec()]);
    }
}

#[tokio::test]
async fn closed_logs_expire_and_deleted_logs_are_gone() {
    let logs = stores().await.logs;
    logs.append("gone", b"x").await.unwrap();
    logs.close("gone", Duration::from_millis(50)).await.unwrap();
    // Waiting is the behaviour under test: the closed log's retention elapsing.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(logs.info("gone").await.unwrap(), None);
    assert!(logs.read("gone", 0).await.unwrap().is_none());

    logs.append("del", b"x").await.unwrap();
    logs.delete("del").await.unwrap();
    assert_eq!(logs.info("del").await.unwrap(), None);
    assert_eq!(
        logs.append("del", b"again").await.unwrap(),
        1,
        "a new log starts over"
    );
}

#[tokio::test]
async fn closing_an_unwritten_log_ends_its_readers_at_once() {
    let logs = stores().await.logs;
    logs.close("empty", MINUTE).await.unwrap();
    assert_eq!(
        logs.info("empty").await.unwrap(),
        Some(LogInfo {
            len: 0,
            closed: true
        })
    );
    assert!(
        collect(logs.read("empty", 0).await.unwrap().unwrap())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_token_bucket_allows_its_burst_then_refuses_until_it_refills() {
    let kv = stores().await.kv;
    let rate = Rate {
        burst: 3,
        interval: Duration::from_millis(200),
    };
    for left in [2, 1, 0] {
        let taken = kv.take_tokens("bucket:a", rate, 1).await.unwrap();
        assert!(taken.allowed);
        assert_eq!(taken.remaining, left);
        assert_eq!(taken.retry_after, Duration::ZERO);
    }
    let refused = kv.take_tokens("bucket:a", rate, 1).await.unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= rate.interval,
        "{refused:?}"
    );
    assert!(
        !kv.take_tokens("bucket:a", rate, 2).await.unwrap().allowed,
        "a refused call takes nothing, so the bucket is still empty"
    );
    assert!(
        kv.take_tokens("bucket:b", rate, 3).await.unwrap().allowed,
        "buckets are per key"
    );
    // Waiting here is the behaviour under test (the bucket refilling), not synchronisation.
    tokio::time::sleep(refused.retry_after + Duration::from_millis(20)).await;
    let again = kv.take_tokens("bucket:a", rate, 1).await.unwrap();
    assert!(again.allowed, "{again:?}");
    assert!(!kv.take_tokens("bucket:a", rate, 1).await.unwrap().allowed);
    let ttl = kv.ttl("bucket:a").await.unwrap().unwrap();
    assert!(
        ttl <= Duration::from_millis(600),
        "expires once full: {ttl:?}"
    );
}

#[tokio::test]
async fn concurrent_takes_never_exceed_the_burst() {
    let kv = stores().await.kv;
    let rate = Rate {
        burst: 5,
        interval: Duration::from_secs(60),
    };
    let mut tasks = Vec::new();
    for _ in 0..30 {
        let kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            kv.take_tokens("bucket:shared", rate, 1)
                .await
                .unwrap()
                .allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5);
    let refused = kv.take_tokens("bucket:shared", rate, 1).await.unwrap();
    assert!(refused.retry_after > Duration::from_secs(50), "{refused:?}");
}
