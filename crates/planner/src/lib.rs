//! One-time and recurring (cron) tasks, their run history and the due/claim/complete protocol;
//! runs go through a [`TaskRunner`] the application implements.
//!
//! Allowed dependencies: platform. This crate never depends on actix or any other HTTP
//! server type; the `server` app crate adapts it to routes. The tidy test in `xtask`
//! enforces the rule.
//!
//! Ownership: a user sees and changes only their own tasks (admins: everyone's); anything
//! else is [`PlannerError::NotFound`]. The internal protocol (spawn, due, claim, complete,
//! fail) is for admins and the worker.

mod db;
mod error;
mod model;
mod schedule;
mod service;
mod worker;

pub use db::SeaOrmPlanner;
pub use error::PlannerError;
pub use model::{
    HistoryEntry, NewOneTime, NewRecurring, OneTimeChanges, RecurringChanges, RecurringTask, Task,
    TaskStatus,
};
pub use schedule::{parse_cron, parse_time, parse_zone};
pub use service::{AgentCheck, Planner};
pub use worker::{TaskRunner, Worker, WorkerSettings};
