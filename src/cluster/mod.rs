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
//! - [`members`]: finding a group's actors, this node's first.

pub mod agent;
pub mod dial;
pub mod listener;
pub mod members;
pub mod membership;
pub mod node;
pub mod protocol;
pub mod tls;
