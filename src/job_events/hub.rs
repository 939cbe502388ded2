//! The job-event hub of a gateway node: joins the job-event hubs' process group, so that
//! converters on every node find it, and hands each job event it receives to this node's
//! subscribers ([`super::subscribers`]). An event that cannot be read (a malformed payload from
//! a peer) is logged and dropped, never a panic.
//!
//! It stops with the gateway: a node that shuts down leaves the group before anything else, so
//! no event is sent to it any more. A restarted hub finds the subscribers still there (they are
//! the node's); what was sent while it was down they catch up on from the job record.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::JobSubscribers;
use crate::cluster::protocol::{EventsMsg, JobEvent, decode, groups};
use crate::metrics::ActorMetrics;

pub struct EventHub;

/// What the hub works with.
pub struct EventHubArgs {
    /// This node's clients following jobs.
    pub subscribers: Arc<JobSubscribers>,
    pub metrics: ActorMetrics,
}

impl Actor for EventHub {
    type Msg = EventsMsg;
    type State = EventHubArgs;
    type Arguments = EventHubArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<EventsMsg>,
        args: EventHubArgs,
    ) -> Result<EventHubArgs, ActorProcessingErr> {
        ractor::pg::join(groups::JOB_EVENT_HUBS.to_owned(), vec![myself.get_cell()]);
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<EventsMsg>,
        message: EventsMsg,
        state: &mut EventHubArgs,
    ) -> Result<(), ActorProcessingErr> {
        let EventsMsg::JobEvent(payload) = message;
        let _handling = state.metrics.begin();
        match decode::<JobEvent>(&payload) {
            Ok(event) => state.subscribers.deliver(event),
            Err(error) => {
                state.metrics.failed();
                tracing::warn!(%error, bytes = payload.len(), "dropping a job event that cannot be read");
            }
        }
        Ok(())
    }
}
