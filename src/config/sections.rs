//! Every setting, once: its help text, its flag and environment variable, its default and its
//! check, in the section it belongs to ([`super::section!`] makes the rest). The README's
//! configuration table lists them all.

use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

use super::section::{at_least, section, within};
use super::values::{ForwardingHeader, LogFormat, NotifyCrash, Profile, Role};
use super::{Secret, cores};

section! {
    /// What the node is, where it serves, how it signs tokens and how it stops.
    pub struct Server, flags ServerFlags {
        /// Roles of this node, comma-separated (default: all four).
        #[arg(long, env = "MP3C_ROLES", value_enum, value_delimiter = ',')]
        roles: Vec<Role> = Role::ALL.to_vec();
        /// Address the HTTP server listens on (port 0 picks a free port).
        #[arg(long, env = "MP3C_LISTEN")]
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
        /// Serve `/metrics` on this address alone, not on --listen's (e.g. a port only the
        /// monitoring network reaches).
        #[arg(long, env = "MP3C_METRICS_LISTEN")]
        metrics_listen: optional SocketAddr;
        /// File holding a bearer token `/metrics` requires (else `MP3C_METRICS_TOKEN`; none: open).
        #[arg(long, env = "MP3C_METRICS_TOKEN_FILE")]
        metrics_token_file: optional PathBuf;
        /// Name of this node in metrics and logs.
        #[arg(long, env = "MP3C_NODE_NAME")]
        node_name: String = "node-1".into();
        /// Converter actors in this process (default: the number of cores).
        #[arg(long, env = "MP3C_CONVERTERS")]
        converters: u32 = cores();
        /// File holding the JWT signing secret (else `MP3C_JWT_SECRET`; embedded: generated once).
        #[arg(long, env = "MP3C_JWT_SECRET_FILE")]
        jwt_secret_file: optional PathBuf;
        /// Lifetime of issued tokens, in seconds.
        #[arg(long, env = "MP3C_TOKEN_TTL_SECONDS")]
        token_ttl_seconds: u64 = 24 * 3600;
        /// Reverse proxies whose forwarding header names the client, comma-separated CIDRs (e.g.
        /// the Ingress controller's pod range). Empty: every client is its TCP peer.
        #[arg(long, env = "MP3C_TRUSTED_PROXIES", value_delimiter = ',')]
        trusted_proxies: Vec<ipnet::IpNet> = Vec::new();
        /// The forwarding header the trusted proxies maintain (only that one is read).
        #[arg(long, env = "MP3C_CLIENT_ADDRESS_HEADER", value_enum)]
        client_address_header: ForwardingHeader = ForwardingHeader::XForwardedFor;
        /// On SIGTERM, how long in-flight conversions may run before they are released to the queue.
        #[arg(long, env = "MP3C_SHUTDOWN_GRACE_SECONDS")]
        shutdown_grace_seconds: u64 = 30;
        /// Restarts of one actor allowed within the restart window before the node stops.
        #[arg(long, env = "MP3C_RESTART_LIMIT")]
        restart_limit: u32 = 5;
        /// The restart window, in seconds.
        #[arg(long, env = "MP3C_RESTART_WINDOW_SECONDS")]
        restart_window_seconds: u64 = 60;
        /// Log format.
        #[arg(long, env = "MP3C_LOG_FORMAT", value_enum)]
        log_format: LogFormat = LogFormat::Text;
    }
}

