//! Storage on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set. The feed is not
//! reached here (its route test runs against a feed served on loopback).

use std::sync::Arc;

use platform::Actor;
use platform::outbound::OutboundPolicy;

use super::SeaOrmReleases;
use crate::{Artifact, NewRelease, ReleaseError, Releases};

async fn releases(dir: &tempfile::TempDir) -> SeaOrmReleases {
    let db = migration::test_database(dir.path()).await.unwrap();
    let feed = crate::Feed::new(
        "http://127.0.0.1:9/unused",
        Arc::new(OutboundPolicy::default()),
    )
    .unwrap();
    SeaOrmReleases::new(db, feed)
}

fn new(version: &str) -> NewRelease {
    NewRelease {
        version: version.into(),
        release_notes: format!("notes of {version}"),
        artifacts: vec![Artifact {
            platform: "linux-x86_64".into(),
            installer_url: Some(format!("https://dl.example/{version}.AppImage")),
            updater_url: None,
            updater_signature: None,
        }],
        ..NewRelease::default()
    }
}

#[tokio::test]
async fn admins_keep_versions_in_version_order() {
    let dir = tempfile::tempdir().unwrap();
    let releases = releases(&dir).await;
    let admin = Actor::new("root", true);
    let user = Actor::new("alice", false);

    assert!(releases.latest().await.unwrap().is_none());
    for v in ["1.2.0", "v1.10.0", "1.10.0-beta.1", "0.9.0"] {
        releases.create(&admin, new(v)).await.unwrap();
    }
    let listed: Vec<String> = releases
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(listed, ["1.10.0", "1.10.0-beta.1", "1.2.0", "0.9.0"]);
    let latest = releases.latest().await.unwrap().unwrap();
    assert_eq!(latest.version, "1.10.0");
    assert_eq!(latest.release_notes, "notes of v1.10.0");
    assert_eq!(latest.artifacts.len(), 1);

    assert!(matches!(
        releases.create(&admin, new("1.2.0")).await,
        Err(ReleaseError::Exists)
    ));
    assert!(matches!(
        releases.create(&user, new("2.0.0")).await,
        Err(ReleaseError::Forbidden)
    ));
    assert!(matches!(
        releases.delete(&user, "1.2.0").await,
        Err(ReleaseError::Forbidden)
    ));
    releases.delete(&admin, "v1.10.0").await.unwrap();
    assert!(matches!(
        releases.delete(&admin, "1.10.0").await,
        Err(ReleaseError::NotFound)
    ));
    assert!(matches!(
        releases.delete(&admin, "../etc").await,
        Err(ReleaseError::NotFound)
    ));
    assert_eq!(
        releases.latest().await.unwrap().unwrap().version,
        "1.10.0-beta.1"
    );
}
