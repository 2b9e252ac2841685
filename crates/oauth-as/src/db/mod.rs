//! The authorization server over SeaORM (clients, tokens, signing keys) and the key-value
//! store (single-use codes and consent tickets).

mod entities;
mod service;

pub use service::{SeaOrmAuthorizationServer, Settings};

#[cfg(test)]
mod tests;
