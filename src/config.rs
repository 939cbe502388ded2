//! Configuration: command-line flags, then `MP3C_*` environment variables, then an optional TOML
//! file, then defaults. Secrets never come from flags (they would show in `ps`): only from an
//! environment variable or a file named by a flag (a backend URL with a password in a flag is
//! refused: [`refuse_passwords_in_flags`]), and they are redacted in every `Debug`.
//!
//! [`Settings`] is what a layer may say (every field optional); [`Config`] is the resolved whole.
//! Layers are merged as TOML tables, so a new setting is one field in each struct and nothing else.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::http::client_address::{ForwardingHeader, TrustedProxies};
use crate::http::stall::Pace;
use crate::sandbox::Sandbox;
use crate::sandbox::wire::WorkerFault;
use crate::transcode::TranscodeOptions;

/// Which backends the process uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// One process: SQLite, local files, a durable SQLite mailbox, email to SMTP or an outbox.
    Embedded,
    /// The seed's distributed backends: MySQL/MariaDB, MongoDB GridFS, RabbitMQ, SMTP.
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

/// One layer of configuration as flags and environment give it; the TOML file uses the same keys.
#[derive(clap::Args, Serialize, Debug, Default, Clone)]
pub struct Settings {
    /// TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "MP3C_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Which backends to use.
    #[arg(long, env = "MP3C_PROFILE", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// Roles of this node, comma-separated (default: all four).
    #[arg(long, env = "MP3C_ROLES", value_enum, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
    /// Cluster profile: MySQL/MariaDB URL for users (mysql://user:password@host:port/db).
    #[arg(long, env = "MP3C_MYSQL_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql_url: Option<Secret>,
    /// File holding the MySQL/MariaDB URL (else `MP3C_MYSQL_URL`; a password in the flag above is refused).
    #[arg(long, env = "MP3C_MYSQL_URL_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mysql_url_file: Option<PathBuf>,
    /// Cluster profile: MongoDB URL for GridFS blobs and job records.
    #[arg(long, env = "MP3C_MONGODB_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mongodb_url: Option<Secret>,
    /// File holding the MongoDB URL (else `MP3C_MONGODB_URL`; a password in the flag above is refused).
    #[arg(long, env = "MP3C_MONGODB_URL_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mongodb_url_file: Option<PathBuf>,
    /// Cluster profile: RabbitMQ URL for the persistent mailbox (amqp://user:password@host:port/vhost).
    #[arg(long, env = "MP3C_AMQP_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_url: Option<Secret>,
    /// File holding the RabbitMQ URL (else `MP3C_AMQP_URL`; a password in the flag above is refused).
    #[arg(long, env = "MP3C_AMQP_URL_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amqp_url_file: Option<PathBuf>,
    /// Cluster profile: messages each consumer may hold unacknowledged (1: fair dispatch).
    #[arg(long, env = "MP3C_PREFETCH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<u16>,
    /// Address the HTTP server listens on (port 0 picks a free port).
    #[arg(long, env = "MP3C_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Serve `/metrics` on this address alone, not on --listen's (e.g. a port only the
    /// monitoring network reaches).
    #[arg(long, env = "MP3C_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// File holding a bearer token `/metrics` requires (else `MP3C_METRICS_TOKEN`; none: open).
    #[arg(long, env = "MP3C_METRICS_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token_file: Option<PathBuf>,
    /// Folder for the database, blobs, outbox and generated secrets.
    #[arg(long, env = "MP3C_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Converter actors in this process (default: the number of cores).
    #[arg(long, env = "MP3C_CONVERTERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converters: Option<u32>,
    /// Name of this node in metrics and logs.
    #[arg(long, env = "MP3C_NODE_NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// File holding the JWT signing secret (else `MP3C_JWT_SECRET`; embedded: generated once).
    #[arg(long, env = "MP3C_JWT_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "MP3C_TOKEN_TTL_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ttl_seconds: Option<u64>,
    /// Largest accepted upload body, in bytes.
    #[arg(long, env = "MP3C_MAX_UPLOAD_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_upload_bytes: Option<u64>,
    /// An upload that sends no body bytes for this many seconds is cut off and its file removed.
    #[arg(long, env = "MP3C_UPLOAD_STALL_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_stall_seconds: Option<u64>,
    /// An upload that sends less than this on average, once its grace period is over, is cut
    /// off (408 `upload_too_slow`); 0: no minimum.
    #[arg(long, env = "MP3C_UPLOAD_MIN_BYTES_PER_SECOND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_min_bytes_per_second: Option<u64>,
    /// How long an upload may send below the minimum rate at first, in seconds.
    #[arg(long, env = "MP3C_UPLOAD_RATE_GRACE_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_rate_grace_seconds: Option<u64>,
    /// The longest an upload may take, in seconds (of waiting for the client).
    #[arg(long, env = "MP3C_UPLOAD_MAX_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_max_seconds: Option<u64>,
    /// Uploads one user may have in progress at once; past it, 429.
    #[arg(long, env = "MP3C_MAX_UPLOADS_PER_USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uploads_per_user: Option<u32>,
    /// Uploads in progress at once on this node, all users together; past it, 503.
    #[arg(long, env = "MP3C_MAX_CONCURRENT_UPLOADS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_uploads: Option<u32>,
    /// Job event streams one user may hold open at once; past it, 429.
    #[arg(long, env = "MP3C_MAX_EVENT_STREAMS_PER_USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_streams_per_user: Option<u32>,
    /// Job event streams one client address may hold open at once; past it, 429.
    #[arg(long, env = "MP3C_MAX_EVENT_STREAMS_PER_ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_event_streams_per_address: Option<u32>,
    /// Connections one client address may hold open at once (trusted proxies aside); past it,
    /// a new one is answered 429 and closed.
    #[arg(long, env = "MP3C_MAX_CONNECTIONS_PER_ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<u32>,
    /// Password checks (argon2id, 19 MiB each) running at once (default: the number of cores).
    #[arg(long, env = "MP3C_LOGIN_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_concurrency: Option<u32>,
    /// Logins that may wait for a password check; past it, 503.
    #[arg(long, env = "MP3C_LOGIN_QUEUE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_queue: Option<u32>,
    /// Logins one client address may attempt per minute, on average; past it, 429.
    #[arg(long, env = "MP3C_ADDRESS_LOGINS_PER_MINUTE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_logins_per_minute: Option<u32>,
    /// Logins one client address may attempt in a row before its per-minute rate applies.
    #[arg(long, env = "MP3C_ADDRESS_LOGIN_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address_login_burst: Option<u32>,
    /// Failed logins one client address may make on one account per minute, on average; past
    /// it, that address waits (429) and the account's owner, elsewhere, does not.
    #[arg(long, env = "MP3C_CLIENT_FAILED_LOGINS_PER_MINUTE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_failed_logins_per_minute: Option<u32>,
    /// Failed logins one client address may make on one account in a row.
    #[arg(long, env = "MP3C_CLIENT_FAILED_LOGIN_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_failed_login_burst: Option<u32>,
    /// Failed logins one account may take per minute from all addresses together, on average;
    /// past it, addresses that failed on it wait and a new one gets a single guess.
    #[arg(long, env = "MP3C_ACCOUNT_FAILED_LOGINS_PER_MINUTE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_failed_logins_per_minute: Option<u32>,
    /// Failed logins one account may take in a row before its per-minute rate applies.
    #[arg(long, env = "MP3C_ACCOUNT_FAILED_LOGIN_BURST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_failed_login_burst: Option<u32>,
    /// Reverse proxies whose forwarding header names the client, comma-separated CIDRs (e.g.
    /// the Ingress controller's pod range). Empty: every client is its TCP peer.
    #[arg(long, env = "MP3C_TRUSTED_PROXIES", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    /// The forwarding header the trusted proxies maintain (only that one is read).
    #[arg(long, env = "MP3C_CLIENT_ADDRESS_HEADER", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address_header: Option<ForwardingHeader>,
    /// Store an audio-only copy of each upload (remuxed, nothing decoded) instead of the video
    /// (default: on in the cluster profile, off in the embedded one).
    #[arg(long, env = "MP3C_STORE_AUDIO_ONLY", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_audio_only: Option<bool>,
    /// Keep every upload whole in `videos`, so that the seed's own converter can convert it
    /// (turns --store-audio-only off).
    #[arg(long, env = "MP3C_SEED_COMPATIBLE", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_compatible: Option<bool>,
    /// MP3 bit rate (constant), in kb/s.
    #[arg(long, env = "MP3C_BITRATE_KBPS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u32>,
    /// Longest audio converted, in seconds: a job whose audio is declared or found longer
    /// fails with `too_long` (a small file can decode to hours of silence).
    #[arg(long, env = "MP3C_MAX_MEDIA_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_media_seconds: Option<u64>,
    /// Address space of each sandboxed FFmpeg worker process, in MiB.
    #[arg(long, env = "MP3C_WORKER_MEMORY_MIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_memory_mib: Option<u64>,
    /// Longest one conversion may run, in seconds.
    #[arg(long, env = "MP3C_CONVERSION_TIMEOUT_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_timeout_seconds: Option<u64>,
    /// How long a job may be retried without its attempts counting (a store or the broker
    /// failing under it) while every backend answers, before it fails with the last reason.
    #[arg(long, env = "MP3C_UNCOUNTED_RETRY_LIMIT_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncounted_retry_limit_seconds: Option<u64>,
    /// Conversion attempts of one job that may crash or time out before it fails for good.
    #[arg(long, env = "MP3C_MAX_ATTEMPTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Queued and converting jobs one user may have at once; more uploads get 429.
    #[arg(long, env = "MP3C_MAX_JOBS_PER_USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_jobs_per_user: Option<u64>,
    /// How long a claimed job stays leased without a heartbeat before it is redelivered.
    #[arg(long, env = "MP3C_LEASE_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
    /// On SIGTERM, how long in-flight conversions may run before they are released to the queue.
    #[arg(long, env = "MP3C_SHUTDOWN_GRACE_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Restarts of one actor allowed within the restart window before the node stops.
    #[arg(long, env = "MP3C_RESTART_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_limit: Option<u32>,
    /// The restart window, in seconds.
    #[arg(long, env = "MP3C_RESTART_WINDOW_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_window_seconds: Option<u64>,
    /// SMTP server: smtp://host:port (plain), smtp://host:port?tls=required (STARTTLS),
    /// smtps://host:port (TLS). Without it, mail goes to the outbox folder in the data folder.
    #[arg(long, env = "MP3C_SMTP_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<Url>,
    /// SMTP user name (the password comes from `MP3C_SMTP_PASSWORD` or --smtp-password-file).
    #[arg(long, env = "MP3C_SMTP_USERNAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    /// File holding the SMTP password.
    #[arg(long, env = "MP3C_SMTP_PASSWORD_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_password_file: Option<PathBuf>,
    /// Sender address of notification emails.
    #[arg(long, env = "MP3C_MAIL_FROM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
    /// Public base URL of the gateway, used for download links in emails.
    #[arg(long, env = "MP3C_PUBLIC_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<Url>,
    /// Cluster profile: the actor cluster's listening address (turns the actor cluster on),
    /// e.g. 0.0.0.0:4697.
    #[arg(long, env = "MP3C_CLUSTER_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_listen: Option<SocketAddr>,
    /// The address peers dial to reach this node (default: this host's name and the listen port).
    #[arg(long, env = "MP3C_CLUSTER_ADVERTISE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_advertise: Option<String>,
    /// Nodes to join, comma-separated host:port; a name with several addresses (a Kubernetes
    /// headless Service) means each of them, resolved again every 10 s.
    #[arg(long, env = "MP3C_CLUSTER_SEEDS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_seeds: Option<Vec<String>>,
    /// File holding the cluster cookie (else `MP3C_CLUSTER_COOKIE`); required with --cluster-listen.
    #[arg(long, env = "MP3C_CLUSTER_COOKIE_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cookie_file: Option<PathBuf>,
    /// Mutual TLS between nodes: this node's certificate (PEM); with --cluster-tls-key and
    /// --cluster-tls-ca.
    #[arg(long, env = "MP3C_CLUSTER_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "MP3C_CLUSTER_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_tls_key: Option<PathBuf>,
    /// The CA (PEM) whose certificates peers must present.
    #[arg(long, env = "MP3C_CLUSTER_TLS_CA")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_tls_ca: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "MP3C_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Test-only: enables fault-injection routes and delays. Never in production.
    #[arg(long, env = "MP3C_FAULT_HOOKS", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_hooks: Option<bool>,
    /// Test-only (needs --fault-hooks): each conversion waits this long before it starts.
    #[arg(long, env = "MP3C_FAULT_CONVERT_DELAY_MS", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_convert_delay_ms: Option<u64>,
    /// Test-only (needs --fault-hooks): converting a file of this name aborts the process, as
    /// a file that crashes FFmpeg would.
    #[arg(long, env = "MP3C_FAULT_CRASH_ON", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_crash_on: Option<String>,
    /// Test-only (needs --fault-hooks): the notifier aborts the process at this point of
    /// mailing each email.
    #[arg(long, env = "MP3C_FAULT_CRASH_NOTIFYING", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_crash_notifying: Option<NotifyCrash>,
    /// Test-only (needs --fault-hooks): the FFmpeg worker converting a file of this name
    /// misbehaves, as `NAME=FAULT[,NAME=FAULT...]` with FAULT one of segfault, abort,
    /// stack-overflow, spin, allocate, garbage.
    #[arg(long, env = "MP3C_FAULT_WORKER", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_worker: Option<String>,
    /// Test-only (needs --fault-hooks): the actor cluster protocol version this node announces,
    /// as a node of another release would.
    #[arg(long, env = "MP3C_FAULT_PROTOCOL_VERSION", hide = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_protocol_version: Option<u32>,
}

