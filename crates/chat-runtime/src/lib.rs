//! The agent loop and the stream hub: runs a chat turn against a provider with tools and knowledge, appends every event to the replay log before it is sent, and serves resume and interrupt.
//!
//! Allowed dependencies: platform, agents, conversations, providers, tooling, knowledge. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Built so far: [`ChatRuntime`] with one implementation, [`Runtime`]: request resolution
//! (agent, overrides, provider), the loop (stream, tool calls, results, max_loop_count),
//! persistence per step, token usage, the replay log per session (`hub`), interrupt and the
//! running-session index in the `KvStore`, guidance, knowledge retrieval, and the sub-agents
//! of fibre and team runs (`delegation`).

mod delegation;
mod error;
mod expand;
mod extra_mcp;
mod guidance;
mod history;
mod hub;
mod knowledge;
mod memory;
mod optimize;
mod prompt;
mod run;
mod runtime;
mod service;
mod tools;
mod vision;
mod web;
pub mod wire;

pub use error::ChatError;
pub use guidance::Guidance;
pub use history::{conversation_info, message_json};
pub use optimize::OptimizeRequest;
pub use runtime::{Runtime, RuntimeSettings};
pub use service::{
    ActiveSession, ChatRuntime, ConversationView, CustomSubAgent, InputMessage, LineStream,
    RunRequest, SessionDownload, SessionFiles, Source, StartedRun,
};
pub use tools::{DirectTools, ExecRequest, ToolEntry};
pub use web::fetch_webpages;
