//! Spawning and claiming on a clock the test moves: SQLite, and PostgreSQL when
//! `TEST_DATABASE_URL` is set.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use platform::{Actor, ManualClock};

use super::SeaOrmPlanner;
use crate::{AgentCheck, NewOneTime, NewRecurring, Planner, RecurringChanges, TaskStatus};

struct EveryAgent;

#[async_trait]
impl AgentCheck for EveryAgent {
    async fn usable(&self, _: &Actor, _: &str) -> Result<bool, anyhow::Error> {
        Ok(true)
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

async fn planner(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> SeaOrmPlanner {
    let db = migration::test_database(dir.path()).await.unwrap();
    SeaOrmPlanner::new(db, Arc::new(EveryAgent)).with_clock(clock)
}

#[tokio::test]
async fn a_recurring_task_spawns_its_latest_fire_once_and_missed_fires_collapse() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-12-04T08:58:30Z")));
    let planner = planner(&dir, clock.clone()).await;
    let alice = Actor::new("alice", false);
    let worker = Actor::new("task_scheduler", true);
    let hourly = planner
        .create_recurring(
            &alice,
            NewRecurring {
                name: "Hourly".into(),
                agent_id: "agent_1".into(),
                cron_expression: "0 * * * *".into(),
                timezone: Some("Asia/Kolkata".into()),
                ..NewRecurring::default()
            },
        )
        .await
        .unwrap();
    // Nothing before creation fires.
    assert!(planner.spawn_due(&worker).await.unwrap().is_empty());
    // Kolkata is UTC+05:30: its full hours fall on UTC half hours.
    clock.advance(Duration::minutes(32));
    let spawned = planner.spawn_due(&worker).await.unwrap();
    assert_eq!(spawned.len(), 1);
    let instance = &spawned[0];
    assert_eq!(instance.execute_at, at("2026-12-04T09:30:00Z"));
    assert_eq!(instance.recurring_task_id, hourly.id);
    assert_eq!(instance.user_id, "alice");
    assert_eq!(instance.status, TaskStatus::Pending);
    // Spawning again does nothing: the fire is taken.
    assert!(planner.spawn_due(&worker).await.unwrap().is_empty());
    // While that instance is open, later fires do not pile up.
    clock.advance(Duration::hours(3));
    assert!(planner.spawn_due(&worker).await.unwrap().is_empty());
    assert!(planner.claim(&worker, instance.id).await.unwrap());
    planner
        .complete(&worker, instance.id, Some("ok".into()))
        .await
        .unwrap();
    // Three missed fires collapse into one run, at the latest of them.
    let spawned = planner.spawn_due(&worker).await.unwrap();
    assert_eq!(spawned.len(), 1);
    assert_eq!(spawned[0].execute_at, at("2026-12-04T12:30:00Z"));
    let history = planner
        .recurring_history(&alice, hourly.id, platform::PageRequest::default())
        .await
        .unwrap();
    assert_eq!(history.total, 2);
    assert_eq!(history.items[0].id, spawned[0].id, "latest first");

    // A disabled task spawns nothing; re-enabled, it fires from then on, not retroactively.
    planner
        .update_recurring(
            &alice,
            hourly.id,
            RecurringChanges {
                enabled: Some(false),
                ..RecurringChanges::default()
            },
        )
        .await
        .unwrap();
    planner.claim(&worker, spawned[0].id).await.unwrap();
    planner
        .complete(&worker, spawned[0].id, None)
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    assert!(planner.spawn_due(&worker).await.unwrap().is_empty());
    planner
        .update_recurring(
            &alice,
            hourly.id,
            RecurringChanges {
                enabled: Some(true),
                ..RecurringChanges::default()
            },
        )
        .await
        .unwrap();
    assert!(planner.spawn_due(&worker).await.unwrap().is_empty());

    // Deleting the recurring task removes its instances.
    planner.delete_recurring(&alice, hourly.id).await.unwrap();
    let gone = planner.get_one_time(&alice, spawned[0].id).await;
    assert!(
        matches!(gone, Err(crate::PlannerError::NotFound)),
        "{gone:?}"
    );
}

#[tokio::test]
async fn a_claim_whose_lease_ran_out_can_be_taken_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-12-04T08:00:00Z")));
    let planner = planner(&dir, clock.clone())
        .await
        .with_lease(std::time::Duration::from_secs(600));
    let alice = Actor::new("alice", false);
    let worker = Actor::new("task_scheduler", true);
    let task = planner
        .create_one_time(
            &alice,
            NewOneTime {
                name: "Once".into(),
                agent_id: "agent_1".into(),
                execute_at: "2026-12-04T07:00:00Z".into(),
                ..NewOneTime::default()
            },
        )
        .await
        .unwrap();
    assert!(planner.claim(&worker, task.id).await.unwrap());
    assert!(planner.due(&worker, 10).await.unwrap().is_empty());
    assert!(!planner.claim(&worker, task.id).await.unwrap());
    // The worker that held it died: after the lease it is due and claimable again.
    clock.advance(Duration::minutes(11));
    let due = planner.due(&worker, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert!(planner.claim(&worker, task.id).await.unwrap());
    // Users may not speak the protocol.
    assert!(matches!(
        planner.claim(&alice, task.id).await,
        Err(crate::PlannerError::Forbidden)
    ));
}
