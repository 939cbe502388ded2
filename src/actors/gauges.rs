//! The gauge refresher: reads the gauges that come from the stores (jobs by state, queue
//! depths and the age of their oldest waiting message, how long the longest-retrying job has
//! been retried without counting, which backends answer) on a timer, so
//! that a scrape of `/metrics` only renders and never waits on a backend. Every node says which
//! backends it reaches and its process groups; the shared stores' numbers are the same from
//! every node, so only gateway nodes read them (a converter node added does not add queries).

use std::time::Duration;

use super::periodic::Periodic;
use crate::config::Role;
use crate::node::Node;
use crate::storage::{JobState, Queue, now_millis};

pub struct Gauges;

impl Periodic for Gauges {
    fn period(_node: &Node) -> Duration {
        Duration::from_secs(5)
    }

    async fn tick(node: &Node) {
        for (backend, up) in node.stores.health().await {
            node.services.metrics.stores.set_backend_up(backend, up);
        }
        for group in crate::cluster::protocol::groups::ALL {
            node.services.metrics.cluster.set_group_members(group, ractor::pg::get_members(&group.to_owned()).len());
        }
        if node.config.server.has_role(Role::Gateway) {
            read_shared_stores(node).await;
        }
    }
}

/// Jobs by state, queue depths and the oldest waiting message's age.
async fn read_shared_stores(node: &Node) {
    if let Ok(counts) = node.stores.jobs.count_by_state().await {
        counts.into_iter().for_each(|(state, count)| node.services.metrics.jobs.set_jobs(state.as_str(), count));
    }
    for queue in Queue::ALL {
        if let Ok(depth) = node.stores.mailbox.depth(queue).await {
            node.services.metrics.queues.set_depth(queue.name(), depth);
        }
    }
    for (queue, state) in WAITING {
        if let Ok(published_at) = node.stores.jobs.oldest_waiting(state).await {
            node.services.metrics.queues.set_oldest_waiting(queue.name(), published_at, now_millis());
        }
    }
    if let Ok(since) = node.stores.jobs.oldest_retrying().await {
        node.services.metrics.jobs.set_oldest_retrying(since, now_millis());
    }
}

/// Each work queue, and the state of the jobs whose message waits in it: read from the job
/// records, the same in both profiles (the broker does not tell a message's age). A message
/// counts from its last publish (a retry's due time, once due) until a consumer holds it: a
/// converting job, or an email being sent, is not waiting.
const WAITING: [(Queue, JobState); 3] =
    [(Queue::Video, JobState::Queued), (Queue::Mp3, JobState::Done), (Queue::Failures, JobState::Failed)];
