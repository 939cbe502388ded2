//! The gauge refresher: reads the gauges that come from the stores (jobs by state, queue
//! depths and the age of their oldest waiting message, how long the longest-retrying job has
//! been retried without counting, which backends answer) on a timer, so
//! that a scrape of `/metrics` only renders and never waits on a backend. Every node says which
//! backends it reaches and its process groups; the shared stores' numbers are the same from
//! every node, so only gateway nodes read them (a converter node added does not add queries).

use std::time::Duration;

use super::NodeContext;
use super::periodic::Periodic;
use crate::config::Role;
use crate::storage::{JobState, Queue, StorageResult, now_millis};

pub struct Gauges;

/// Longest a health check waits for one backend.
const PING_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether each backend answers, by the name `/readyz` and `mp3c_backend_up` give it.
pub async fn backend_health(ctx: &NodeContext) -> [(&'static str, bool); 4] {
    let backends = &ctx.backends;
    let (users, blobs, jobs, mailbox) = tokio::join!(
        answers("users", backends.users.ping()),
        answers("blobs", backends.blobs.ping()),
        answers("jobs", backends.jobs.ping()),
        answers("mailbox", backends.mailbox.ping())
    );
    [("users", users), ("blobs", blobs), ("jobs", jobs), ("mailbox", mailbox)]
}

/// Whether every backend answers (what `/readyz` says).
pub async fn backends_answer(ctx: &NodeContext) -> bool {
    backend_health(ctx).await.iter().all(|(_, up)| *up)
}

async fn answers(backend: &str, ping: impl Future<Output = StorageResult<()>>) -> bool {
    match tokio::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(backend, %error, "backend does not answer");
            false
        }
        Err(_) => false,
    }
}

impl Periodic for Gauges {
    fn period(_ctx: &NodeContext) -> Duration {
        Duration::from_secs(5)
    }

    async fn tick(ctx: &NodeContext) {
        for (backend, up) in backend_health(ctx).await {
            ctx.metrics.set_backend_up(backend, up);
        }
        for group in crate::cluster::protocol::groups::ALL {
            ctx.metrics.set_group_members(group, ractor::pg::get_members(&group.to_owned()).len());
        }
        if ctx.config.has_role(Role::Gateway) {
            read_shared_stores(ctx).await;
        }
    }
}

/// Jobs by state, queue depths and the oldest waiting message's age.
async fn read_shared_stores(ctx: &NodeContext) {
    if let Ok(counts) = ctx.backends.jobs.count_by_state().await {
        counts.into_iter().for_each(|(state, count)| ctx.metrics.set_jobs(state, count));
    }
    for queue in Queue::ALL {
        if let Ok(depth) = ctx.backends.mailbox.depth(queue).await {
            ctx.metrics.set_queue_depth(queue, depth);
        }
    }
    for (queue, state) in WAITING {
        if let Ok(published_at) = ctx.backends.jobs.oldest_waiting(state).await {
            ctx.metrics.set_oldest_waiting(queue, published_at, now_millis());
        }
    }
    if let Ok(since) = ctx.backends.jobs.oldest_retrying().await {
        ctx.metrics.set_oldest_retrying(since, now_millis());
    }
}

/// Each work queue, and the state of the jobs whose message waits in it: read from the job
/// records, the same in both profiles (the broker does not tell a message's age). A message
/// counts from its last publish (a retry's due time, once due) until a consumer holds it: a
/// converting job, or an email being sent, is not waiting.
const WAITING: [(Queue, JobState); 3] =
    [(Queue::Video, JobState::Queued), (Queue::Mp3, JobState::Done), (Queue::Failures, JobState::Failed)];
