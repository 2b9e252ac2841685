//! Storage over SeaORM, the ingestion worker and retrieval.

mod entities;
mod ingest;
mod service;
#[cfg(test)]
mod tests;

pub use ingest::IngestSettings;
pub use service::SeaOrmKnowledge;