section! {
    /// Which backends hold users, blobs, jobs and the mailbox, and what of an upload they keep.
    pub struct Storage, flags StorageFlags {
        /// Which backends to use.
        #[arg(long, env = "MP3C_PROFILE", value_enum)]
        profile: Profile = Profile::Embedded;
        /// Folder for the database, blobs, outbox and generated secrets.
        #[arg(long, env = "MP3C_DATA_DIR")]
        data_dir: PathBuf = PathBuf::from("./data");
        /// Cluster profile: MySQL/MariaDB URL for users (mysql://user:password@host:port/db).
        #[arg(long, env = "MP3C_MYSQL_URL")]
        mysql_url: optional Secret;
        /// File holding the MySQL/MariaDB URL (else `MP3C_MYSQL_URL`; a password in the flag above is refused).
        #[arg(long, env = "MP3C_MYSQL_URL_FILE")]
        mysql_url_file: optional PathBuf;
        /// Cluster profile: MongoDB URL for GridFS blobs and job records.
        #[arg(long, env = "MP3C_MONGODB_URL")]
        mongodb_url: optional Secret;
        /// File holding the MongoDB URL (else `MP3C_MONGODB_URL`; a password in the flag above is refused).
        #[arg(long, env = "MP3C_MONGODB_URL_FILE")]
        mongodb_url_file: optional PathBuf;
        /// Cluster profile: RabbitMQ URL for the persistent mailbox (amqp://user:password@host:port/vhost).
        #[arg(long, env = "MP3C_AMQP_URL")]
        amqp_url: optional Secret;
        /// File holding the RabbitMQ URL (else `MP3C_AMQP_URL`; a password in the flag above is refused).
        #[arg(long, env = "MP3C_AMQP_URL_FILE")]
        amqp_url_file: optional PathBuf;
        /// Cluster profile: messages each consumer may hold unacknowledged (1: fair dispatch).
        #[arg(long, env = "MP3C_PREFETCH")]
        prefetch: u16 = 1;
        /// Store an audio-only copy of each upload (remuxed, nothing decoded) instead of the video
        /// (default: on in the cluster profile, off in the embedded one).
        #[arg(long, env = "MP3C_STORE_AUDIO_ONLY", num_args = 0..=1, default_missing_value = "true")]
        store_audio_only: optional bool;
        /// Keep every upload whole in `videos`, so that the legacy design's own converter can convert it
        /// (turns --store-audio-only off).
        #[arg(long, env = "MP3C_SEED_COMPATIBLE", num_args = 0..=1, default_missing_value = "true")]
        seed_compatible: bool = false;
    }
}

section! {
    /// What clients may cause: upload sizes and rates, uploads, streams and connections at
    /// once, login rates, unfinished jobs.
    pub struct Limits, flags LimitsFlags {
        /// Largest accepted upload body, in bytes.
        #[arg(long, env = "MP3C_MAX_UPLOAD_BYTES")]
        max_upload_bytes: u64 = 2 << 30;
        /// An upload that sends no body bytes for this many seconds is cut off and its file removed.
        #[arg(long, env = "MP3C_UPLOAD_STALL_SECONDS")]
        upload_stall_seconds: u64 = 60, check at_least(1);
        /// An upload that sends less than this on average, once its grace period is over, is cut
        /// off (408 `upload_too_slow`); 0: no minimum.
        #[arg(long, env = "MP3C_UPLOAD_MIN_BYTES_PER_SECOND")]
        upload_min_bytes_per_second: u64 = 8 * 1024;
        /// How long an upload may send below the minimum rate at first, in seconds.
        #[arg(long, env = "MP3C_UPLOAD_RATE_GRACE_SECONDS")]
        upload_rate_grace_seconds: u64 = 60, check at_least(1);
        /// The longest an upload may take, in seconds (of waiting for the client).
        #[arg(long, env = "MP3C_UPLOAD_MAX_SECONDS")]
        upload_max_seconds: u64 = 6 * 3600, check at_least(1);
        /// Uploads one user may have in progress at once; past it, 429.
        #[arg(long, env = "MP3C_MAX_UPLOADS_PER_USER")]
        max_uploads_per_user: u32 = 4, check at_least(1);
        /// Uploads in progress at once on this node, all users together; past it, 503.
        #[arg(long, env = "MP3C_MAX_CONCURRENT_UPLOADS")]
        max_concurrent_uploads: u32 = 64, check at_least(1);
        /// Job event streams one user may hold open at once; past it, 429.
        #[arg(long, env = "MP3C_MAX_EVENT_STREAMS_PER_USER")]
        max_event_streams_per_user: u32 = 32, check at_least(1);
        /// Job event streams one client address may hold open at once; past it, 429.
        #[arg(long, env = "MP3C_MAX_EVENT_STREAMS_PER_ADDRESS")]
        max_event_streams_per_address: u32 = 64, check at_least(1);
        /// Connections one client address may hold open at once (trusted proxies aside); past it,
        /// a new one is answered 429 and closed.
        #[arg(long, env = "MP3C_MAX_CONNECTIONS_PER_ADDRESS")]
        max_connections_per_address: u32 = 256, check at_least(1);
        /// Password checks (argon2id, 19 MiB each) running at once (default: the number of cores).
        #[arg(long, env = "MP3C_LOGIN_CONCURRENCY")]
        login_concurrency: u32 = cores(), check at_least(1);
        /// Logins that may wait for a password check; past it, 503.
        #[arg(long, env = "MP3C_LOGIN_QUEUE")]
        login_queue: u32 = 64;
        /// Logins one client address may attempt per minute, on average; past it, 429.
        #[arg(long, env = "MP3C_ADDRESS_LOGINS_PER_MINUTE")]
        address_logins_per_minute: u32 = 30, check at_least(1);
        /// Logins one client address may attempt in a row before its per-minute rate applies.
        #[arg(long, env = "MP3C_ADDRESS_LOGIN_BURST")]
        address_login_burst: u32 = 10, check at_least(1);
        /// Failed logins one client address may make on one account per minute, on average; past
        /// it, that address waits (429) and the account's owner, elsewhere, does not.
        #[arg(long, env = "MP3C_CLIENT_FAILED_LOGINS_PER_MINUTE")]
        client_failed_logins_per_minute: u32 = 2, check at_least(1);
        /// Failed logins one client address may make on one account in a row.
        #[arg(long, env = "MP3C_CLIENT_FAILED_LOGIN_BURST")]
        client_failed_login_burst: u32 = 5, check at_least(1);
        /// Failed logins one account may take per minute from all addresses together, on average;
        /// past it, addresses that failed on it wait and a new one gets a single guess.
        #[arg(long, env = "MP3C_ACCOUNT_FAILED_LOGINS_PER_MINUTE")]
        account_failed_logins_per_minute: u32 = 10, check at_least(1);
        /// Failed logins one account may take in a row before its per-minute rate applies.
        #[arg(long, env = "MP3C_ACCOUNT_FAILED_LOGIN_BURST")]
        account_failed_login_burst: u32 = 20, check at_least(1);
        /// Queued and converting jobs one user may have at once; more uploads get 429.
        #[arg(long, env = "MP3C_MAX_JOBS_PER_USER")]
        max_jobs_per_user: u64 = 100;
    }
}

