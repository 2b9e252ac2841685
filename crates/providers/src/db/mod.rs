//! The SeaORM implementation of [`crate::Providers`].

mod entity;
mod service;

pub use service::{SYSTEM_PROVIDER_ID, SeaOrmProviders};
