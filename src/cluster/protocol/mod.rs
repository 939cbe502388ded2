//! What crosses nodes: the messages of the actors that other nodes call, and the version rule.
//!
//! Every message that crosses a node is a `#[derive(RactorClusterMessage)]` enum whose variants
//! are told apart by name on the wire, and every payload is JSON in a `Vec<u8>` (decoded by us,
//! so that a malformed payload from a peer is an error to answer, never a panic). Calls always
//! carry a time limit: a message a peer cannot decode is dropped without an answer.
//!
//! The rule for changing them: within one [`PROTOCOL_VERSION`], variants and JSON fields may be
//! added (readers ignore what they do not know, and give what is missing a default), never
//! renamed or removed. Anything else is a new protocol version, and nodes of different protocol
//! versions refuse each other (each logs why). Group names and message variants are on the
//! wire too: they follow the same rule.
//!
//! - [`payloads`]: every payload, field by field;
//! - `golden/v1/`: each payload's encoding in this protocol version, which a test compares with
//!   what the code writes (`golden_tests`): any change of an encoding fails it, and says
//!   whether the change is an addition (update the golden file) or needs a new version.

#[cfg(test)]
mod golden_tests;
pub mod payloads;

pub use payloads::{Hello, Holding, JobEvent, LoginError, LoginGranted, LoginReply, LoginRequest, NodeStatus};

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version of this file's messages; see the module's doc for when it changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// The process groups actors join, across every node (`ractor::pg`).
pub mod groups {
    /// Auth actors: logins.
    pub const AUTH: &str = "auth";
    /// The job-event hub of each gateway node: live job events for its clients. (Its name on
    /// the wire is `gateway`, as protocol version 1 has it.)
    pub const JOB_EVENT_HUBS: &str = "gateway";
    /// Converter actors.
    pub const CONVERTERS: &str = "converters";
    /// Notifier actors.
    pub const NOTIFIER: &str = "notifier";
    /// One node agent per node: status, drain, heartbeat.
    pub const NODES: &str = "nodes";

    pub const ALL: [&str; 5] = [AUTH, JOB_EVENT_HUBS, CONVERTERS, NOTIFIER, NODES];
}

/// To an auth actor.
#[derive(RactorClusterMessage)]
pub enum AuthMsg {
    /// A [`LoginRequest`] in, a [`LoginReply`] out.
    #[rpc]
    Login(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// To a gateway's job-event hub.
#[derive(RactorClusterMessage)]
pub enum EventsMsg {
    /// A [`JobEvent`], for the clients that follow that job; cast, never called.
    JobEvent(Vec<u8>),
}

/// To a node agent.
#[derive(RactorClusterMessage)]
pub enum AgentMsg {
    /// A [`Hello`] in (the caller's node, version and protocol), this node's [`Hello`] out.
    #[rpc]
    Hello(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// The heartbeat: anything in, anything out, soon.
    #[rpc]
    Ping(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// This node's [`NodeStatus`] out.
    #[rpc]
    Status(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// Stop taking work, finish or release what is held, and exit, as on SIGTERM.
    Drain(Vec<u8>),
}

/// To a queue worker (a converter, a notifier). Workers cross nodes only so that each can be a
/// visible member of its process group on every node (the library shares only such actors); a
/// worker takes no orders from other nodes: a `Poll` that does not carry the worker's own
/// token is ignored, and `Crash` works only where fault hooks are on.
#[derive(RactorClusterMessage)]
pub enum WorkerMsg {
    /// Take the next delivery, if one comes within the wait (the worker's token).
    Poll(Vec<u8>),
    /// Test-only fault injection: panic, so that the supervisor's restart can be observed.
    Crash,
}

/// A payload for the wire.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("protocol payloads always serialise")
}

/// A payload from the wire; a malformed one is an error, never a panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}
