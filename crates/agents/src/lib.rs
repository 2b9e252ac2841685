//! Agent configurations, their authorisation (owner, grants, admins), prompt templates,
//! durable asynchronous agent jobs and per-user agent file workspaces.
//!
//! Allowed dependencies: platform, providers. This crate never depends on actix or any other
//! HTTP server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Built so far: configurations (validated and normalised `AgentConfigDTO` documents),
//! authorisation and grants, listing, and the default system-prompt template. Generation,
//! asynchronous jobs and workspaces follow.

mod config;
mod db;
mod error;
mod generate;
mod jobs;
mod service;
mod template;
pub mod workspace;
mod workspace_service;

pub use config::{AgentConfig, AgentMode, normalise};
pub use db::{AgentJobs, SeaOrmAgents, SeaOrmJobs};
pub use error::AgentError;
pub use jobs::{Job, JobKind, JobSettings, JobStatus};
pub use service::{Agent, AgentSaved, Agents, JsonPage};
pub use template::{Language, default_system_prompt};
pub use workspace::{Download, Listing, WorkspaceEntry, Workspaces};
pub use workspace_service::{UploadTarget, WorkspaceService};
