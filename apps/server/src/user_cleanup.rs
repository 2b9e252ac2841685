//! Deleting a user and then their data in every service (agents, providers, conversations,
//! files, jobs, tasks, skills, MCP servers, knowledge bases, OAuth grants). Identity records
//! the deleted user as pending in the transaction that deletes them; the record goes once
//! every service has dropped the user's data. A service that fails (or a process that stops
//! in between) leaves the record, and the workers' sweep runs the clean-up again (every
//! service's clean-up may run twice), so the data never stays behind.

use std::sync::Arc;
use std::time::Duration;

use identity::{Identity, IdentityError, Principal};
use platform::UserCleanup;

/// How often the sweep looks for pending clean-ups (it also looks once at start).
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(300);
/// Pending clean-ups one sweep takes.
const SWEEP_BATCH: u64 = 100;

pub struct UserCleanups {
    identity: Arc<dyn Identity>,
    services: Vec<Arc<dyn UserCleanup>>,
}

impl UserCleanups {
    pub fn new(identity: Arc<dyn Identity>, services: Vec<Arc<dyn UserCleanup>>) -> Self {
        Self { identity, services }
    }

    /// Admin: deletes the user, then their data; a service that fails is logged and left to
    /// the sweep (the user is gone either way).
    pub(crate) async fn delete_user(
        &self,
        actor: &Principal,
        user_id: &str,
    ) -> Result<(), IdentityError> {
        self.identity.delete_user(actor, user_id).await?;
        self.clean(user_id).await;
        Ok(())
    }

    /// Runs every service's clean-up for `user_id` (all of them, even after one fails);
    /// whether all succeeded and the pending record is gone.
    async fn clean(&self, user_id: &str) -> bool {
        let mut failures = Vec::new();
        for service in &self.services {
            if let Err(e) = service.user_deleted(user_id).await {
                failures.push(e.to_string());
            }
        }
        if !failures.is_empty() {
            tracing::warn!(user_id, failures = %failures.join("; "),
                "a deleted user's data was not all removed; the sweep retries");
            return false;
        }
        match self.identity.cleanup_finished(user_id).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(user_id, error = %e, "a finished clean-up could not be recorded");
                false
            }
        }
    }

    /// Every pending clean-up, once; how many finished.
    pub(crate) async fn sweep(&self) -> usize {
        let pending = match self.identity.pending_cleanups(SWEEP_BATCH).await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::warn!(error = %e, "pending user clean-ups could not be read");
                return 0;
            }
        };
        let mut finished = 0;
        for user_id in pending {
            if self.clean(&user_id).await {
                finished += 1;
            }
        }
        finished
    }

    /// Sweeps at once, then every `every`, until `stopped` turns true.
    pub(crate) async fn sweep_until(
        self: Arc<Self>,
        every: Duration,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let finished = self.sweep().await;
            if finished > 0 {
                tracing::info!(finished, "deleted users' data removed by the sweep");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }
}
