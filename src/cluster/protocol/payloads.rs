//! The payloads that cross nodes, as JSON inside the messages of [`super`]: what each says,
//! field by field. Their encoding is pinned by golden files (`golden/v{PROTOCOL_VERSION}/`,
//! checked by [`super::golden_tests`]): a change shows there, and the version rule of
//! [`super`] says whether it needs a new protocol version.

use serde::{Deserialize, Serialize};

use crate::ids::Id;
use crate::storage::JobState;

/// A login, from a gateway to an auth actor (`AuthMsg::Login`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// An auth actor's verdict on a login.
pub type LoginReply = Result<LoginGranted, LoginError>;

/// A session token issued for a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginGranted {
    pub token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Every password check place is taken: try again shortly.
    #[error("too many logins are being checked")]
    Busy,
    #[error("the user store is unavailable: {0}")]
    Unavailable(String),
}

/// What a node tells a peer about itself when a session is ready (`AgentMsg::Hello`, both
/// ways).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub node: String,
    pub version: String,
    pub protocol: u32,
    /// The address peers dial to reach it.
    pub advertise: String,
    pub roles: Vec<String>,
    /// The advertised addresses of the peers it is connected to (so that the mesh fills in).
    #[serde(default)]
    pub peers: Vec<String>,
}

/// What a node tells of itself (`AgentMsg::Status`; `/cluster`, `mp3converter cluster status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub version: String,
    pub protocol: u32,
    pub roles: Vec<String>,
    pub uptime_seconds: u64,
    /// The actors registered on the node.
    pub actors: Vec<String>,
    /// The job each converter holds.
    pub converting: Vec<Holding>,
    /// Conversions finished since the node started.
    pub jobs_done: u64,
    pub jobs_failed: u64,
}

/// One job held by one actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub actor: String,
    pub job_id: Id,
}

/// One change of a job, from a converter to every gateway's job-event hub
/// (`EventsMsg::JobEvent`), and as a client following the job receives it
/// ([`crate::job_events`] makes and orders them). A field a sender leaves out reads as absent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: Id,
    /// The version of the job record this event reports: what orders a job's events.
    pub version: u64,
    pub state: JobState,
    /// While converting: how much of the media time is converted, in percent (from the
    /// converter's progress reports; absent when the report is the record itself).
    #[serde(default)]
    pub percent: Option<f64>,
    /// When done: the MP3 to download.
    #[serde(default)]
    pub mp3_fid: Option<Id>,
    /// When done: the MP3's duration.
    #[serde(default)]
    pub media_seconds: Option<f64>,
    /// When failed: why; when queued again: why the last attempt ended, if it counted.
    #[serde(default)]
    pub error: Option<String>,
}
