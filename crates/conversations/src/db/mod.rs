//! The SeaORM implementation.

mod entities;
mod service;
#[cfg(test)]
mod tests;

pub use service::SeaOrmConversations;
