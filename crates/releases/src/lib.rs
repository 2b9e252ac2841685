//! Desktop releases: the versions Sage's desktop app updates to and the web download page
//! offers, created by an administrator or imported from a GitHub-style release feed.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Who may do what: anyone may read the latest release (the desktop app asks before login);
//! a logged-in user may list them; only administrators create, import and delete.

mod db;
mod error;
mod feed;
mod model;
mod service;

pub use db::SeaOrmReleases;
pub use error::ReleaseError;
pub use feed::Feed;
pub use model::{Artifact, NewRelease, Release, compare_versions};
pub use service::Releases;