section! {
    /// What a conversion makes, and how its attempts are bounded.
    pub struct Conversion, flags ConversionFlags {
        /// MP3 bit rate (constant), in kb/s.
        #[arg(long, env = "MP3C_BITRATE_KBPS")]
        bitrate_kbps: u32 = 192, check within(32, 320);
        /// Longest audio converted, in seconds: a job whose audio is declared or found longer
        /// fails with `too_long` (a small file can decode to hours of silence).
        #[arg(long, env = "MP3C_MAX_MEDIA_SECONDS")]
        max_media_seconds: u64 = 4 * 60 * 60, check at_least(1);
        /// Address space of each sandboxed FFmpeg worker process, in MiB.
        #[arg(long, env = "MP3C_WORKER_MEMORY_MIB")]
        worker_memory_mib: u64 = 1024, check at_least(256);
        /// Longest one conversion may run, in seconds.
        #[arg(long, env = "MP3C_CONVERSION_TIMEOUT_SECONDS")]
        conversion_timeout_seconds: u64 = 30 * 60;
        /// Conversion attempts of one job that may crash or time out before it fails for good.
        #[arg(long, env = "MP3C_MAX_ATTEMPTS")]
        max_attempts: u32 = 3, check at_least(1);
        /// How long a job may be retried without its attempts counting (a store or the broker
        /// failing under it) while every backend answers, before it fails with the last reason.
        #[arg(long, env = "MP3C_UNCOUNTED_RETRY_LIMIT_SECONDS")]
        uncounted_retry_limit_seconds: u64 = 30 * 60;
        /// How long a claimed job stays leased without a heartbeat before it is redelivered.
        #[arg(long, env = "MP3C_LEASE_SECONDS")]
        lease_seconds: u64 = 60, check at_least(1);
    }
}

section! {
    /// Where the owner's email goes, and what it links to.
    pub struct Mail, flags MailFlags {
        /// SMTP server: smtp://host:port (plain), smtp://host:port?tls=required (STARTTLS),
        /// smtps://host:port (TLS). Without it, mail goes to the outbox folder in the data folder.
        #[arg(long, env = "MP3C_SMTP_URL")]
        smtp_url: optional Url;
        /// SMTP user name (the password comes from `MP3C_SMTP_PASSWORD` or --smtp-password-file).
        #[arg(long, env = "MP3C_SMTP_USERNAME")]
        smtp_username: optional String;
        /// File holding the SMTP password.
        #[arg(long, env = "MP3C_SMTP_PASSWORD_FILE")]
        smtp_password_file: optional PathBuf;
        /// Sender address of notification emails.
        #[arg(long, env = "MP3C_MAIL_FROM")]
        mail_from: String = "mp3converter <noreply@localhost>".into();
        /// Public base URL of the gateway, used for download links in emails.
        #[arg(long, env = "MP3C_PUBLIC_URL")]
        public_url: optional Url;
    }
}

