//! The application: builds one node from its configuration and runs it until a shutdown signal.
//!
//! [`Application::build`] binds the listener (port 0 picks a free one, which tests use), opens
//! the backends and starts the node supervisor; [`Application::run_until_stopped`] waits for the
//! shutdown signal, then stops the supervisor, which drains its children in order.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::actors::NodeContext;
use crate::actors::supervisor::{NodeSupervisor, SupervisorArgs, SupervisorMsg};
use crate::config::{Config, Profile, Secret};
use crate::http::limits::GatewayLimits;
use crate::mailer::LettreMailer;
use crate::metrics::Metrics;
use crate::security::token::TokenKeys;
use crate::storage::instrumented::{InstrumentedIntake, InstrumentedMailbox};
use crate::storage::{cluster, embedded};
use crate::transcode::transcode;

pub struct Application {
    address: SocketAddr,
    ctx: Arc<NodeContext>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: ractor::concurrency::JoinHandle<()>,
    /// Held for the life of the node: one `up` per data folder (the folder holds the embedded
    /// profile's database and every profile's scratch files).
    _data_lock: std::fs::File,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
        let data_lock = lock_data_dir(&config.data_dir)?;
        reset_dir(&config.scratch_dir())?;

        let metrics = Arc::new(Metrics::new(&config.node_name));
        let mut backends = match config.profile {
            Profile::Embedded => embedded::backends(&config).await?,
            Profile::Cluster => cluster::backends(&config, &metrics).await?,
        };
        let mailbox = Arc::new(InstrumentedMailbox::new(backends.mailbox, metrics.clone()));
        backends.intake = Arc::new(InstrumentedIntake::new(backends.intake, mailbox.clone()));
        backends.mailbox = mailbox;
        let tokens = token_keys(&config)?;
        let smtp_password = Secret::from_env_or_file("MP3C_SMTP_PASSWORD", config.smtp_password_file.as_deref())?;
        let mailer = Arc::new(LettreMailer::from_config(&config, smtp_password)?);
        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let address = listener.local_addr()?;

        let limits = GatewayLimits::new(&config);
        let shutdown = CancellationToken::new();
        let ctx = Arc::new(NodeContext { config, backends, tokens, mailer, metrics, transcode, limits, shutdown });
        let args = SupervisorArgs { ctx: ctx.clone(), listener: Arc::new(listener) };
        let (supervisor, supervisor_done) = Actor::spawn(Some("node-supervisor".into()), NodeSupervisor, args)
            .await
            .context("starting the node supervisor")?;
        Ok(Application { address, ctx, supervisor, supervisor_done, _data_lock: data_lock })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs until `shutdown` completes (then drains and returns Ok) or the supervisor gives up
    /// (then returns the error).
    pub async fn run_until_stopped(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::select! {
            () = shutdown => {
                tracing::info!("shutting down: no new work; in-flight work may finish");
                self.ctx.shutdown.cancel();
                self.supervisor.stop(Some("shutdown requested".into()));
                let _ = (&mut self.supervisor_done).await;
                tracing::info!("stopped");
                Ok(())
            }
            _ = &mut self.supervisor_done => {
                anyhow::bail!("the node supervisor stopped (restart intensity exceeded?); see the log above")
            }
        }
    }
}

fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    file.try_lock().map_err(|_| anyhow::anyhow!("another mp3converter is already running on {}", dir.display()))?;
    Ok(file)
}

fn reset_dir(dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// The token keys, from a JWT secret of at least [`crate::security::token::MIN_KEY_BYTES`]; a
/// shorter one stops the start with an error naming where it came from.
fn token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let (secret, setting) = jwt_secret(config)?;
    TokenKeys::new(secret.expose().as_bytes(), config.token_ttl())
        .with_context(|| format!("the JWT secret from {setting} is too short"))
}

/// The JWT secret and the setting it came from: `MP3C_JWT_SECRET`, else the file named in the
/// config, else (embedded) one generated at first start and kept in the data folder, readable
/// by this user only. A cluster must be given one: its nodes validate each other's tokens.
fn jwt_secret(config: &Config) -> anyhow::Result<(Secret, String)> {
    if let Some(secret) = Secret::from_env_or_file("MP3C_JWT_SECRET", None)? {
        return Ok((secret, "MP3C_JWT_SECRET".to_owned()));
    }
    if let Some(path) = &config.jwt_secret_file {
        return Ok((Secret::from_file(path)?, format!("--jwt-secret-file ({})", path.display())));
    }
    anyhow::ensure!(
        config.profile == Profile::Embedded,
        "the cluster profile needs a shared JWT secret: --jwt-secret-file or MP3C_JWT_SECRET"
    );
    let path = config.data_dir.join("jwt-secret");
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
