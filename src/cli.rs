//! The command line: `up` runs a node, `user add` creates an account.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::client::ApiClient;
use crate::config::{Config, Profile, Settings};
use crate::security::password;
use crate::storage::{StorageError, User, cluster, embedded};
use crate::telemetry;

/// Shortest password `user add` accepts (OWASP's minimum for accounts without MFA).
const MIN_PASSWORD_CHARS: usize = 8;

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
        settings: Settings,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Look at a cluster of nodes.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Every node as the gateway at --server sees it, as a table (admins; the token comes from
    /// MP3C_TOKEN, else a login asks for the email and password).
    Status {
        /// The gateway's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "MP3C_SERVER")]
        server: url::Url,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user who can log in; works while `up` is running.
    Add {
        /// The user's email address, which is also their login name.
        email: String,
        /// Make the user an admin (may read every user's files).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        #[command(flatten)]
        settings: Settings,
    },
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up { settings } => up(&settings).await,
        Command::User { command: UserCommand::Add { email, admin, password_stdin: _, settings } } => {
            add_user(&settings, &email, admin).await
        }
        Command::Cluster { command: ClusterCommand::Status { server } } => cluster_status(server).await,
    }
}

async fn up(settings: &Settings) -> anyhow::Result<()> {
    let config = Config::load(settings)?;
    telemetry::init(config.log_format);
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

async fn add_user(settings: &Settings, email: &str, admin: bool) -> anyhow::Result<()> {
    let config = Config::load(settings)?;
    telemetry::init(config.log_format);
    email.parse::<lettre::Address>().map_err(|_| anyhow::anyhow!("{email:?} is not an email address"))?;
    let password = read_password()?;
    let password_hash = tokio::task::spawn_blocking(move || password::hash(&password)).await??;
    let users = match config.profile {
        Profile::Embedded => embedded::users(&config).await?,
        Profile::Cluster => cluster::users(&config).await?,
    };
    match users.add(&User { email: email.to_owned(), password_hash, admin }).await {
        Ok(()) => {
            println!("added {}{email}", if admin { "admin " } else { "" });
            Ok(())
        }
        Err(StorageError::Conflict) => anyhow::bail!("a user {email} already exists"),
        Err(other) => Err(other.into()),
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "the password must be at least {MIN_PASSWORD_CHARS} characters"
    );
    Ok(password)
}

async fn cluster_status(server: url::Url) -> anyhow::Result<()> {
    let client = ApiClient::connect(server).await?;
    let view = client.get_json("/cluster").await?;
    print!("{}", cluster_table(&view));
    Ok(())
}

/// `/cluster` as a table: one line per node.
fn cluster_table(view: &serde_json::Value) -> String {
    let mut rows =
        vec![["NODE", "STATE", "ROLES", "VERSION", "UPTIME", "CONVERTING", "DONE", "FAILED"].map(String::from)];
    for node in view["nodes"].as_array().into_iter().flatten() {
        let status = &node["status"];
        let text = |value: &serde_json::Value| value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        let state = match node["since"].as_str() {
            Some(since) => format!("{} since {since}", text(&node["state"])),
            None => text(&node["state"]),
        };
        let roles = status["roles"].as_array().or(node["roles"].as_array()).into_iter().flatten();
        let roles: Vec<String> = roles.map(text).collect();
        let dash = |value: &serde_json::Value| if value.is_null() { "-".to_owned() } else { text(value) };
        rows.push([
            text(&node["node"]),
            state,
            roles.join(","),
            dash(&status["version"]),
            status["uptime_seconds"].as_u64().map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
            status["converting"].as_array().map_or_else(|| "-".to_owned(), |held| held.len().to_string()),
            dash(&status["jobs_done"]),
            dash(&status["jobs_failed"]),
        ]);
    }
    let widths: Vec<usize> = (0..8).map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}
