//! The queue-worker actor that converters, the notifiers and the dead-letter workers share: a
//! competing consumer on one mailbox queue, handling one delivery at a time (fair dispatch).
//!
//! Each `Poll` waits a bounded time for a delivery and handles it, then the actor polls again;
//! between polls it sees stop requests, so a stop waits for at most the delivery in hand.
//!
//! A handler decides an [`Answer`] and the worker gives it. A handler that fails on storage
//! (a database or the broker away) gets its delivery retried after a backoff that does not
//! count against the job: an outage is retried for as long as it lasts. A message that cannot
//! be read is parked for inspection, never acknowledged away and never looped.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::RECEIVE_WAIT;
use crate::backoff::Backoff;
use crate::cluster::protocol::{WorkerMsg, groups};
use crate::metrics::ActorMetrics;
use crate::metrics::jobs::JobMetrics;
use crate::node::Node;
use crate::storage::{Delivery, Queue, StorageError, StorageResult};

/// What a worker does with one delivery.
pub trait Worker: Send + Sync + 'static {
    /// Decides the delivery's answer; a storage error retries it after a backoff.
    fn handle(node: &Node, delivery: &dyn Delivery) -> impl Future<Output = StorageResult<Answer>> + Send;
}

/// How a delivery is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Done with it.
    Ack,
    /// Deliver it again after this long (not counted as an unanswered delivery).
    Retry(Duration),
    /// Back to the queue at once: this node is shutting down.
    Release,
    /// Move it to another queue, visible there after this long.
    Forward(Queue, Duration),
    /// It cannot be read: keep it in its queue's parking queue.
    Park,
}

impl Answer {
    pub async fn give(self, delivery: Box<dyn Delivery>) -> StorageResult<()> {
        match self {
            Answer::Ack => delivery.ack().await,
            Answer::Retry(delay) => delivery.retry(delay).await,
            Answer::Release => delivery.release().await,
            Answer::Forward(queue, delay) => delivery.forward(queue, delay).await,
            Answer::Park => delivery.park().await,
        }
    }
}

/// Backoff before a delivery comes back after a storage failure: 1 s doubling to 30 s.
pub const OUTAGE_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

pub struct WorkerActor<W>(PhantomData<fn() -> W>);

impl<W> Default for WorkerActor<W> {
    fn default() -> Self {
        WorkerActor(PhantomData)
    }
}

/// What a worker is started with: the node, its name, its queue and its metric handles.
pub struct WorkerArgs {
    pub node: Arc<Node>,
    pub name: String,
    pub queue: Queue,
    pub metrics: ActorMetrics,
}

pub struct WorkerState {
    node: Arc<Node>,
    name: String,
    queue: Queue,
    metrics: ActorMetrics,
    /// Carried by the worker's own polls, so that no other sender can make it poll.
    token: Vec<u8>,
}

impl<W: Worker> Actor for WorkerActor<W> {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        WorkerArgs { node, name, queue, metrics }: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        if let Some(group) = group_of(queue) {
            ractor::pg::join(group.to_owned(), vec![myself.get_cell()]);
        }
        let mut token = vec![0u8; 16];
        getrandom::fill(&mut token).map_err(|e| format!("no random source: {e}"))?;
        myself.send_message(WorkerMsg::Poll(token.clone()))?;
        Ok(WorkerState { node, name, queue, metrics, token })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        message: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Crash if state.node.config.faults.fault_hooks => {
                panic!("fault injection: {} was told to crash", state.name)
            }
            WorkerMsg::Poll(token) if token == state.token => {
                if state.node.lifecycle.stopping() {
                    return Ok(());
                }
                poll_once::<W>(state).await;
                myself.send_message(WorkerMsg::Poll(token))?;
                Ok(())
            }
            WorkerMsg::Crash | WorkerMsg::Poll(_) => {
                tracing::warn!(actor = %state.name, "ignoring an order this worker does not take");
                Ok(())
            }
        }
    }
}

/// The process group a worker of `queue` joins, so that other nodes see it: converters and
/// notifiers (dead-letter workers join none).
fn group_of(queue: Queue) -> Option<&'static str> {
    match queue {
        Queue::Video => Some(groups::CONVERTERS),
        Queue::Mp3 | Queue::Failures => Some(groups::NOTIFIER),
        _ => None,
    }
}

async fn poll_once<W: Worker>(state: &WorkerState) {
    let received = state.node.stores.mailbox.receive(state.queue, &state.name, RECEIVE_WAIT).await;
    match received {
        Ok(Some(delivery)) => {
            let _handling = state.metrics.begin();
            let processed = crate::node::activity::ACTOR.scope(state.name.clone(), process::<W>(&state.node, delivery));
            if let Err(error) = processed.await {
                state.metrics.failed();
                tracing::warn!(actor = %state.name, %error, "delivery left unanswered; it comes back later");
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(actor = %state.name, %error, "mailbox unavailable; waiting before the next poll");
            tokio::time::sleep(RECEIVE_WAIT).await;
        }
    }
}

/// Handles one delivery and answers it.
pub async fn process<W: Worker>(node: &Node, delivery: Box<dyn Delivery>) -> StorageResult<()> {
    let answer = match W::handle(node, delivery.as_ref()).await {
        Ok(answer) => answer,
        Err(error) => after_storage_failure(&node.services.metrics.jobs, &error, delivery.attempt()),
    };
    if answer == Answer::Park {
        node.services.metrics.queues.parked(delivery.queue().name());
    }
    answer.give(delivery).await
}

fn after_storage_failure(jobs: &JobMetrics, error: &StorageError, attempt: u32) -> Answer {
    let backoff = OUTAGE_BACKOFF.wait(attempt);
    tracing::warn!(%error, ?backoff, "storage failed; the delivery is retried without counting an attempt");
    jobs.outage_retry();
    Answer::Retry(backoff)
}

/// Reads a delivery's message; `None` (after logging it) when it cannot be read.
pub fn decode<T: serde::de::DeserializeOwned>(delivery: &dyn Delivery) -> Option<T> {
    match serde_json::from_slice::<T>(delivery.body()) {
        Ok(message) => Some(message),
        Err(error) => {
            let preview = String::from_utf8_lossy(&delivery.body()[..delivery.body().len().min(200)]).into_owned();
            tracing::error!(queue = delivery.queue().name(), %error, body = %preview, "parking a message that cannot be read");
            None
        }
    }
}
