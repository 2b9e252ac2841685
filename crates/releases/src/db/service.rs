//! [`Releases`] over SeaORM.

use std::sync::Arc;

use chrono::Utc;
use platform::db::Db;
use platform::{Actor, Clock, SystemClock};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::entities::release;
use crate::model::normalise_version;
use crate::{Artifact, Feed, NewRelease, Release, ReleaseError, Releases, compare_versions};

pub struct SeaOrmReleases {
    db: Db,
    feed: Feed,
    clock: Arc<dyn Clock>,
}

impl SeaOrmReleases {
    pub fn new(db: Db, feed: Feed) -> Self {
        Self {
            db,
            feed,
            clock: Arc::new(SystemClock),
        }
    }

    fn admin(actor: &Actor) -> Result<(), ReleaseError> {
        if actor.is_admin {
            Ok(())
        } else {
            Err(ReleaseError::Forbidden)
        }
    }

    fn active(
        release: &Release,
        now: chrono::DateTime<Utc>,
    ) -> Result<release::ActiveModel, ReleaseError> {
        let artifacts = serde_json::to_string(&release.artifacts)
            .map_err(|e| ReleaseError::Internal(e.into()))?;
        Ok(release::ActiveModel {
            version: Set(release.version.clone()),
            release_notes: Set(release.release_notes.clone()),
            pub_date: Set(release.pub_date),
            artifacts: Set(artifacts),
            created_at: Set(now),
            updated_at: Set(now),
        })
    }

    async fn sorted(&self) -> Result<Vec<Release>, ReleaseError> {
        let mut releases: Vec<Release> = release::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                let artifacts: Vec<Artifact> =
                    serde_json::from_str(&row.artifacts).unwrap_or_default();
                Release {
                    version: row.version,
                    release_notes: row.release_notes,
                    pub_date: row.pub_date,
                    artifacts,
                }
            })
            .collect();
        releases.sort_by(|a, b| {
            compare_versions(&b.version, &a.version).then(b.pub_date.cmp(&a.pub_date))
        });
        Ok(releases)
    }
}

#[async_trait::async_trait]
impl Releases for SeaOrmReleases {
    async fn list(&self) -> Result<Vec<Release>, ReleaseError> {
        self.sorted().await
    }

    async fn latest(&self) -> Result<Option<Release>, ReleaseError> {
        Ok(self.sorted().await?.into_iter().next())
    }

    async fn create(&self, actor: &Actor, new: NewRelease) -> Result<Release, ReleaseError> {
        Self::admin(actor)?;
        let now = self.clock.now();
        let release = new.validate(now)?;
        let inserted = release::Entity::insert(Self::active(&release, now)?)
            .on_conflict(
                OnConflict::column(release::Column::Version)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        if inserted == 0 {
            return Err(ReleaseError::Exists);
        }
        Ok(release)
    }

    async fn import_latest(&self, actor: &Actor) -> Result<Release, ReleaseError> {
        Self::admin(actor)?;
        let fetched = self.feed.latest().await?;
        let now = self.clock.now();
        let release = fetched.validate(now).map_err(|e| match e {
            ReleaseError::Invalid { field, reason } => ReleaseError::Feed(format!(
                "the feed's release has an invalid {field}: {reason}"
            )),
            other => other,
        })?;
        release::Entity::insert(Self::active(&release, now)?)
            .on_conflict(
                OnConflict::column(release::Column::Version)
                    .update_columns([
                        release::Column::ReleaseNotes,
                        release::Column::PubDate,
                        release::Column::Artifacts,
                        release::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        tracing::info!(version = %release.version, platforms = release.artifacts.len(), "release imported");
        Ok(release)
    }

    async fn delete(&self, actor: &Actor, version: &str) -> Result<(), ReleaseError> {
        Self::admin(actor)?;
        let version = normalise_version(version).map_err(|_| ReleaseError::NotFound)?;
        let deleted = release::Entity::delete_by_id(version)
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(ReleaseError::NotFound);
        }
        Ok(())
    }
}
