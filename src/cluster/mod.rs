//! The actor cluster: one actor system across the nodes of the cluster profile
//! (`ractor_cluster`). RabbitMQ stays the persistent mailbox the converters compete on; the
//! actor cluster carries everything else that crosses nodes (logins, live job events, status,
//! drain).
//!
//! - [`protocol`]: the messages that cross nodes, the process groups, the version rule.
//! - [`node`]: starting the node server (cookie, optional mutual TLS from [`tls`], whose
//!   handshakes [`listener`] completes with a time limit).
//! - [`membership`]: keeping a full mesh: seeds, dialing ([`dial`]), redialing, heartbeats,
//!   greetings, and what `/cluster` shows of each peer.
//! - [`agent`]: the node agent (greetings, pings, status, drain).
//! - [`members`]: finding a group's actors, this node's first, and other nodes' agents.

pub mod agent;
pub mod dial;
pub mod listener;
pub mod members;
pub mod membership;
pub mod node;
pub mod protocol;
pub mod tls;

use crate::config::Config;

/// The actor cluster protocol version this node speaks: [`protocol::PROTOCOL_VERSION`] (another
/// only under fault hooks, as a node of another release would).
pub fn protocol_version(config: &Config) -> u32 {
    config.faults.fault_protocol_version.filter(|_| config.faults.fault_hooks).unwrap_or(protocol::PROTOCOL_VERSION)
}
