//! The SeaORM implementation of [`crate::Agents`].

mod entities;
mod fair;
mod jobs;
mod service;

pub use jobs::{AgentJobs, SeaOrmJobs};
pub use service::SeaOrmAgents;