/// The resolved configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub profile: Profile,
    pub roles: Vec<Role>,
    pub mysql_url: Option<Secret>,
    pub mongodb_url: Option<Secret>,
    pub amqp_url: Option<Secret>,
    pub mysql_url_file: Option<PathBuf>,
    pub mongodb_url_file: Option<PathBuf>,
    pub amqp_url_file: Option<PathBuf>,
    pub prefetch: u16,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_token_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub converters: u32,
    pub node_name: String,
    pub jwt_secret_file: Option<PathBuf>,
    pub token_ttl_seconds: u64,
    pub max_upload_bytes: u64,
    pub upload_stall_seconds: u64,
    pub upload_min_bytes_per_second: u64,
    pub upload_rate_grace_seconds: u64,
    pub upload_max_seconds: u64,
    pub max_uploads_per_user: u32,
    pub max_concurrent_uploads: u32,
    pub max_event_streams_per_user: u32,
    pub max_event_streams_per_address: u32,
    pub max_connections_per_address: u32,
    pub login_concurrency: u32,
    pub login_queue: u32,
    pub address_logins_per_minute: u32,
    pub address_login_burst: u32,
    pub account_failed_logins_per_minute: u32,
    pub account_failed_login_burst: u32,
    pub client_failed_logins_per_minute: u32,
    pub client_failed_login_burst: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub client_address_header: ForwardingHeader,
    /// None: the profile's default (see [`Config::stores_audio_only`]).
    pub store_audio_only: Option<bool>,
    pub seed_compatible: bool,
    pub bitrate_kbps: u32,
    pub max_media_seconds: u64,
    pub worker_memory_mib: u64,
    pub conversion_timeout_seconds: u64,
    pub max_attempts: u32,
    pub uncounted_retry_limit_seconds: u64,
    pub max_jobs_per_user: u64,
    pub lease_seconds: u64,
    pub shutdown_grace_seconds: u64,
    pub restart_limit: u32,
    pub restart_window_seconds: u64,
    pub smtp_url: Option<Url>,
    pub smtp_username: Option<String>,
    pub smtp_password_file: Option<PathBuf>,
    pub mail_from: String,
    pub public_url: Option<Url>,
    pub cluster_listen: Option<SocketAddr>,
    pub cluster_advertise: Option<String>,
    pub cluster_seeds: Vec<String>,
    pub cluster_cookie_file: Option<PathBuf>,
    pub cluster_tls_cert: Option<PathBuf>,
    pub cluster_tls_key: Option<PathBuf>,
    pub cluster_tls_ca: Option<PathBuf>,
    pub log_format: LogFormat,
    pub fault_hooks: bool,
    pub fault_convert_delay_ms: u64,
    pub fault_crash_on: Option<String>,
    pub fault_crash_notifying: Option<NotifyCrash>,
    pub fault_worker: Option<String>,
    pub fault_protocol_version: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::Embedded,
            roles: Role::ALL.to_vec(),
            mysql_url: None,
            mongodb_url: None,
            amqp_url: None,
            mysql_url_file: None,
            mongodb_url_file: None,
            amqp_url_file: None,
            prefetch: 1,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            metrics_token_file: None,
            data_dir: PathBuf::from("./data"),
            converters: cores(),
            node_name: "node-1".into(),
            jwt_secret_file: None,
            token_ttl_seconds: 24 * 3600,
            max_upload_bytes: 2 << 30,
            upload_stall_seconds: 60,
            upload_min_bytes_per_second: 8 * 1024,
            upload_rate_grace_seconds: 60,
            upload_max_seconds: 6 * 3600,
            max_uploads_per_user: 4,
            max_concurrent_uploads: 64,
            max_event_streams_per_user: 32,
            max_event_streams_per_address: 64,
            max_connections_per_address: 256,
            login_concurrency: cores(),
            login_queue: 64,
            address_logins_per_minute: 30,
            address_login_burst: 10,
            account_failed_logins_per_minute: 10,
            account_failed_login_burst: 20,
            client_failed_logins_per_minute: 2,
            client_failed_login_burst: 5,
            trusted_proxies: Vec::new(),
            client_address_header: ForwardingHeader::XForwardedFor,
            store_audio_only: None,
            seed_compatible: false,
            bitrate_kbps: 192,
            max_media_seconds: 4 * 60 * 60,
            worker_memory_mib: 1024,
            conversion_timeout_seconds: 30 * 60,
            max_attempts: 3,
            uncounted_retry_limit_seconds: 30 * 60,
            max_jobs_per_user: 100,
            lease_seconds: 60,
            shutdown_grace_seconds: 30,
            restart_limit: 5,
            restart_window_seconds: 60,
            smtp_url: None,
            smtp_username: None,
            smtp_password_file: None,
            mail_from: "mp3converter <noreply@localhost>".into(),
            public_url: None,
            log_format: LogFormat::Text,
            fault_hooks: false,
            fault_convert_delay_ms: 0,
            fault_crash_on: None,
            fault_crash_notifying: None,
            fault_worker: None,
            fault_protocol_version: None,
            cluster_listen: None,
            cluster_advertise: None,
            cluster_seeds: Vec::new(),
            cluster_cookie_file: None,
            cluster_tls_cert: None,
            cluster_tls_key: None,
            cluster_tls_ca: None,
        }
    }
}

