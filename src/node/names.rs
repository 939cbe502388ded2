//! The names a node's actors are registered under (`ractor::registry`) and measured under (the
//! `actor` label of every `mp3c_actor_*` metric, which the dashboards query): one place, so
//! that a log line, a metric and a lookup by name always agree.

/// The node supervisor, the root of every other actor.
pub const SUPERVISOR: &str = "node-supervisor";
/// The gateway: the HTTP server's actor.
pub const GATEWAY: &str = "gateway";
/// The auth actor: logins.
pub const AUTH: &str = "auth";
/// The notifier of the `mp3` queue.
pub const NOTIFIER: &str = "notifier";
/// The sweeper: lost messages published again.
pub const SWEEPER: &str = "sweeper";
/// The gauge refresher.
pub const GAUGES: &str = "gauges";
/// A gateway node's job-event hub.
pub const EVENT_HUB: &str = "job-events";
/// The actor cluster's membership (with `--cluster-listen`).
pub const MEMBERSHIP: &str = "membership";
/// The node agent (with `--cluster-listen`).
pub const NODE_AGENT: &str = "node-agent";

/// The `n`th converter actor (from 1).
pub fn converter(n: u32) -> String {
    format!("converter-{n}")
}

/// The notifier of a queue other than `mp3` (`failures`).
pub fn notifier_of(queue: &str) -> String {
    format!("{NOTIFIER}-{queue}")
}

/// The dead-letter worker of a work queue.
pub fn dead_letters_of(queue: &str) -> String {
    format!("dead-letters-{queue}")
}
