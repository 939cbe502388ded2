//! The application: builds one node from its configuration and runs it until a shutdown signal.
//!
//! [`Application::build`] binds the listener (port 0 picks a free one, which tests use), opens
//! the backends and starts the node supervisor ([`supervisor`], with its restart policy in
//! [`restart`]); [`Application::run_until_stopped`] waits for the shutdown signal, then stops
//! the supervisor, which drains its children in order. This is the one place that puts the
//! parts together: it sits above the actors, the HTTP gateway and the actor cluster.

pub mod restart;
pub mod supervisor;

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;

use crate::cluster::protocol::groups;
use crate::config::{Config, Profile, Secret};
use crate::http::client_address::TrustedProxies;
use crate::http::credentials::Identity;
use crate::http::limits::GatewayLimits;
use crate::http::sessions::Sessions;
use crate::http::{Gateway, Listeners};
use crate::job_events::JobSubscribers;
use crate::mailer::LettreMailer;
use crate::metrics::Metrics;
use crate::node::activity::Activity;
use crate::node::{Lifecycle, Node, Services, names};
use crate::sandbox::Sandbox;
use crate::security::token::TokenKeys;
use crate::storage::instrumented::{InstrumentedIntake, InstrumentedMailbox};
use crate::storage::{cluster, embedded};
use supervisor::{NodeSupervisor, SupervisorArgs, SupervisorMsg};

pub struct Application {
    address: SocketAddr,
    node: Arc<Node>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: ractor::concurrency::JoinHandle<()>,
    /// Embedded profile: held for the life of the node, one `up` per data folder (it holds the
    /// database). Cluster nodes keep only scratch files locally and share a folder freely.
    _data_lock: Option<std::fs::File>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.storage.data_dir)
            .with_context(|| format!("creating the data folder {}", config.storage.data_dir.display()))?;
        let data_lock = match config.storage.profile {
            Profile::Embedded => Some(lock_data_dir(&config.storage.data_dir)?),
            Profile::Cluster => None,
        };
        prepare_scratch(&config)?;

        let metrics = Arc::new(Metrics::new(&config.server.node_name));
        let mut stores = match config.storage.profile {
            Profile::Embedded => embedded::stores(&config).await?,
            Profile::Cluster => cluster::stores(&config, &metrics).await?,
        };
        let mailbox = Arc::new(InstrumentedMailbox::new(stores.mailbox, metrics.clone()));
        stores.intake = Arc::new(InstrumentedIntake::new(stores.intake, mailbox.clone()));
        stores.mailbox = mailbox;
        let tokens = token_keys(&config)?;
        let smtp_password = Secret::from_env_or_file("MP3C_SMTP_PASSWORD", config.mail.smtp_password_file.as_deref())?;
        let mailer = Arc::new(LettreMailer::new(&config.mail, config.storage.outbox_dir(), smtp_password)?);
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let address = listener.local_addr()?;
        let metrics_listener = match config.server.metrics_listen {
            Some(at) => {
                let bound = TcpListener::bind(at).await.with_context(|| format!("binding the metrics address {at}"))?;
                tracing::info!(address = %bound.local_addr()?, "metrics served on an address of their own");
                Some(Arc::new(bound))
            }
            None => None,
        };

        let lifecycle = Lifecycle::new();
        let cluster = crate::cluster::node::start(&config, &lifecycle.shutdown).await?;
        let gateway = Gateway {
            identity: Identity { tokens: tokens.clone(), sessions: Sessions::new(stores.users.clone()) },
            metrics_token: Secret::from_env_or_file("MP3C_METRICS_TOKEN", config.server.metrics_token_file.as_deref())?,
            limits: GatewayLimits::new(&config),
            proxies: TrustedProxies::new(config.server.trusted_proxies.clone(), config.server.client_address_header),
            subscribers: Arc::new(JobSubscribers::new(metrics.http.job_event_subscribers.clone())),
        };
        // FFmpeg's workers are processes of this very binary: the image that is running.
        let media = Arc::new(Sandbox::new("/proc/self/exe", config.conversion.worker_memory_mib << 20));
        let services = Services { mailer, media, metrics };
        let node = Arc::new(Node { config, stores, services, lifecycle, activity: Activity::default() });
        let args = SupervisorArgs {
            node: node.clone(),
            gateway: Arc::new(gateway),
            listeners: Listeners { api: Arc::new(listener), metrics: metrics_listener },
            tokens,
            cluster,
        };
        let (supervisor, supervisor_done) = Actor::spawn(Some(names::SUPERVISOR.into()), NodeSupervisor, args)
            .await
            .context("starting the node supervisor")?;
        Ok(Application { address, node, supervisor, supervisor_done, _data_lock: data_lock })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs until `shutdown` completes or the node is asked to drain (then drains and returns
    /// Ok), or the supervisor gives up (then returns the error).
    ///
    /// Draining: first this node's actors leave their process groups (no new logins or events
    /// are routed to it), then no new work is taken, then work in flight finishes or is released
    /// within the grace period.
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let drain = self.node.lifecycle.drain.clone();
        tokio::select! {
            () = shutdown => {}
            () = drain.cancelled() => {}
            _ = &mut self.supervisor_done => {
                anyhow::bail!("the node supervisor stopped (restart intensity exceeded?); see the log above")
            }
        }
        tracing::info!("shutting down: leaving the groups, no new work; in-flight work may finish");
        leave_groups();
        self.node.lifecycle.shutdown.cancel();
        self.supervisor.stop(Some("shutdown requested".into()));
        let _ = (&mut self.supervisor_done).await;
        let _ = std::fs::remove_dir_all(self.node.config.scratch_dir());
        tracing::info!("stopped");
        Ok(())
    }
}

