//! The node's working actors, each supervised by the node supervisor ([`crate::app::supervisor`]):
//!
//! ```text
//!        auth            converter-1..N        notifier,             dead-letters-*
//!   (logins, JWT)        (video queue ->       notifier-failures     (video.dlq -> job failed;
//!                         MP3 -> mp3 or        (mp3, failures ->     mp3.dlq, failures.dlq ->
//!                         failures queue)       email)               back)
//!        sweeper (lost messages again), gauges (store-backed gauges every 5 s)
//! ```
//!
//! The gateway (the HTTP server's actor) is [`crate::http::gateway`]'s, the job-event hub
//! [`crate::job_events::hub`]'s, the membership and node agent [`crate::cluster`]'s.
//!
//! Actors talk to backends only through the traits in [`crate::storage`] and pass ids, never
//! media, so that the same actors run in every profile and on any node. Each takes the narrow
//! part of the [`crate::node::Node`] it needs.

pub mod auth;
pub mod converter;
pub mod dead_letters;
pub mod gauges;
pub mod jobs;
pub mod notifier;
pub mod periodic;
pub mod record;
pub mod sweeper;
pub mod worker;

#[cfg(test)]
mod exactly_once_tests;

use std::time::Duration;

use crate::backoff::Backoff;

/// How long a worker waits on its queue before looking at its own mailbox again, which bounds
/// how late it notices a stop.
pub const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// Backoff of a notice retried while the mail server refuses it: 2 s doubling to at most 5
/// minutes.
pub const MAIL_BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
