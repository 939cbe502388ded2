//! The kinds of value a setting may take besides numbers, text, paths and addresses: which
//! backends, which roles, which log format, which forwarding header, where a test crash falls.

use serde::{Deserialize, Serialize};

/// Which backends the process uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// One process: SQLite, local files, a durable SQLite mailbox, email to SMTP or an outbox.
    Embedded,
    /// The legacy design's distributed backends: MySQL/MariaDB, MongoDB GridFS, RabbitMQ, SMTP.
    Cluster,
}

/// What a node does; a cluster spreads roles over processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The HTTP API (every node serves health and metrics either way).
    Gateway,
    /// Logins and tokens.
    Auth,
    /// Converter actors on the `video` queue.
    Converter,
    /// The notifier on the `mp3` queue.
    Notifier,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Gateway, Role::Auth, Role::Converter, Role::Notifier];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Which forwarding header trusted proxies maintain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardingHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx's `$proxy_add_x_forwarded_for`,
    /// ingress-nginx, HAProxy, Traefik, cloud load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// Test-only: where the notifier aborts the process, to show what a node that dies while it
/// mails leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NotifyCrash {
    /// Once the claim to send is stored, before the email goes.
    Claimed,
    /// Once the email went, before the record says so.
    Mailed,
}

/// Ways a worker can be told to misbehave (test-only: `--fault-hooks` and `--fault-worker`),
/// so that tests show how each ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerFault {
    /// A memory access fault (SIGSEGV), as a bug in a decoder would cause.
    Segfault,
    /// `abort()`, as FFmpeg's own assertions do.
    Abort,
    /// Unbounded recursion until the stack overflows.
    StackOverflow,
    /// A loop that never ends, at full CPU.
    Spin,
    /// Allocates without end.
    Allocate,
    /// Sends the node a message that is not one.
    Garbage,
    /// Tries to open a file, make a socket and start a process, and fails its job with what
    /// happened (the sandbox should refuse all three).
    Escape,
}

impl WorkerFault {
    pub fn parse(text: &str) -> Option<WorkerFault> {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
    }
}
