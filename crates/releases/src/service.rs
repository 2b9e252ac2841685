//! The service trait the server's version routes call.

use platform::Actor;

use crate::{NewRelease, Release, ReleaseError};

#[async_trait::async_trait]
pub trait Releases: Send + Sync {
    /// Every release, the highest version first.
    async fn list(&self) -> Result<Vec<Release>, ReleaseError>;
    /// The highest version, if any (public: the desktop app asks before login).
    async fn latest(&self) -> Result<Option<Release>, ReleaseError>;
    /// Admin: a new release; an existing version is [`ReleaseError::Exists`].
    async fn create(&self, actor: &Actor, new: NewRelease) -> Result<Release, ReleaseError>;
    /// Admin: reads the feed's latest release and stores it, replacing the same version.
    async fn import_latest(&self, actor: &Actor) -> Result<Release, ReleaseError>;
    /// Admin: removes a version; an unknown one is [`ReleaseError::NotFound`].
    async fn delete(&self, actor: &Actor, version: &str) -> Result<(), ReleaseError>;
}
