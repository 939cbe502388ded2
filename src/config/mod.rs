//! Configuration: command-line flags, then `MP3C_*` environment variables, then an optional TOML
//! file, then defaults. Secrets never come from flags (they would show in `ps`): only from an
//! environment variable or a file named by a flag (a backend URL with a password in a flag is
//! refused: [`refuse_passwords_in_flags`]), and they are redacted in every `Debug`.
//!
//! Settings come in sections ([`sections`]: server, storage, limits, conversion, mail,
//! cluster, faults), each setting defined once there with its help text, flag, environment
//! variable, default and check ([`section!`](section)). [`Settings`] is what one layer (flags
//! and environment) gives, every field optional; [`Config`] is the resolved whole. The TOML
//! file's keys are the flags' names with underscores, one flat table whatever the section.
//! The test-only fault hooks have a section of their own, which a release build refuses to
//! turn on without a second flag.

mod section;
pub mod sections;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use url::Url;

pub use sections::{
    Cluster, ClusterFlags, Conversion, ConversionFlags, Faults, FaultsFlags, Limits, LimitsFlags, Mail, MailFlags,
    Server, ServerFlags, Storage, StorageFlags,
};
pub use values::{ForwardingHeader, LogFormat, NotifyCrash, Profile, Role, WorkerFault};

/// One layer of configuration as flags and environment give it (the TOML file uses the same
/// keys).
#[derive(clap::Args, Serialize, Debug, Default, Clone)]
pub struct Settings {
    /// TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "MP3C_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Server")]
    #[serde(flatten)]
    pub server: ServerFlags,
    #[command(flatten, next_help_heading = "Storage")]
    #[serde(flatten)]
    pub storage: StorageFlags,
    #[command(flatten, next_help_heading = "Limits")]
    #[serde(flatten)]
    pub limits: LimitsFlags,
    #[command(flatten, next_help_heading = "Conversion")]
    #[serde(flatten)]
    pub conversion: ConversionFlags,
    #[command(flatten, next_help_heading = "Mail")]
    #[serde(flatten)]
    pub mail: MailFlags,
    #[command(flatten, next_help_heading = "Actor cluster")]
    #[serde(flatten)]
    pub cluster: ClusterFlags,
    #[command(flatten)]
    #[serde(flatten)]
    pub faults: FaultsFlags,
}

/// The resolved configuration, by section.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub limits: Limits,
    pub conversion: Conversion,
    pub mail: Mail,
    pub cluster: Cluster,
    pub faults: Faults,
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
        let known =
            [Server::KEYS, Storage::KEYS, Limits::KEYS, Conversion::KEYS, Mail::KEYS, Cluster::KEYS, Faults::KEYS];
        if let Some(unknown) = merged.keys().find(|key| !known.iter().any(|keys| keys.contains(&key.as_str()))) {
            anyhow::bail!("invalid configuration: there is no setting `{unknown}`");
        }
        let section = |name: &'static str| move |error| anyhow::anyhow!("invalid configuration ({name}): {error}");
        let mut config = Config {
            server: toml::Value::Table(merged.clone()).try_into().map_err(section("server"))?,
            storage: toml::Value::Table(merged.clone()).try_into().map_err(section("storage"))?,
            limits: toml::Value::Table(merged.clone()).try_into().map_err(section("limits"))?,
            conversion: toml::Value::Table(merged.clone()).try_into().map_err(section("conversion"))?,
            mail: toml::Value::Table(merged.clone()).try_into().map_err(section("mail"))?,
            cluster: toml::Value::Table(merged.clone()).try_into().map_err(section("cluster"))?,
            faults: toml::Value::Table(merged).try_into().map_err(section("faults"))?,
        };
        config.storage.read_url_files()?;
        Ok(config)
    }

    /// The checks of every setting, and of the settings that must agree with each other.
    fn validate(&self) -> anyhow::Result<()> {
        self.server.check()?;
        self.storage.check()?;
        self.limits.check()?;
        self.conversion.check()?;
        self.mail.check()?;
        self.cluster.check()?;
        self.faults.check()?;
        let storage = &self.storage;
        if storage.profile == Profile::Cluster {
            for (name, value) in [
                ("mysql_url", &storage.mysql_url),
                ("mongodb_url", &storage.mongodb_url),
                ("amqp_url", &storage.amqp_url),
            ] {
                anyhow::ensure!(value.is_some(), "the cluster profile needs --{}", name.replace('_', "-"));
            }
        }
        let cluster = &self.cluster;
        if cluster.cluster_listen.is_some() {
            anyhow::ensure!(
                storage.profile == Profile::Cluster,
                "the actor cluster (--cluster-listen) needs --profile cluster"
            );
        }
        let tls = [&cluster.cluster_tls_cert, &cluster.cluster_tls_key, &cluster.cluster_tls_ca];
        anyhow::ensure!(
            tls.iter().all(|f| f.is_some()) || tls.iter().all(|f| f.is_none()),
            "cluster TLS needs all of --cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca"
        );
        anyhow::ensure!(
            !(storage.seed_compatible && storage.store_audio_only == Some(true)),
            "seed_compatible keeps every upload whole: it cannot go with store_audio_only"
        );
        self.faults.validate()
    }

    /// Every setting's default, by its key (what `--help` shows).
    pub fn defaults() -> toml::Table {
        let defaults = Config::default();
        let tables = [
            toml::Table::try_from(&defaults.server),
            toml::Table::try_from(&defaults.storage),
            toml::Table::try_from(&defaults.limits),
            toml::Table::try_from(&defaults.conversion),
            toml::Table::try_from(&defaults.mail),
            toml::Table::try_from(&defaults.cluster),
            toml::Table::try_from(&defaults.faults),
        ];
        tables.into_iter().flat_map(|table| table.expect("the defaults serialise")).collect()
    }

    /// Where this process's converters write MP3s before they are stored: a folder of its own,
    /// named by node and process (several cluster nodes may share a data folder), made at start
    /// and removed at exit.
    pub fn scratch_dir(&self) -> PathBuf {
        self.storage.scratch_root().join(format!("{}-{}", self.server.node_name, std::process::id()))
    }
}