section! {
    /// The actor cluster: where this node listens, how peers reach it, whom it joins, and the
    /// secrets they share.
    pub struct Cluster, flags ClusterFlags {
        /// Cluster profile: the actor cluster's listening address (turns the actor cluster on),
        /// e.g. 0.0.0.0:4697.
        #[arg(long, env = "MP3C_CLUSTER_LISTEN")]
        cluster_listen: optional SocketAddr;
        /// The address peers dial to reach this node (default: this host's name and the listen port).
        #[arg(long, env = "MP3C_CLUSTER_ADVERTISE")]
        cluster_advertise: optional String;
        /// Nodes to join, comma-separated host:port; a name with several addresses (a Kubernetes
        /// headless Service) means each of them, resolved again every 10 s.
        #[arg(long, env = "MP3C_CLUSTER_SEEDS", value_delimiter = ',')]
        cluster_seeds: Vec<String> = Vec::new();
        /// File holding the cluster cookie (else `MP3C_CLUSTER_COOKIE`); required with --cluster-listen.
        #[arg(long, env = "MP3C_CLUSTER_COOKIE_FILE")]
        cluster_cookie_file: optional PathBuf;
        /// Mutual TLS between nodes: this node's certificate (PEM); with --cluster-tls-key and
        /// --cluster-tls-ca.
        #[arg(long, env = "MP3C_CLUSTER_TLS_CERT")]
        cluster_tls_cert: optional PathBuf;
        /// This node's private key (PEM).
        #[arg(long, env = "MP3C_CLUSTER_TLS_KEY")]
        cluster_tls_key: optional PathBuf;
        /// The CA (PEM) whose certificates peers must present.
        #[arg(long, env = "MP3C_CLUSTER_TLS_CA")]
        cluster_tls_ca: optional PathBuf;
    }
}

section! {
    /// Test-only fault injection, hidden from `--help`: nothing here works unless
    /// `fault_hooks` is on, and a release build refuses that without
    /// `fault_hooks_in_release_build` too ([`super::Config::validate`]).
    pub struct Faults, flags FaultsFlags {
        /// Test-only: enables fault-injection routes and delays. Never in production.
        #[arg(long, env = "MP3C_FAULT_HOOKS", hide = true)]
        fault_hooks: bool = false;
        /// Test-only: lets a release build (a production binary) turn --fault-hooks on, e.g.
        /// to measure a fault's cost in a benchmark; given bare, it means `true`.
        #[arg(long, env = "MP3C_FAULT_HOOKS_IN_RELEASE_BUILD", hide = true, num_args = 0..=1, default_missing_value = "true")]
        fault_hooks_in_release_build: bool = false;
        /// Test-only (needs --fault-hooks): each conversion waits this long before it starts.
        #[arg(long, env = "MP3C_FAULT_CONVERT_DELAY_MS", hide = true)]
        fault_convert_delay_ms: u64 = 0;
        /// Test-only (needs --fault-hooks): converting a file of this name aborts the process, as
        /// a file that crashes FFmpeg would.
        #[arg(long, env = "MP3C_FAULT_CRASH_ON", hide = true)]
        fault_crash_on: optional String;
        /// Test-only (needs --fault-hooks): the notifier aborts the process at this point of
        /// mailing each email.
        #[arg(long, env = "MP3C_FAULT_CRASH_NOTIFYING", hide = true, value_enum)]
        fault_crash_notifying: optional NotifyCrash;
        /// Test-only (needs --fault-hooks): the FFmpeg worker converting a file of this name
        /// misbehaves, as `NAME=FAULT[,NAME=FAULT...]` with FAULT one of segfault, abort,
        /// stack-overflow, spin, allocate, garbage, escape.
        #[arg(long, env = "MP3C_FAULT_WORKER", hide = true)]
        fault_worker: optional String;
        /// Test-only (needs --fault-hooks): the actor cluster protocol version this node announces,
        /// as a node of another release would.
        #[arg(long, env = "MP3C_FAULT_PROTOCOL_VERSION", hide = true)]
        fault_protocol_version: optional u32;
    }
}
