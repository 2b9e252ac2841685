//! The SeaORM implementation of [`crate::Agents`].

mod entities;
mod service;

pub use service::SeaOrmAgents;
