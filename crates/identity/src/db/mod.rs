//! The SeaORM implementation of [`crate::Identity`].

mod entities;
mod revocation;
mod service;
mod session_store;

pub use service::SeaOrmIdentity;
