//! Sage Server's HTTP application: actix-web wiring of the domain crates into the routes of
//! the Sage HTTP API.
//!
//! Flow of a request: `middleware` (request id, tracing span, locale, fallback envelopes) →
//! CORS → `routes::<family>` handler (extract → one service call → DTO → envelope) → domain
//! service. Errors of every family are mapped to envelopes in one place, `error`.
//!
//! Invariant: no business rule lives here; handlers only extract, call and render.

mod anytool_glue;
pub mod auth;
pub mod cli;
pub mod error;
mod extract;
mod lenient;
mod middleware;
mod oauth_glue;
pub mod openapi;
mod planner_glue;
mod response;
mod routes;
mod skills_glue;
mod startup;
mod state;
mod task_tools;
pub mod user_cleanup;

pub use startup::{Application, Services, run_migrations, shutdown_signal};