impl Config {
    /// Resolves flags and environment (already in `settings`) over the TOML file over defaults.
    pub fn load(settings: &Settings) -> anyhow::Result<Config> {
        let config = Config::load_unchecked(settings)?;
        config.validate()?;
        Ok(config)
    }

    /// As [`Config::load`], without the checks of what only a node needs (the user commands
    /// need only the user database's settings).
    pub fn load_unchecked(settings: &Settings) -> anyhow::Result<Config> {
        let mut merged = match &settings.config {
            Some(path) => read_toml_table(path)?,
            None => toml::Table::new(),
        };
        let given = toml::Table::try_from(settings).context("encoding command-line settings")?;
        merged.extend(given);
        let mut config: Config = toml::Value::Table(merged).try_into().context("invalid configuration")?;
        for (url, file) in [
            (&mut config.mysql_url, &config.mysql_url_file),
            (&mut config.mongodb_url, &config.mongodb_url_file),
            (&mut config.amqp_url, &config.amqp_url_file),
        ] {
            if url.is_none() {
                *url = file.as_deref().map(Secret::from_file).transpose()?;
            }
        }
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.profile == Profile::Cluster {
            for (name, value) in
                [("mysql_url", &self.mysql_url), ("mongodb_url", &self.mongodb_url), ("amqp_url", &self.amqp_url)]
            {
                anyhow::ensure!(value.is_some(), "the cluster profile needs --{}", name.replace('_', "-"));
            }
        }
        if self.cluster_listen.is_some() {
            anyhow::ensure!(
                self.profile == Profile::Cluster,
                "the actor cluster (--cluster-listen) needs --profile cluster"
            );
        }
        let tls = [&self.cluster_tls_cert, &self.cluster_tls_key, &self.cluster_tls_ca];
        anyhow::ensure!(
            tls.iter().all(|f| f.is_some()) || tls.iter().all(|f| f.is_none()),
            "cluster TLS needs all of --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca"
        );
        anyhow::ensure!(
            !(self.seed_compatible && self.store_audio_only == Some(true)),
            "seed_compatible keeps every upload whole: it cannot go with store_audio_only"
        );
        anyhow::ensure!(self.max_attempts >= 1, "max_attempts must be at least 1");
        anyhow::ensure!(self.lease_seconds >= 1, "lease_seconds must be at least 1");
        anyhow::ensure!(matches!(self.bitrate_kbps, 32..=320), "bitrate_kbps must be between 32 and 320");
        anyhow::ensure!(self.max_media_seconds >= 1, "max_media_seconds must be at least 1");
        anyhow::ensure!(self.worker_memory_mib >= 256, "worker_memory_mib must be at least 256");
        if let Some(faults) = &self.fault_worker {
            worker_faults(faults)?;
        }
        for (name, value) in [
            ("login_concurrency", u64::from(self.login_concurrency)),
            ("address_logins_per_minute", self.address_logins_per_minute.into()),
            ("address_login_burst", self.address_login_burst.into()),
            ("account_failed_logins_per_minute", self.account_failed_logins_per_minute.into()),
            ("account_failed_login_burst", self.account_failed_login_burst.into()),
            ("client_failed_logins_per_minute", self.client_failed_logins_per_minute.into()),
            ("client_failed_login_burst", self.client_failed_login_burst.into()),
            ("upload_stall_seconds", self.upload_stall_seconds),
            ("upload_max_seconds", self.upload_max_seconds),
            ("upload_rate_grace_seconds", self.upload_rate_grace_seconds),
            ("max_uploads_per_user", self.max_uploads_per_user.into()),
            ("max_concurrent_uploads", self.max_concurrent_uploads.into()),
            ("max_event_streams_per_user", self.max_event_streams_per_user.into()),
            ("max_event_streams_per_address", self.max_event_streams_per_address.into()),
            ("max_connections_per_address", self.max_connections_per_address.into()),
        ] {
            anyhow::ensure!(value >= 1, "{name} must be at least 1");
        }
        Ok(())
    }

