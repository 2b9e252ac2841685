//! Releases over SeaORM (SQLite and PostgreSQL).

mod entities;
mod service;

pub use service::SeaOrmReleases;

#[cfg(test)]
mod tests;
