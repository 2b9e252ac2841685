//! The in-process worker: spawns due fires, claims due tasks and runs them through the
//! application's [`TaskRunner`], recording each outcome through the same service calls the
//! internal HTTP protocol uses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::Actor;
use tokio::sync::watch;

use crate::{Planner, PlannerError, Task};

/// Runs one task as its owner (the application implements it with the chat runtime).
#[async_trait]
pub trait TaskRunner: Send + Sync {
    /// The answer's text, or why the run failed.
    async fn run(&self, task: &Task) -> Result<String, String>;
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Pause between rounds.
    pub poll: Duration,
    /// Tasks run at once.
    pub concurrency: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(5),
            concurrency: 4,
        }
    }
}

pub struct Worker {
    planner: Arc<dyn Planner>,
    runner: Arc<dyn TaskRunner>,
    settings: WorkerSettings,
    actor: Actor,
}

impl Worker {
    pub fn new(
        planner: Arc<dyn Planner>,
        runner: Arc<dyn TaskRunner>,
        settings: WorkerSettings,
    ) -> Self {
        Self {
            planner,
            runner,
            settings,
            actor: Actor::new("task_scheduler", true),
        }
    }

    /// One round: spawn due fires, then claim and run what is due (up to `concurrency` at
    /// once). Returns how many tasks this round ran.
    pub async fn tick(&self) -> Result<usize, PlannerError> {
        self.planner.spawn_due(&self.actor).await?;
        let due = self
            .planner
            .due(&self.actor, self.settings.concurrency.max(1) as u64)
            .await?;
        let mut runs = tokio::task::JoinSet::new();
        let mut claim_failed = None;
        for task in due {
            // A failed claim ends the round, but never cuts off the runs already started.
            match self.planner.claim(&self.actor, task.id).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    claim_failed = Some(e);
                    break;
                }
            }
            let planner = self.planner.clone();
            let runner = self.runner.clone();
            let actor = self.actor.clone();
            runs.spawn(async move {
                let outcome = runner.run(&task).await;
                let recorded = match outcome {
                    Ok(answer) => planner.complete(&actor, task.id, Some(answer)).await,
                    Err(reason) => planner.fail(&actor, task.id, Some(reason)).await,
                };
                if let Err(e) = recorded {
                    tracing::warn!(task = task.id, error = %e, "could not record a task's outcome");
                }
                if task.recurring_task_id > 0
                    && let Err(e) = planner
                        .complete_recurring(&actor, task.recurring_task_id)
                        .await
                {
                    tracing::warn!(task = task.id, error = %e, "could not mark a recurring run done");
                }
            });
        }
        let mut ran = 0;
        while runs.join_next().await.is_some() {
            ran += 1;
        }
        match claim_failed {
            Some(e) => Err(e),
            None => Ok(ran),
        }
    }

    /// Rounds until `shutdown` turns true; a round in progress finishes first (a task cut
    /// off by the process ending is claimed again when its lease runs out).
    pub async fn work(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.tick().await {
                // Work was found: look again at once.
                Ok(ran) if ran > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "planner round failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
