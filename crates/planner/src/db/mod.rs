//! The planner over SeaORM (SQLite and PostgreSQL).

mod entities;
mod service;

pub use service::SeaOrmPlanner;

#[cfg(test)]
mod tests;
