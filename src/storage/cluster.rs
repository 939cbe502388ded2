//! The cluster profile's backends: users in MySQL/MariaDB, blobs in MongoDB GridFS, job
//! records in MongoDB, the mailbox on RabbitMQ.

use std::sync::Arc;

use anyhow::Context;

use super::gridfs::GridFsBlobStore;
use super::intake::RecordThenPublish;
use super::mongo_jobs::MongoJobs;
use super::mysql::MysqlUsers;
use super::rabbitmq::RabbitMailbox;
use super::{JobStore, Mailbox, Stores, UserStore};
use crate::config::{Config, Secret};
use crate::metrics::Metrics;

fn required<'a>(value: &'a Option<Secret>, flag: &str) -> anyhow::Result<&'a str> {
    value.as_ref().map(Secret::expose).with_context(|| format!("the cluster profile needs --{flag}"))
}

pub async fn stores(config: &Config, metrics: &Metrics) -> anyhow::Result<Stores> {
    let users = users(config).await?;
    let mongo = mongo_client(required(&config.storage.mongodb_url, "mongodb-url")?).await?;
    let amqp_url = required(&config.storage.amqp_url, "amqp-url")?.to_owned();
    let mongo_jobs = MongoJobs::new(&mongo);
    if let Err(error) = mongo_jobs.create_indexes().await {
        // Not fatal: the database may come up later; the next start creates them.
        tracing::warn!(%error, "could not create the job indexes now");
    }
    let jobs: Arc<dyn JobStore> = Arc::new(mongo_jobs);
    let mailbox: Arc<dyn Mailbox> =
        Arc::new(RabbitMailbox::new(amqp_url, config.storage.prefetch, config.conversion.lease()));
    Ok(Stores {
        users,
        blobs: Arc::new(GridFsBlobStore::new(&mongo, metrics.stores.gridfs_bytes.clone())),
        intake: Arc::new(RecordThenPublish { jobs: jobs.clone(), mailbox: mailbox.clone() }),
        jobs,
        mailbox,
    })
}

/// A MongoDB client that gives up on an unreachable server after a few seconds (the driver's
/// default is 30 s), so that requests fail fast with 503 while the database is away; a URL's
/// own `serverSelectionTimeoutMS` or `connectTimeoutMS` wins.
async fn mongo_client(url: &str) -> anyhow::Result<mongodb::Client> {
    let mut options = mongodb::options::ClientOptions::parse(url).await.context("the MongoDB URL is not usable")?;
    options.server_selection_timeout.get_or_insert(MONGODB_TIMEOUT);
    options.connect_timeout.get_or_insert(MONGODB_TIMEOUT);
    Ok(mongodb::Client::with_options(options)?)
}

const MONGODB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn users(config: &Config) -> anyhow::Result<Arc<dyn UserStore>> {
    Ok(Arc::new(MysqlUsers::connect(required(&config.storage.mysql_url, "mysql-url")?).await?))
}
