//! The tool registry (built-in tools), skills (SKILL.md packages) and MCP server clients.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Built so far: the [`Tool`] trait, the [`Registry`] (which runs a call with a cancellation
//! signal, a time limit and an output cap, and turns every failure into an error output the
//! model sees), and the built-ins that need only the run's workspace (`file_read`,
//! `file_write`, `file_update`, `apply_patch`, `list_dir`, `glob`, `grep`, `todo_read`, `todo_write`), confined with
//! `platform::confined` exactly as the workspace routes are; and [`skills`] (SKILL.md packages:
//! the system's, each user's, and the copies in agent workspaces), and [`mcp`] (each user's MCP servers over streamable HTTP and
//! their tools).

mod builtin;
pub mod mcp;
mod patch;
pub mod questionnaire;
mod registry;
pub mod shell;
pub mod skills;
mod tool;

pub use builtin::read_workspace_file;
pub use registry::{Limits, Registry, ToolInfo};
pub use tool::{Cancel, Progress, ProgressNote, Tool, ToolContext, ToolError, ToolOutput, todos};
