//! Live job events: what converters report about a job as it changes (given back to the queue,
//! converting with its progress, done, failed), how those reports reach the gateways of every
//! node, and how a gateway hands them to the clients following the job
//! (`GET /jobs/{id}/events`, [`crate::http::handlers::events`]).
//!
//! ```text
//!  converter (any node) ──publish──► every member of the job-event hubs' process group
//!                                      (cast, JSON) = the hub of each gateway node ([`hub`])
//!                                          └──► this node's subscribers of that job
//! ```
//!
//! Events are a live view, not a record: a lost one costs a client only the wait until it reads
//! the job record again, and never touches the job. So publishing never waits and never fails
//! a job. In the embedded profile the group has the one local hub, and events stay in the
//! process.
//!
//! - [`event`]: making events from job records, and the order of a job's events (the event
//!   itself is a wire payload: [`crate::cluster::protocol::JobEvent`]);
//! - [`hub`]: the actor that receives them on a gateway node;
//! - [`subscribers`]: this node's clients following jobs, bounded.

pub mod event;
pub mod hub;
pub mod subscribers;

use ractor::ActorRef;

pub use crate::cluster::protocol::JobEvent;
pub use event::Cursor;
pub use subscribers::{JobSubscribers, Received, Subscription, TooManySubscribers};

use crate::cluster::protocol::{EventsMsg, encode, groups};

/// Sends `event` to the hub of every gateway node (this node's included); a send that fails is
/// logged and forgotten.
pub fn publish(event: &JobEvent) {
    let payload = encode(event);
    for cell in ractor::pg::get_members(&groups::JOB_EVENT_HUBS.to_owned()) {
        let hub: ActorRef<EventsMsg> = cell.into();
        if let Err(error) = hub.cast(EventsMsg::JobEvent(payload.clone())) {
            tracing::warn!(job_id = %event.job_id, hub = %hub.get_id(), %error, "a job event was not sent");
        }
    }
}
