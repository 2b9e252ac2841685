//! Knowledge bases and their documents: the parse, chunk and index pipeline, the tantivy index per knowledge base (derived from the chunk table) and retrieval.
//!
//! Allowed dependencies: platform, providers. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Status: responsibility reserved; the service trait arrives with its issue.
