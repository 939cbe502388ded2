//! The queue-worker actor that converters and the notifier share: a competing consumer on one
//! mailbox queue, handling one delivery at a time (fair dispatch: prefetch 1).
//!
//! Each `Poll` waits a bounded time for a delivery and handles it, then the actor polls again;
//! between polls it sees stop requests, so a stop waits for at most the delivery in hand.

use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{NodeContext, RECEIVE_WAIT};
use crate::metrics::ActorMetrics;
use crate::storage::{Delivery, Queue};

/// What a worker does with one delivery of its queue.
pub trait Worker: Send + Sync + 'static {
    const QUEUE: Queue;

    /// Handles the delivery and answers it (ack, retry or release). An error leaves it
    /// unanswered: it is redelivered when its lease runs out.
    fn process(ctx: &NodeContext, delivery: Box<dyn Delivery>) -> impl Future<Output = anyhow::Result<()>> + Send;
}

pub struct WorkerActor<W>(PhantomData<fn() -> W>);

impl<W> Default for WorkerActor<W> {
    fn default() -> Self {
        WorkerActor(PhantomData)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerMsg {
    /// Take the next delivery, if one comes within the wait.
    Poll,
    /// Test-only fault injection: panic, so that the supervisor's restart can be observed.
    Crash,
}

pub struct WorkerState {
    ctx: Arc<NodeContext>,
    name: String,
    metrics: ActorMetrics,
}

impl<W: Worker> Actor for WorkerActor<W> {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = (Arc<NodeContext>, String);

    async fn pre_start(
        &self,
        myself: ActorRef<WorkerMsg>,
        (ctx, name): Self::Arguments,
    ) -> Result<WorkerState, ActorProcessingErr> {
        let metrics = ctx.metrics.actor(&name);
        myself.send_message(WorkerMsg::Poll)?;
        Ok(WorkerState { ctx, name, metrics })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        message: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Crash => panic!("fault injection: {} was told to crash", state.name),
            WorkerMsg::Poll => {
                if state.ctx.shutdown.is_cancelled() {
                    return Ok(());
                }
                poll_once::<W>(state).await;
                myself.send_message(WorkerMsg::Poll)?;
                Ok(())
            }
        }
    }
}

async fn poll_once<W: Worker>(state: &WorkerState) {
    let received = state.ctx.backends.mailbox.receive(W::QUEUE, &state.name, RECEIVE_WAIT).await;
    match received {
        Ok(Some(delivery)) => {
            let _handling = state.metrics.begin();
            if let Err(error) = W::process(&state.ctx, delivery).await {
                state.metrics.failed();
                tracing::warn!(actor = %state.name, error = format!("{error:#}"), "delivery left for redelivery");
            }
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(actor = %state.name, %error, "mailbox unavailable; waiting before the next poll");
            tokio::time::sleep(RECEIVE_WAIT).await;
        }
    }
}

/// Reads a delivery's message. One that cannot be read can never be handled: it is logged and
/// acknowledged away instead of looping forever.
pub async fn decode<T: serde::de::DeserializeOwned>(
    queue: Queue,
    delivery: Box<dyn Delivery>,
) -> anyhow::Result<Option<(T, Box<dyn Delivery>)>> {
    match serde_json::from_slice::<T>(delivery.body()) {
        Ok(message) => Ok(Some((message, delivery))),
        Err(error) => {
            let preview = String::from_utf8_lossy(&delivery.body()[..delivery.body().len().min(200)]).into_owned();
            tracing::error!(queue = queue.name(), %error, body = %preview, "dropping a message that is not a job message");
            delivery.ack().await?;
            Ok(None)
        }
    }
}
