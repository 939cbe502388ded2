//! The command line: `up` runs a node; `user` manages accounts in the user database
//! ([`users`]); `login`, `convert`, `jobs`, `download` and `cluster status` are clients of the
//! HTTP API ([`crate::client`]). Every error is printed once, as `error: ...`.

mod defaults;
mod table;
mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, FromArgMatches, Parser, Subcommand};
use url::Url;

use crate::app::Application;
use crate::client::convert::{self, ConvertOptions};
use crate::client::{ApiClient, Login, download};
use crate::config::{Config, Settings};
use crate::prompt::PasswordSource;
use crate::telemetry;
use table::table;
use users::UserCommand;

/// The exit code after Ctrl-C (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

#[derive(Parser, Debug)]
#[command(name = "mp3converter", version, about = "Self-hosted video-to-MP3 conversion service")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node of the service (every actor, in the embedded profile by default).
    Up {
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Manage users (in the user database itself; works while `up` is running).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Log in to --server and keep the token for the other commands (until it expires).
    Login {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// End the session kept for --server (its token is refused from then on) and forget it.
    Logout {
        /// End every session of the user, on every device.
        #[arg(long)]
        all: bool,
        /// The server's base URL.
        #[arg(long, env = "MP3C_SERVER", default_value = "http://127.0.0.1:8080")]
        server: Url,
    },
    /// Convert videos to MP3s on --server: upload, follow, download next to each video.
    Convert {
        /// The videos.
        #[arg(required = true)]
        videos: Vec<PathBuf>,
        /// Folder for the MP3s (default: next to each video).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Files converted at a time.
        #[arg(long, short, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Overwrite MP3s that already exist.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Your jobs on --server, newest first, as a table.
    Jobs {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Download one MP3 by its `mp3_fid` (as `jobs` shows it).
    Download {
        /// The MP3's id (the job's `mp3_fid`).
        fid: String,
        /// Where to write it (default: the server's file name, in the current folder).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Overwrite the file if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Look at a cluster of nodes.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Every node as the gateway at --server sees it, as a table (admins).
    Status {
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Which server, and how to log in to it when there is no valid token for it yet.
#[derive(Args, Debug)]
struct ServerArgs {
    /// The gateway's base URL.
    #[arg(long, env = "MP3C_SERVER", default_value = "http://127.0.0.1:8080")]
    server: Url,
    /// The login email (else asked for on the terminal).
    #[arg(long, env = "MP3C_EMAIL")]
    email: Option<String>,
    /// Read the password from the first line of standard input (else a prompt without echo).
    #[arg(long)]
    password_stdin: bool,
}

impl ServerArgs {
    /// A client of the server, with a cached token or a new login (`MP3C_TOKEN` wins).
    async fn client(self) -> anyhow::Result<ApiClient> {
        let login = self.login();
        ApiClient::connect(self.server, login).await
    }

    fn login(&self) -> Login {
        Login { email: self.email.clone(), password: PasswordSource::from_flag(self.password_stdin) }
    }
}

pub async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os().map(|arg| arg.to_string_lossy().into_owned()).collect();
    if let Err(error) = crate::config::refuse_passwords_in_flags(&args) {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    let matches = defaults::shown_in_help(<Cli as clap::CommandFactory>::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up { settings } => up(&settings).await?,
        Command::User { command } => users::run(command).await?,
        Command::Login { server } => {
            let base = server.server.clone();
            ApiClient::login_again(base.clone(), server.login()).await?;
            println!("logged in to {base}");
        }
        Command::Logout { all, server } => match ApiClient::logout(server.clone(), all).await? {
            true if all => println!("logged out of {server} everywhere"),
            true => println!("logged out of {server}"),
            false => println!("not logged in to {server}"),
        },
        Command::Convert { videos, output, jobs, force, server } => {
            let options = ConvertOptions { output, jobs: jobs.into(), force };
            let plan = convert::plan(&videos, &options)?;
            return Ok(match interruptible(convert::run(plan, &options, async || server.client().await)).await {
                Some(Ok(summary)) if summary.none_failed() => ExitCode::SUCCESS,
                Some(Ok(_)) => ExitCode::FAILURE,
                Some(Err(error)) => return Err(error),
                None => ExitCode::from(INTERRUPTED),
            });
        }
        Command::Jobs { server } => print!("{}", jobs_table(&server.client().await?.jobs().await?)),
        Command::Download { fid, output, force, server } => {
            let client = server.client().await?;
            match interruptible(download::one(&client, &fid, output, force)).await {
                Some(path) => println!("{}", path?.display()),
                None => return Ok(ExitCode::from(INTERRUPTED)),
            }
        }
        Command::Cluster { command: ClusterCommand::Status { server } } => {
            print!("{}", cluster_table(&server.client().await?.get_json("/cluster").await?));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `work` until it ends, or until Ctrl-C (None), which drops it: whatever it was writing
/// is removed with its temporary files.
async fn interruptible<T>(work: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        done = work => Some(done),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            None
        }
    }
}

async fn up(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::load(settings)?;
    telemetry::init(config.server.log_format);
    let app = Application::build(config).await?;
    // Scripts and tests read this line to find the port.
    println!("listening on http://{}", app.address());
    tracing::info!(address = %app.address(), "listening");
    app.run_until_stopped(shutdown_signal()).await
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// A JSON value as a table cell: strings as they are, nothing as `-`.
fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The caller's jobs as a table: one line per job.
fn jobs_table(jobs: &[serde_json::Value]) -> String {
    let rows = jobs.iter().map(|job| {
        let duration = job["media_seconds"].as_f64().map_or_else(|| "-".to_owned(), table::media_duration);
        let created = job["created_at"].as_str().map_or_else(|| "-".to_owned(), table::local_time);
        vec![
            cell(&job["job_id"]),
            created,
            cell(&job["state"]),
            cell(&job["filename"]),
            duration,
            cell(&job["mp3_fid"]),
            cell(&job["error"]),
        ]
    });
    table(["JOB", "CREATED", "STATE", "FILE", "DURATION", "MP3_FID", "ERROR"], rows)
}

/// `/cluster` as a table: one line per node.
fn cluster_table(view: &serde_json::Value) -> String {
    let rows = view["nodes"].as_array().into_iter().flatten().map(|node| {
        let status = &node["status"];
        let state = match node["since"].as_str() {
            Some(since) => format!("{} since {since}", cell(&node["state"])),
            None => cell(&node["state"]),
        };
        let roles = status["roles"].as_array().or(node["roles"].as_array()).into_iter().flatten();
        let roles: Vec<String> = roles.map(cell).collect();
        vec![
            cell(&node["node"]),
            state,
            roles.join(","),
            cell(&status["version"]),
            status["uptime_seconds"].as_u64().map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
            status["converting"].as_array().map_or_else(|| "-".to_owned(), |held| held.len().to_string()),
            cell(&status["jobs_done"]),
            cell(&status["jobs_failed"]),
        ]
    });
    table(["NODE", "STATE", "ROLES", "VERSION", "UPTIME", "CONVERTING", "DONE", "FAILED"], rows)
}
