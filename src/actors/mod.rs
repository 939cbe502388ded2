//! The supervised actors of one node.
//!
//! ```text
//!                      NodeSupervisor (restart with backoff, intensity limit)
//!        ┌──────────────┬──────────────┼─────────────────┬──────────────────┐
//!     gateway          auth      converter-1..N       notifier,           dead-letters-*
//!   (HTTP server)  (logins, JWT)  (video queue ->    notifier-failures   (video.dlq -> job
//!                                  MP3 -> mp3 or      (mp3, failures ->   failed; mp3.dlq,
//!                                  failures queue)     email)              failures.dlq -> back)
//!        sweeper (lost messages again), gauges (store-backed gauges every 5 s),
//!        job-events (gateway nodes: live job events from every converter, to the clients)
//! ```
//!
//! Actors talk to backends only through the traits in [`crate::storage`] and pass ids, never
//! media, so that the same actors run in every profile and may later sit on different nodes.

pub mod activity;
pub mod auth;
pub mod converter;
pub mod dead_letters;
pub mod event_hub;
pub mod gateway;
pub mod gauges;
pub mod notifier;
pub mod periodic;
pub mod record;
pub mod restart;
pub mod supervisor;
pub mod sweeper;
pub mod worker;

#[cfg(test)]
mod exactly_once_tests;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::limits::GatewayLimits;
use crate::job_events::JobSubscribers;
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::sandbox::MediaWorker;
use crate::security::token::TokenKeys;
use crate::storage::Backends;

/// Registered name of the auth actor, through which the gateway finds it.
pub const AUTH: &str = "auth";
/// Registered name of the gateway actor.
pub const GATEWAY: &str = "gateway";
/// Registered name of the sweeper.
pub const SWEEPER: &str = "sweeper";
/// Registered name of the gauge refresher.
pub const GAUGES: &str = "gauges";
/// Registered name of the job-event hub.
pub const EVENT_HUB: &str = "job-events";

/// Registered name of the `n`th converter actor (from 1).
pub fn converter_name(n: u32) -> String {
    format!("converter-{n}")
}

/// How long a worker waits on its queue before looking at its own mailbox again, which bounds
/// how late it notices a stop.
pub const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// Everything the actors of one node share.
pub struct NodeContext {
    pub config: Config,
    pub backends: Backends,
    pub tokens: TokenKeys,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<crate::config::Secret>,
    /// Whether a token's session still stands (cached per user for a moment).
    pub sessions: crate::security::sessions::Sessions,
    pub mailer: Arc<dyn Mailer>,
    pub metrics: Arc<Metrics>,
    /// FFmpeg on uploads (conversions, audio-only copies): a [`crate::sandbox::Sandbox`] of
    /// worker processes, or a stand-in in tests of the actors' logic.
    pub media: Arc<dyn MediaWorker>,
    /// What the gateway admits (login rates, uploads in progress); node-wide, so that a
    /// restarted gateway does not forget who was being held back.
    pub limits: GatewayLimits,
    /// The clients following jobs on this node (`GET /jobs/{id}/events`); node-wide, so that
    /// they outlive a restart of the hub that feeds them.
    pub job_events: Arc<JobSubscribers>,
    /// Cancelled once when the node starts shutting down; every task watches it.
    pub shutdown: CancellationToken,
    /// Cancelled when the node is asked to drain (`POST /cluster/nodes/{name}/drain`): the
    /// application then stops as on SIGTERM.
    pub drain: CancellationToken,
    /// When the node started (its status shows the uptime).
    pub started: std::time::Instant,
    /// The jobs this node's workers hold.
    pub activity: activity::Activity,
    /// The actor cluster, when `--cluster-listen` turned it on.
    pub cluster: Option<crate::cluster::node::ClusterLink>,
}

/// The wait before try number `attempt` (from 1) of something that keeps failing: `first`,
/// doubling each try, at most `cap`. Every backoff of the actors is one of these.
pub fn backoff(attempt: u32, first: Duration, cap: Duration) -> Duration {
    first.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(cap)
}

/// Backoff before retry number `attempt` (from 1) of a job's message: 2 s doubling to at most
/// 5 minutes.
pub fn retry_backoff(attempt: u32) -> Duration {
    backoff(attempt, Duration::from_secs(2), Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_doubles_from_its_first_wait_to_its_cap() {
        let (first, cap) = (Duration::from_millis(250), Duration::from_secs(5));
        let millis: Vec<u128> = (1..=7).map(|try_number| backoff(try_number, first, cap).as_millis()).collect();
        assert_eq!(millis, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff(u32::MAX, first, cap), cap, "no overflow, however long it lasts");
        assert_eq!(retry_backoff(1), Duration::from_secs(2));
        assert_eq!(retry_backoff(9), Duration::from_secs(300));
    }
}