impl Server {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The roles by their names, as flags and statuses spell them.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|role| format!("{role:?}").to_lowercase()).collect()
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn restart_window(&self) -> Duration {
        Duration::from_secs(self.restart_window_seconds)
    }
}

impl Storage {
    /// Whether the gateway stores an audio-only copy of each upload instead of the video: as
    /// set, else in the cluster profile (where every byte crosses the network to the shared
    /// store twice), never with `seed_compatible`.
    pub fn stores_audio_only(&self) -> bool {
        !self.seed_compatible && self.store_audio_only.unwrap_or(self.profile == Profile::Cluster)
    }

    /// A backend URL not given is read from its file, when one is named.
    fn read_url_files(&mut self) -> anyhow::Result<()> {
        for (url, file) in [
            (&mut self.mysql_url, &self.mysql_url_file),
            (&mut self.mongodb_url, &self.mongodb_url_file),
            (&mut self.amqp_url, &self.amqp_url_file),
        ] {
            if url.is_none() {
                *url = file.as_deref().map(Secret::from_file).transpose()?;
            }
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mp3converter.db")
    }

    /// Where every process keeps its scratch folder.
    pub fn scratch_root(&self) -> PathBuf {
        self.data_dir.join("scratch")
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
}

impl Conversion {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.conversion_timeout_seconds)
    }

    pub fn uncounted_retry_limit(&self) -> Duration {
        Duration::from_secs(self.uncounted_retry_limit_seconds)
    }

    /// How long an attempt holds its job without renewing.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
}

impl Faults {
    /// Fault hooks are for tests: a release build (what production runs) turns them on only
    /// when told twice.
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.fault_hooks || cfg!(debug_assertions) || self.fault_hooks_in_release_build,
            "--fault-hooks is for tests: a release build turns it on only with --fault-hooks-in-release-build too"
        );
        if let Some(faults) = &self.fault_worker {
            worker_faults(faults)?;
        }
        Ok(())
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
pub(crate) fn cores() -> u32 {
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

    fn with_file(text: &str) -> (tempfile::TempDir, Settings) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        (dir, Settings { config: Some(file), ..Settings::default() })
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults_in_every_section() {
        let (_dir, mut settings) = with_file("converters = 7\nbitrate_kbps = 128\nmax_uploads_per_user = 9\n");
        settings.server.converters = Some(3);
        let config = Config::load(&settings).unwrap();
        assert_eq!(config.server.converters, 3);
        assert_eq!(config.conversion.bitrate_kbps, 128);
        assert_eq!(config.limits.max_uploads_per_user, 9);
        assert_eq!(config.conversion.lease_seconds, Conversion::default().lease_seconds);
    }

    #[test]
    fn unknown_keys_and_refused_values_are_errors_naming_the_setting() {
        let (_dir, settings) = with_file("convertrs = 7\n");
        assert!(Config::load(&settings).unwrap_err().to_string().contains("convertrs"));
        let (_dir, settings) = with_file("bitrate_kbps = 1000\n");
        let error = Config::load(&settings).unwrap_err().to_string();
        assert!(error.contains("bitrate_kbps must be between 32 and 320"), "{error}");
        let (_dir, settings) = with_file("max_uploads_per_user = 0\n");
        assert!(Config::load(&settings).unwrap_err().to_string().contains("max_uploads_per_user must be at least 1"));
    }

    #[test]
    fn every_setting_is_in_exactly_one_section() {
        let sections =
            [Server::KEYS, Storage::KEYS, Limits::KEYS, Conversion::KEYS, Mail::KEYS, Cluster::KEYS, Faults::KEYS];
        let mut all: Vec<&str> = sections.concat();
        let count = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), count, "a key is in two sections");
        assert!(all.len() > 50, "{} settings", all.len());
    }

    #[test]
    fn fault_hooks_need_a_second_flag_in_a_release_build() {
        let faults = Faults { fault_hooks: true, ..Faults::default() };
        assert_eq!(faults.validate().is_ok(), cfg!(debug_assertions));
        assert!(Faults { fault_hooks_in_release_build: true, ..faults }.validate().is_ok());
        assert!(Faults::default().validate().is_ok());
    }

    #[test]
    fn audio_only_copies_are_the_cluster_default_and_seed_compatibility_turns_them_off() {
        let load = |storage: StorageFlags| Config::load(&Settings { storage, ..Settings::default() });
        let cluster = || StorageFlags {
            profile: Some(Profile::Cluster),
            mysql_url: Some(Secret::new("mysql://db")),
            mongodb_url: Some(Secret::new("mongodb://db")),
            amqp_url: Some(Secret::new("amqp://mq")),
            ..StorageFlags::default()
        };
        let audio_only = |storage| load(storage).unwrap().storage.stores_audio_only();
        assert!(!audio_only(StorageFlags::default()));
        assert!(audio_only(StorageFlags { store_audio_only: Some(true), ..StorageFlags::default() }));
        assert!(audio_only(cluster()));
        assert!(!audio_only(StorageFlags { seed_compatible: Some(true), ..cluster() }));
        assert!(!audio_only(StorageFlags { store_audio_only: Some(false), ..cluster() }));
        assert!(load(StorageFlags { seed_compatible: Some(true), store_audio_only: Some(true), ..cluster() }).is_err());
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
