//! What one node is: its configuration, its stores, the services its parts share, its
//! lifecycle and what its workers hold. Everything above builds on it: the actors, the HTTP
//! gateway and the actor cluster each take the narrow part of a [`Node`] they use, and this
//! module imports none of them (the README's architecture section has the rules, and
//! `architecture_tests` keeps them).
//!
//! - [`Stores`]: the backends behind the storage traits ([`crate::storage`]);
//! - [`Services`]: sending email, running FFmpeg on uploads, the metrics registry;
//! - [`Lifecycle`]: when the node started, and the signals that stop or drain it;
//! - [`activity`]: the jobs this node's workers hold right now;
//! - [`names`]: the names the node's actors are registered and measured under.

pub mod activity;
pub mod names;

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::sandbox::MediaWorker;
pub use crate::storage::Stores;
use activity::Activity;

/// One node, shared by every actor and task of the process.
pub struct Node {
    pub config: Config,
    pub stores: Stores,
    pub services: Services,
    pub lifecycle: Lifecycle,
    /// The jobs this node's workers hold (its status shows them).
    pub activity: Activity,
}

/// What the parts of a node share besides the stores.
#[derive(Clone)]
pub struct Services {
    pub mailer: Arc<dyn Mailer>,
    /// FFmpeg on uploads (conversions, audio-only copies): a [`crate::sandbox::Sandbox`] of
    /// worker processes, or a stand-in in tests of the actors' logic.
    pub media: Arc<dyn MediaWorker>,
    pub metrics: Arc<Metrics>,
}

/// A node's life: one shutdown signal that every task watches, and the drain request.
#[derive(Clone)]
pub struct Lifecycle {
    /// Cancelled once when the node starts shutting down; every task watches it.
    pub shutdown: CancellationToken,
    /// Cancelled when the node is asked to drain (`POST /cluster/nodes/{name}/drain`): the
    /// application then stops as on SIGTERM.
    pub drain: CancellationToken,
    /// When the node started (its status shows the uptime).
    pub started: Instant,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        Lifecycle { shutdown: CancellationToken::new(), drain: CancellationToken::new(), started: Instant::now() }
    }

    /// Whether the node is shutting down.
    pub fn stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}
