//! An actor that does one piece of housekeeping on a timer: the sweeper and the gauge refresher.
//! A tick that is still running when the next is due delays it (the mailbox queues the tick)
//! rather than running twice at once.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;

use crate::node::Node;

/// One piece of periodic housekeeping.
pub trait Periodic: Send + Sync + 'static {
    /// The time between ticks.
    fn period(node: &Node) -> Duration;
    /// One tick; it reports its own failures (the next tick tries again).
    fn tick(node: &Node) -> impl Future<Output = ()> + Send;
}

pub struct PeriodicActor<P>(PhantomData<fn() -> P>);

impl<P> Default for PeriodicActor<P> {
    fn default() -> Self {
        PeriodicActor(PhantomData)
    }
}

#[derive(RactorMessage)]
pub struct Tick;

pub struct PeriodicState {
    node: Arc<Node>,
    /// The timer, stopped with the actor.
    timer: JoinHandle<()>,
}

impl<P: Periodic> Actor for PeriodicActor<P> {
    type Msg = Tick;
    type State = PeriodicState;
    type Arguments = Arc<Node>;

    async fn pre_start(&self, myself: ActorRef<Tick>, node: Arc<Node>) -> Result<PeriodicState, ActorProcessingErr> {
        myself.send_message(Tick)?;
        let timer = myself.send_interval(P::period(&node), || Tick);
        Ok(PeriodicState { node, timer })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Tick>,
        _tick: Tick,
        state: &mut PeriodicState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.node.lifecycle.shutdown.is_cancelled() {
            P::tick(&state.node).await;
        }
        Ok(())
    }

    async fn post_stop(&self, _myself: ActorRef<Tick>, state: &mut PeriodicState) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        Ok(())
    }
}
