//! The actor cluster: one actor system across the nodes of the cluster profile
//! (`ractor_cluster`). RabbitMQ stays the persistent mailbox the converters compete on; the
//! actor cluster carries everything else that crosses nodes (logins, live job events, status,
//! drain).
//!
//! - [`protocol`]: the messages that cross nodes, the process groups, the version rule.
//! - [`members`]: finding a group's actors, this node's first.

pub mod members;
pub mod protocol;
