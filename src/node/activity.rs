//! What this node's workers hold right now (the job each converter converts), for the node's
//! status. A worker's name reaches the code it runs through a task-local, set around each
//! delivery.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::ids::Id;

tokio::task_local! {
    /// The worker actor handling the current delivery.
    pub static ACTOR: String;
}

/// The jobs held, by actor.
#[derive(Clone, Default)]
pub struct Activity {
    held: Arc<Mutex<BTreeMap<String, Id>>>,
}

impl Activity {
    /// Notes that the current worker holds `job_id` until the guard is dropped.
    pub fn hold(&self, job_id: Id) -> HeldJob {
        let actor = ACTOR.try_with(Clone::clone).unwrap_or_else(|_| "unnamed".to_owned());
        self.held.lock().unwrap_or_else(|e| e.into_inner()).insert(actor.clone(), job_id);
        HeldJob { activity: self.clone(), actor }
    }

    /// Each actor holding a job, with the job, by actor name.
    pub fn held(&self) -> Vec<(String, Id)> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.iter().map(|(actor, job_id)| (actor.clone(), *job_id)).collect()
    }
}

/// A job held by a worker; released when dropped.
pub struct HeldJob {
    activity: Activity,
    actor: String,
}

impl Drop for HeldJob {
    fn drop(&mut self) {
        self.activity.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.actor);
    }
}