    /// Whether the gateway stores an audio-only copy of each upload instead of the video: as
    /// set, else in the cluster profile (where every byte crosses the network to the shared
    /// store twice), never with `seed_compatible`.
    pub fn stores_audio_only(&self) -> bool {
        !self.seed_compatible && self.store_audio_only.unwrap_or(self.profile == Profile::Cluster)
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The roles by their names, as flags and statuses spell them.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|role| format!("{role:?}").to_lowercase()).collect()
    }

    /// Who a request's client is, behind the configured proxies.
    pub fn trusted_proxies(&self) -> TrustedProxies {
        TrustedProxies::new(self.trusted_proxies.clone(), self.client_address_header)
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_seconds)
    }

    pub fn conversion_timeout(&self) -> Duration {
        Duration::from_secs(self.conversion_timeout_seconds)
    }

    pub fn uncounted_retry_limit(&self) -> Duration {
        Duration::from_secs(self.uncounted_retry_limit_seconds)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn restart_window(&self) -> Duration {
        Duration::from_secs(self.restart_window_seconds)
    }

    /// How slowly an upload's body may come.
    pub fn upload_pace(&self) -> Pace {
        Pace {
            stall: Duration::from_secs(self.upload_stall_seconds),
            min_bytes_per_second: self.upload_min_bytes_per_second,
            grace: Duration::from_secs(self.upload_rate_grace_seconds),
            total: Duration::from_secs(self.upload_max_seconds),
        }
    }

    /// The test-only delay before each conversion (zero unless fault hooks are on).
    pub fn convert_delay(&self) -> Duration {
        match self.fault_hooks {
            true => Duration::from_millis(self.fault_convert_delay_ms),
            false => Duration::ZERO,
        }
    }

    /// The test-only name of a file whose conversion aborts the process (None unless fault
    /// hooks are on).
    pub fn crash_on(&self) -> Option<&str> {
        self.fault_crash_on.as_deref().filter(|_| self.fault_hooks)
    }

    /// Whether the notifier aborts the process at `point` (never unless fault hooks are on).
    pub fn crashes_notifying(&self, point: NotifyCrash) -> bool {
        self.fault_hooks && self.fault_crash_notifying == Some(point)
    }

    /// The test-only misbehaviour of the FFmpeg worker converting a file named `filename`
    /// (None unless fault hooks are on).
    pub fn worker_fault(&self, filename: &str) -> Option<WorkerFault> {
        let faults = self.fault_worker.as_deref().filter(|_| self.fault_hooks)?;
        worker_faults(faults).ok()?.into_iter().find(|(name, _)| name == filename).map(|(_, fault)| fault)
    }

    /// What each conversion is asked for.
    pub fn transcode_options(&self) -> TranscodeOptions {
        TranscodeOptions {
            bit_rate: self.bitrate_kbps as usize * 1000,
            max_media_seconds: self.max_media_seconds as f64,
        }
    }

    /// The sandbox the node's FFmpeg workers run in: processes of this very binary.
    pub fn sandbox(&self) -> Sandbox {
        Sandbox::new("/proc/self/exe", self.worker_memory_mib << 20)
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mp3converter.db")
    }

    /// Where this process's converters write MP3s before they are stored: a folder of its own,
    /// named by node and process (several cluster nodes may share a data folder), made at start
    /// and removed at exit.
    pub fn scratch_dir(&self) -> PathBuf {
        self.scratch_root().join(format!("{}-{}", self.node_name, std::process::id()))
    }

    /// Where every process keeps its scratch folder.
    pub fn scratch_root(&self) -> PathBuf {
        self.data_dir.join("scratch")
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
}

/// The flags whose URL may carry a password, and the variable to pass it in instead.
const URL_FLAGS: [(&str, &str); 3] =
    [("--mysql-url", "MP3C_MYSQL_URL"), ("--mongodb-url", "MP3C_MONGODB_URL"), ("--amqp-url", "MP3C_AMQP_URL")];

/// Refuses a backend URL with a password in a command-line flag, where every user of the
/// machine can read it (`ps`, `/proc/PID/cmdline`), naming the variable or file to use.
pub fn refuse_passwords_in_flags(args: &[String]) -> anyhow::Result<()> {
    for (at, arg) in args.iter().enumerate() {
        for (flag, variable) in URL_FLAGS {
            let value = match arg.strip_prefix(flag) {
                Some("") => args.get(at + 1).map(String::as_str),
                Some(rest) => rest.strip_prefix('='),
                None => None,
            };
            if value.and_then(|value| Url::parse(value).ok()).is_some_and(|url| url.password().is_some()) {
                anyhow::bail!(
                    "{flag} holds a password, which any user of this machine can read in `ps`: \
                     pass the URL in {variable}, or in a file named by {flag}-file ({variable}_FILE)"
                );
            }
        }
    }
    Ok(())
}

/// `NAME=FAULT[,NAME=FAULT...]` as pairs.
fn worker_faults(text: &str) -> anyhow::Result<Vec<(String, WorkerFault)>> {
    text.split(',')
        .map(|pair| {
            let (name, fault) = pair.split_once('=').context("--fault-worker takes NAME=FAULT pairs")?;
            let fault = WorkerFault::parse(fault).with_context(|| format!("no worker fault is called '{fault}'"))?;
            Ok((name.to_owned(), fault))
        })
        .collect()
}

/// The number of cores this process may use (at least 1): the default for CPU-bound pools.
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn read_toml_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
    text.parse::<toml::Table>().with_context(|| format!("parsing config file {}", path.display()))
}