/// Takes this node's actors out of every process group, so that other nodes stop routing to it.
/// The node agent stays in `nodes` until the exit, so that peers keep their heartbeat with it
/// (and the gateway links of its converters) while it drains.
fn leave_groups() {
    for group in groups::ALL.into_iter().filter(|group| *group != groups::NODES) {
        let local: Vec<_> =
            ractor::pg::get_members(&group.to_owned()).into_iter().filter(|cell| cell.get_id().is_local()).collect();
        ractor::pg::leave(group.to_owned(), local);
    }
}

/// Makes this process's scratch folder (owner-only: uploads are spooled there), and removes
/// what earlier runs of this node left (only
/// this node's: nodes on other hosts may share the folder, and their process ids mean nothing
/// here).
fn prepare_scratch(config: &Config) -> anyhow::Result<()> {
    if let Ok(entries) = std::fs::read_dir(config.storage.scratch_root()) {
        let own = format!("{}-", config.server.node_name);
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix(&own).and_then(|pid| pid.parse::<u32>().ok());
            let gone = pid.is_some_and(|pid| pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists());
            if gone {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    crate::security::private_files::owner_only_dir(&config.storage.scratch_root())?;
    crate::security::private_files::owner_only_dir(&config.scratch_dir())
}

fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    file.try_lock().map_err(|_| anyhow::anyhow!("another mp3converter is already running on {}", dir.display()))?;
    Ok(file)
}

/// The token keys, from a JWT secret of at least [`crate::security::token::MIN_KEY_BYTES`]; a
/// shorter one stops the start with an error naming where it came from.
fn token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let (secret, setting) = jwt_secret(config)?;
    TokenKeys::new(secret.expose().as_bytes(), config.server.token_ttl())
        .with_context(|| format!("the JWT secret from {setting} is too short"))
}

/// The JWT secret and the setting it came from: `MP3C_JWT_SECRET`, else the file named in the
/// config, else (embedded) one generated at first start and kept in the data folder, readable
/// by this user only. A cluster must be given one: its nodes validate each other's tokens.
fn jwt_secret(config: &Config) -> anyhow::Result<(Secret, String)> {
    if let Some(secret) = Secret::from_env_or_file("MP3C_JWT_SECRET", None)? {
        return Ok((secret, "MP3C_JWT_SECRET".to_owned()));
    }
    if let Some(path) = &config.server.jwt_secret_file {
        return Ok((Secret::from_file(path)?, format!("--jwt-secret-file ({})", path.display())));
    }
    anyhow::ensure!(
        config.storage.profile == Profile::Embedded,
        "the cluster profile needs a shared JWT secret: --jwt-secret-file or MP3C_JWT_SECRET"
    );
    let path = config.storage.data_dir.join("jwt-secret");
    let setting = format!("the generated secret file {}", path.display());
    Ok((generated_secret(&path)?, setting))
}

/// The secret kept at `path`, generated there at first start (64 hex digits).
fn generated_secret(path: &Path) -> anyhow::Result<Secret> {
    if path.exists() {
        return Secret::from_file(path);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(Secret::new(secret))
}
