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
use crate::security::token::TokenKeys;
use crate::storage::Backends;
use crate::transcode::Transcode;

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
    pub mailer: Arc<dyn Mailer>,
    pub metrics: Arc<Metrics>,
    /// The conversion itself: [`crate::transcode::transcode`], or a stand-in in tests of the
    /// actors' logic.
    pub transcode: Transcode,
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

/// Backoff before retry number `attempt` (from 1): 2 s doubling to at most 5 minutes.
pub fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(attempt.clamp(1, 9))).min(Duration::from_secs(300))
}