/// A secret value: never printed, never logged.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// From the environment variable `env`, else the file `file`, else `None`.
    pub fn from_env_or_file(env: &str, file: Option<&Path>) -> anyhow::Result<Option<Secret>> {
        match std::env::var(env) {
            Ok(value) if !value.is_empty() => Ok(Some(Secret(value))),
            _ => file.map(Secret::from_file).transpose(),
        }
    }

    /// The first line of a file (a trailing newline is not part of the secret).
    pub fn from_file(path: &Path) -> anyhow::Result<Secret> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading secret file {}", path.display()))?;
        let value = text.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!value.is_empty(), "secret file {} is empty", path.display());
        Ok(Secret(value))
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_owned()))
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backend_url_with_a_password_in_a_flag_is_refused_naming_the_variable() {
        let args = |list: &[&str]| list.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
        for refused in [
            args(&["mp3converter", "up", "--amqp-url", "amqp://guest:guest@rabbit/"]),
            args(&["mp3converter", "up", "--mysql-url=mysql://u:secret@db/mp3c"]),
        ] {
            let error = refuse_passwords_in_flags(&refused).unwrap_err().to_string();
            assert!(error.contains("MP3C_AMQP_URL") || error.contains("MP3C_MYSQL_URL"), "{error}");
            assert!(!error.contains("secret") && !error.contains("guest:guest"), "the password is repeated: {error}");
        }
        for allowed in [
            args(&["mp3converter", "up", "--mongodb-url", "mongodb://mongo:27017/"]),
            args(&["mp3converter", "up", "--amqp-url-file", "/run/secrets/amqp"]),
            args(&["mp3converter", "up", "--amqp-url"]),
        ] {
            assert!(refuse_passwords_in_flags(&allowed).is_ok(), "{allowed:?}");
        }
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "converters = 7\nbitrate_kbps = 128\n").unwrap();
        let settings = Settings { config: Some(file), converters: Some(3), ..Settings::default() };
        let config = Config::load(&settings).unwrap();
        assert_eq!(config.converters, 3);
        assert_eq!(config.bitrate_kbps, 128);
        assert_eq!(config.lease_seconds, Config::default().lease_seconds);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "convertrs = 7\n").unwrap();
        let settings = Settings { config: Some(file), ..Settings::default() };
        assert!(Config::load(&settings).is_err());
    }

    #[test]
    fn audio_only_copies_are_the_cluster_default_and_seed_compatibility_turns_them_off() {
        let load = |settings: Settings| Config::load(&settings);
        let cluster = || Settings {
            profile: Some(Profile::Cluster),
            mysql_url: Some(Secret::new("mysql://db")),
            mongodb_url: Some(Secret::new("mongodb://db")),
            amqp_url: Some(Secret::new("amqp://mq")),
            ..Settings::default()
        };
        assert!(!load(Settings::default()).unwrap().stores_audio_only());
        assert!(load(Settings { store_audio_only: Some(true), ..Settings::default() }).unwrap().stores_audio_only());
        assert!(load(cluster()).unwrap().stores_audio_only());
        assert!(!load(Settings { seed_compatible: Some(true), ..cluster() }).unwrap().stores_audio_only());
        assert!(!load(Settings { store_audio_only: Some(false), ..cluster() }).unwrap().stores_audio_only());
        assert!(load(Settings { seed_compatible: Some(true), store_audio_only: Some(true), ..cluster() }).is_err());
    }

    #[test]
    fn secrets_are_redacted_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        std::fs::write(&file, "hunter2\n").unwrap();
        let secret = Secret::from_env_or_file("MP3C_TEST_UNSET_SECRET", Some(&file)).unwrap().unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
