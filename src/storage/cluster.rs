//! The cluster profile's backends: users in MySQL/MariaDB, blobs in MongoDB GridFS, job
//! records in MongoDB, the mailbox on RabbitMQ.

use std::sync::Arc;

use anyhow::Context;

use super::gridfs::GridFsBlobStore;
use super::mongo_jobs::MongoJobs;
use super::mysql::MysqlUsers;
use super::rabbitmq::RabbitMailbox;
use super::{Backends, UserStore};
use crate::config::{Config, Secret};

fn required<'a>(value: &'a Option<Secret>, flag: &str) -> anyhow::Result<&'a str> {
    value.as_ref().map(Secret::expose).with_context(|| format!("the cluster profile needs --{flag}"))
}

pub async fn backends(config: &Config) -> anyhow::Result<Backends> {
    let users = users(config).await?;
    let mongo = mongodb::Client::with_uri_str(required(&config.mongodb_url, "mongodb-url")?)
        .await
        .context("the MongoDB URL is not usable")?;
    let amqp_url = required(&config.amqp_url, "amqp-url")?.to_owned();
    Ok(Backends {
        users,
        blobs: Arc::new(GridFsBlobStore::new(&mongo)),
        jobs: Arc::new(MongoJobs::new(&mongo)),
        mailbox: Arc::new(RabbitMailbox::new(amqp_url, config.max_attempts)),
    })
}

pub async fn users(config: &Config) -> anyhow::Result<Arc<dyn UserStore>> {
    Ok(Arc::new(MysqlUsers::connect(required(&config.mysql_url, "mysql-url")?).await?))
}
