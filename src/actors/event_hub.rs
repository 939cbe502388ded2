//! The job-event hub of a gateway node: joins the `gateway` process group, so that converters
//! on every node find it, and hands each job event it receives to this node's subscribers
//! ([`crate::job_events`]). An event that cannot be read (a malformed payload from a peer) is
//! logged and dropped, never a panic.
//!
//! It stops with the gateway: a node that shuts down leaves the group before anything else, so
//! no event is sent to it any more. A restarted hub finds the subscribers still there (they are
//! the node's); what was sent while it was down they catch up on from the job record.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{EVENT_HUB, NodeContext};
use crate::cluster::protocol::{EventsMsg, decode, groups};
use crate::job_events::JobEvent;
use crate::metrics::ActorMetrics;

pub struct EventHub;

pub struct EventHubState {
    ctx: Arc<NodeContext>,
    metrics: ActorMetrics,
}

impl Actor for EventHub {
    type Msg = EventsMsg;
    type State = EventHubState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<EventsMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<EventHubState, ActorProcessingErr> {
        let metrics = ctx.metrics.actor(EVENT_HUB);
        ractor::pg::join(groups::GATEWAY.to_owned(), vec![myself.get_cell()]);
        Ok(EventHubState { ctx, metrics })
    }

    async fn handle(
        &self,
        _myself: ActorRef<EventsMsg>,
        message: EventsMsg,
        state: &mut EventHubState,
    ) -> Result<(), ActorProcessingErr> {
        let EventsMsg::JobEvent(payload) = message;
        let _handling = state.metrics.begin();
        match decode::<JobEvent>(&payload) {
            Ok(event) => state.ctx.job_events.deliver(event),
            Err(error) => {
                state.metrics.failed();
                tracing::warn!(%error, bytes = payload.len(), "dropping a job event that cannot be read");
            }
        }
        Ok(())
    }
}
