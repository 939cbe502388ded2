//! Writing job records from the actors: a transition applied as a compare-and-set, made safe
//! against the two ways a write's answer can mislead.
//!
//! - A miss (the record changed meanwhile): the record is read again and the transition applied
//!   to what is there now, if it still applies (a sweeper that stamped `published_at` does not
//!   take the job from its converter).
//! - An error or a time-out after which the write may have landed all the same: the record is
//!   read back, and if it already holds the change, the write counts as done.
//!
//! A transition is a function from the record as it is to the record as it should be, or None
//! when it no longer applies (another attempt holds the job, the email was already sent).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::storage::jobs::RACES;
use crate::storage::{Job, JobStore, StorageResult};

/// What became of a transition. (Short-lived values: boxing the record would only add noise.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Written {
    /// The record as stored, with the change.
    Stored(Job),
    /// The transition no longer applies, or the record is gone.
    Lost,
}

/// What one compare-and-set came to, once its answer was checked.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// The record as stored, with the change.
    Stored(Job),
    /// The record changed meanwhile: here it is now (None: it is gone).
    Changed(Option<Job>),
}

/// Writes `next` once; on a miss or an error, reads the record back to tell whether the write
/// landed. An error means the outcome is unknown (storage failed and could not be read back).
pub async fn write_once(jobs: &dyn JobStore, next: &Job) -> StorageResult<Outcome> {
    let attempt = jobs.update(next).await;
    if let Ok(Some(stored)) = attempt {
        return Ok(Outcome::Stored(stored));
    }
    match jobs.get(next.id).await {
        Ok(Some(stored)) if stored.same_change(next) => Ok(Outcome::Stored(stored)),
        Ok(now) => Ok(Outcome::Changed(now)),
        Err(error) => Err(attempt.err().unwrap_or(error)),
    }
}

/// Applies `change` to `current` and writes it, applying it again to a record that changed
/// meanwhile as long as it still applies.
pub async fn write(jobs: &dyn JobStore, current: &Job, change: impl Fn(&Job) -> Option<Job>) -> StorageResult<Written> {
    let mut current = current.clone();
    for _ in 0..RACES {
        let Some(next) = change(&current) else { return Ok(Written::Lost) };
        match write_once(jobs, &next).await? {
            Outcome::Stored(stored) => return Ok(Written::Stored(stored)),
            Outcome::Changed(Some(now)) => current = now,
            Outcome::Changed(None) => return Ok(Written::Lost),
        }
    }
    Ok(Written::Lost)
}

/// [`write`], tried again through storage outages until the node stops: an outcome that
/// happened (a finished conversion, a sent email) is not lost because the database was briefly
/// away. An error only once the node is stopping.
pub async fn write_patiently(
    node: &Node,
    current: &Job,
    change: impl Fn(&Job) -> Option<Job>,
) -> StorageResult<Written> {
    let jobs = node.stores.jobs.as_ref();
    patiently(Patience::of(node), "write the job record", || write(jobs, current, &change)).await
}

/// The backoff of [`patiently`]: 0.25 s doubling to 5 s.
const PATIENCE: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));

/// What a patient call needs: when to stop trying (the node's shutdown), and where its retries
/// are counted.
#[derive(Clone, Copy)]
pub struct Patience<'a> {
    pub shutdown: &'a CancellationToken,
    pub metrics: &'a Metrics,
}

impl<'a> Patience<'a> {
    pub fn of(node: &'a Node) -> Patience<'a> {
        Patience { shutdown: &node.lifecycle.shutdown, metrics: &node.services.metrics }
    }
}

/// Runs `call` until it succeeds, backing off ([`PATIENCE`]) while it fails, until the node
/// stops; then returns the last error. Each retry is counted
/// (`mp3c_backend_call_retries_total{call=what}`); a caller that must not wait without end
/// races it against its own limit.
pub async fn patiently<T, F, Fut>(patience: Patience<'_>, what: &str, mut call: F) -> StorageResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StorageResult<T>>,
{
    let mut tries: u32 = 0;
    loop {
        tries = tries.saturating_add(1);
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) if !patience.shutdown.is_cancelled() => {
                patience.metrics.jobs.backend_retry(what);
                let wait = PATIENCE.wait(tries);
                tracing::warn!(%error, ?wait, "cannot {what} yet; trying again");
                tokio::time::sleep(wait).await;
            }
            Err(error) => {
                tracing::error!(%error, "stopping before being able to {what}");
                return Err(error);
            }
        }
    }
}
