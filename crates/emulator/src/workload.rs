//! A workload generator that behaves like users editing the org.
//!
//! Inserts (children pointing at existing parents), updates of a few fields, and deletes,
//! at a steady rate, each as its own transaction, so a sync engine sees the mix of changes
//! a live org produces while it runs. Started and stopped through the control API; the
//! server stops it on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::seed::Generator;
use crate::state::Shared;

/// How often the generator wakes to apply the changes due.
const TICK: Duration = Duration::from_millis(50);

/// What the workload does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct WorkloadSpec {
    /// Changes per second, all kinds together.
    pub rate_per_second: f64,
    /// Objects edited; the first is the parent the others' references point at.
    pub objects: Vec<String>,
    /// Shares of inserts, updates and deletes (normalised).
    pub insert_share: f64,
    pub update_share: f64,
    pub delete_share: f64,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            rate_per_second: 20.0,
            objects: vec![
                "Account".to_owned(),
                "Contact".to_owned(),
                "Opportunity".to_owned(),
            ],
            insert_share: 0.3,
            update_share: 0.6,
            delete_share: 0.1,
        }
    }
}

/// Counters of what the workload has done.
#[derive(Debug, Default)]
pub struct WorkloadCounters {
    pub inserted: AtomicU64,
    pub updated: AtomicU64,
    pub deleted: AtomicU64,
    pub failed: AtomicU64,
}

/// A snapshot of the workload's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    pub running: bool,
    pub spec: Option<WorkloadSpec>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub failed: u64,
}

#[derive(Debug)]
struct Running {
    spec: WorkloadSpec,
    /// Set to true to ask the task to stop; the task checks it every tick.
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The workload slot of an emulator: at most one runs at a time.
#[derive(Debug, Default)]
pub struct Workload {
    running: tokio::sync::Mutex<Option<Running>>,
    counters: Arc<WorkloadCounters>,
}

impl Workload {
    /// Starts (or restarts with a new spec) the workload.
    pub async fn start(&self, shared: Arc<Shared>, spec: WorkloadSpec) -> Result<(), String> {
        if !(spec.rate_per_second > 0.0 && spec.rate_per_second <= 100_000.0) {
            return Err(format!(
                "ratePerSecond must be between 0 and 100000, got {}",
                spec.rate_per_second
            ));
        }
        let total = spec.insert_share + spec.update_share + spec.delete_share;
        if total <= 0.0
            || [spec.insert_share, spec.update_share, spec.delete_share]
                .iter()
                .any(|s| *s < 0.0)
        {
            return Err(
                "insertShare, updateShare and deleteShare must be non-negative and not all zero"
                    .to_owned(),
            );
        }
        let objects = {
            let org = shared.org();
            spec.objects
                .iter()
                .map(|name| {
                    org.schema()
                        .object_index(name)
                        .ok_or_else(|| format!("unknown object {name:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if objects.is_empty() {
            return Err("objects must name at least one object".to_owned());
        }
        self.stop().await;
        let (stop, mut stopped) = watch::channel(false);
        let counters = Arc::clone(&self.counters);
        let task_spec = spec.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            let mut due = 0.0;
            let mut n: u64 = 0;
            let salt: u64 = rand::random();
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stopped.changed() => return,
                }
                due += task_spec.rate_per_second * TICK.as_secs_f64();
                let count = due.floor() as u64;
                due -= count as f64;
                apply_changes(
                    &shared,
                    &task_spec,
                    &objects,
                    count,
                    (salt, &mut n),
                    &counters,
                );
            }
        });
        *self.running.lock().await = Some(Running { spec, stop, task });
        Ok(())
    }

    /// Stops the workload and waits for its task to finish.
    pub async fn stop(&self) {
        let running = self.running.lock().await.take();
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
    }

    /// What the workload is doing.
    pub async fn status(&self) -> WorkloadStatus {
        let running = self.running.lock().await;
        let c = &self.counters;
        WorkloadStatus {
            running: running.as_ref().is_some_and(|r| !r.task.is_finished()),
            spec: running.as_ref().map(|r| r.spec.clone()),
            inserted: c.inserted.load(Ordering::Relaxed),
            updated: c.updated.load(Ordering::Relaxed),
            deleted: c.deleted.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

fn apply_changes(
    shared: &Shared,
    spec: &WorkloadSpec,
    objects: &[crate::org::ObjectIndex],
    count: u64,
    (salt, n): (u64, &mut u64),
    counters: &WorkloadCounters,
) {
    if count == 0 {
        return;
    }
    let mut rng = rand::rng();
    let total = spec.insert_share + spec.update_share + spec.delete_share;
    let mut org = shared.org_mut();
    let user = org.admin();
    for _ in 0..count {
        *n += 1;
        let pick: f64 = rng.random_range(0.0..total);
        let Some(&object) = objects.choose(&mut rng) else {
            return;
        };
        let (counter, result) = if pick < spec.insert_share {
            let body = Generator::new(&org, salt).record(object, *n, &mut rng);
            (
                &counters.inserted,
                org.begin(user).create(object, &body).map(|_| ()),
            )
        } else if pick < spec.insert_share + spec.update_share {
            let target = Generator::new(&org, salt).random_live(object, &mut rng);
            let body = Generator::new(&org, salt).changes(object, *n, &mut rng);
            match target {
                Some(target) => (&counters.updated, org.begin(user).update(target, &body)),
                None => continue,
            }
        } else {
            // Deletes take leaf objects only when parents are edited too, as users rarely
            // delete an account with contacts (the emulator does not cascade deletes).
            let leaf = if objects.len() > 1 && object == objects[0] {
                objects[1]
            } else {
                object
            };
            match Generator::new(&org, salt).random_live(leaf, &mut rng) {
                Some(target) => (&counters.deleted, org.begin(user).delete(target)),
                None => continue,
            }
        };
        match result {
            Ok(()) => counter.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}
