//! The SeaORM implementation of [`crate::Identity`].

mod entities;
mod service;
mod session_store;

pub use service::SeaOrmIdentity;
