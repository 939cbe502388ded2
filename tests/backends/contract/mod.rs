//! One contract suite per storage trait, run against every backend of it: what the actors rely
//! on, whichever profile they run in. Each check is a function of the trait object; [`contract!`]
//! makes a test of each check for each backend (`contract::jobs::mongo::overdue_...`).
//!
//! - [`users`]: SQLite and MariaDB;
//! - [`blobs`]: files and GridFS;
//! - [`jobs`]: SQLite and MongoDB;
//! - [`mailbox`]: SQLite and RabbitMQ;
//! - [`intake`]: SQLite (one transaction) and MongoDB with RabbitMQ (record, then publish).

pub mod blobs;
pub mod intake;
pub mod jobs;
pub mod mailbox;
pub mod users;

/// What keeps a backend alive for one test besides the store itself (an embedded backend's
/// folder).
pub type Keep = Option<tempfile::TempDir>;

/// A fresh SQLite database in a folder of its own.
pub async fn sqlite() -> (sqlx::SqlitePool, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let pool = mp3converter::storage::sqlite::open(&dir.path().join("mp3converter.db")).await.unwrap();
    (pool, dir)
}

/// `contract!(checks: [a, b], backends: { sqlite => make_sqlite(), mongo => make_mongo() })`: a
/// module per backend with a test per check, each on a fresh store from `make` (an async
/// expression giving the store, boxed, and what keeps it alive).
macro_rules! contract {
    (checks: $checks:tt, backends: { $($backend:ident => $make:expr),* $(,)? }) => {
        $( contract!(@backend $backend, $make, $checks); )*
    };
    (@backend $backend:ident, $make:expr, [$($check:ident),* $(,)?]) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    let (store, _keep) = $make.await;
                    super::$check(store.as_ref()).await;
                }
            )*
        }
    };
}
pub(crate) use contract;
