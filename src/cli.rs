//! The command line: `up` runs a node, `user add` creates an account.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::Application;
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
