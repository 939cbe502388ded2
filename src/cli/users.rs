//! `user add | list | delete | passwd | set-admin`: accounts, straight in the user database of
//! the profile (works while `up` is running). They take only the flags that find that database.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::table::table;
use crate::config::{Config, Profile, Secret, Settings, StorageFlags};
use crate::prompt::{self, PasswordSource};
use crate::security::password;
use crate::storage::{StorageError, User, UserStore, cluster, embedded};

/// Shortest password accepted (OWASP's minimum for accounts without MFA).
const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user who can log in.
    Add {
        /// The user's email address, which is also their login name.
        email: String,
        /// Make the user an admin (may read every user's files).
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        database: UserDatabase,
    },
    /// Every user, with their role.
    List {
        #[command(flatten)]
        database: UserDatabase,
    },
    /// Remove a user (their jobs and files stay until deleted through the API).
    Delete {
        email: String,
        #[command(flatten)]
        database: UserDatabase,
    },
    /// Set a user's password.
    Passwd {
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        database: UserDatabase,
    },
    /// Make a user an admin, or (with --revoke) an ordinary user again.
    SetAdmin {
        email: String,
        /// Take the admin role away instead.
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        database: UserDatabase,
    },
}

#[derive(Args, Debug)]
pub struct PasswordArgs {
    /// Read the password from the first line of standard input (else a prompt without echo).
    #[arg(long)]
    password_stdin: bool,
}

/// Where the users are: the settings of `up` that name the user database, and nothing else
/// (so that `user add --help` shows only these).
#[derive(Args, Debug)]
pub struct UserDatabase {
    /// TOML file with settings (as for `up`; only those below are used).
    #[arg(long, env = "MP3C_CONFIG")]
    config: Option<PathBuf>,
    /// Which backends to use: the embedded profile's users are in the data folder's SQLite
    /// database, the cluster profile's in MySQL/MariaDB.
    #[arg(long, env = "MP3C_PROFILE", value_enum)]
    profile: Option<Profile>,
    /// Embedded profile: the data folder.
    #[arg(long, env = "MP3C_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Cluster profile: MySQL/MariaDB URL (mysql://user:password@host:port/db).
    #[arg(long, env = "MP3C_MYSQL_URL")]
    mysql_url: Option<Secret>,
    /// Cluster profile: a file holding the MySQL/MariaDB URL.
    #[arg(long, env = "MP3C_MYSQL_URL_FILE")]
    mysql_url_file: Option<PathBuf>,
}

impl UserDatabase {
    async fn open(self) -> anyhow::Result<Arc<dyn UserStore>> {
        let storage = StorageFlags {
            profile: self.profile,
            data_dir: self.data_dir,
            mysql_url: self.mysql_url,
            mysql_url_file: self.mysql_url_file,
            ..StorageFlags::default()
        };
        let config = Config::load_unchecked(&Settings { config: self.config, storage, ..Settings::default() })?;
        match config.storage.profile {
            Profile::Embedded => embedded::users(&config).await,
            Profile::Cluster => cluster::users(&config).await,
        }
    }
}

pub async fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { email, admin, password, database } => {
            email.parse::<lettre::Address>().map_err(|_| anyhow::anyhow!("{email:?} is not an email address"))?;
            let password_hash = new_password_hash(&password)?;
            match database
                .open()
                .await?
                .add(&User { email: email.clone(), password_hash, admin, session_generation: 0 })
                .await
            {
                Ok(()) => println!("added {}{email}", if admin { "admin " } else { "" }),
                Err(StorageError::Conflict) => anyhow::bail!("a user {email} already exists"),
                Err(other) => return Err(other.into()),
            }
        }
        UserCommand::List { database } => {
            let users = database.open().await?.list().await?;
            let rows = users.iter().map(|user| vec![user.email.clone(), role(user.admin).to_owned()]);
            print!("{}", table(["EMAIL", "ROLE"], rows));
        }
        UserCommand::Delete { email, database } => {
            found(database.open().await?.delete(&email).await?, &email)?;
            println!("deleted {email}");
        }
        UserCommand::Passwd { email, password, database } => {
            let users = database.open().await?;
            found(users.find(&email).await?.is_some(), &email)?;
            let password_hash = new_password_hash(&password)?;
            found(users.set_password(&email, &password_hash).await?, &email)?;
            println!("changed the password of {email}");
        }
        UserCommand::SetAdmin { email, revoke, database } => {
            found(database.open().await?.set_admin(&email, !revoke).await?, &email)?;
            println!("{email} is now {}", if revoke { "a user" } else { "an admin" });
        }
    }
    Ok(())
}

fn role(admin: bool) -> &'static str {
    if admin { "admin" } else { "user" }
}

fn found(found: bool, email: &str) -> anyhow::Result<()> {
    anyhow::ensure!(found, "there is no user {email}");
    Ok(())
}

/// A new password, asked for as `args` says, checked and hashed.
fn new_password_hash(args: &PasswordArgs) -> anyhow::Result<String> {
    let password = prompt::password(PasswordSource::from_flag(args.password_stdin), "new password: ")?;
    anyhow::ensure!(
        password.chars().count() >= MIN_PASSWORD_CHARS,
        "the password must be at least {MIN_PASSWORD_CHARS} characters"
    );
    password::hash(&password)
}
