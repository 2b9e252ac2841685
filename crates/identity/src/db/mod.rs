//! The SeaORM implementation of [`crate::Identity`].

mod entities;
mod service;

pub use service::SeaOrmIdentity;
