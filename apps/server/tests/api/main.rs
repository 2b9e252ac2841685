//! The one integration-test binary: every test starts the real server on port 0 and talks
//! real HTTP to it. With `TEST_DATABASE_URL` and `TEST_REDIS_URL` set, each test gets a fresh
//! PostgreSQL database and its own Redis key prefix instead of SQLite and in-process stores.

// Test support code may fail loudly: a panic is a test failure with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod agents;
mod auth;
mod binary;
mod chat;
mod chat_runs;
mod conversations;
mod delegation;
mod errors;
mod first_screen;
mod gate;
mod hardening;
mod helpers;
mod jobs;
mod knowledge;
mod leaks;
mod login_hardening;
mod mcp;
mod oauth2;
mod observability;
mod oss;
mod outages;
mod planner;
mod providers;
mod registration;
mod rotation;
mod routing;
mod services;
mod sessions;
mod shell;
mod shutdown;
mod skills;
mod smtp;
mod spend;
mod system;
mod tools;
mod upstream;
mod users;
mod versions;
mod workspaces;
