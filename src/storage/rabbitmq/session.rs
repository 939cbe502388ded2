//! One connection to RabbitMQ with its publishing channel, made on first use and again after
//! it is lost, with a backoff between failed tries so that callers fail fast meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::storage::{StorageError, StorageResult};

/// Longest a connection, with its channel and queue declarations, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a publish may wait for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

pub fn broker_error(error: lapin::Error) -> StorageError {
    StorageError::unavailable(error)
}

/// What a new connection must do before it is used (declare the queues).
pub type Setup = for<'a> fn(&'a Connection) -> BoxFuture<'a, StorageResult<()>>;

/// One connection with its publishing channel (in confirm mode).
pub struct Session {
    pub connection: Connection,
    pub publisher: Channel,
}

/// The current session, if any, and how to make the next one.
pub struct Sessions {
    url: String,
    current: tokio::sync::Mutex<Option<Arc<Session>>>,
    reconnect: Mutex<Reconnecting>,
}

impl Sessions {
    pub fn new(url: String) -> Self {
        Sessions { url, current: tokio::sync::Mutex::new(None), reconnect: Mutex::new(Reconnecting::default()) }
    }

    /// The live session, connecting (and running `setup` on the new connection) if there is
    /// none. While reconnecting is backing off, callers fail fast.
    pub async fn get(&self, setup: Setup) -> StorageResult<Arc<Session>> {
        let mut current = tokio::time::timeout(CONNECT_TIMEOUT, self.current.lock()).await.map_err(|_| {
            StorageError::unavailable(anyhow::anyhow!("another caller is still connecting to RabbitMQ"))
        })?;
        if let Some(session) = current.as_ref().filter(|s| s.connection.status().connected()) {
            return Ok(session.clone());
        }
        *current = None;
        if let Some(wait) = self.backoff().remaining() {
            return Err(StorageError::unavailable(anyhow::anyhow!("RabbitMQ is unreachable; next try in {wait:?}")));
        }
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(setup))
            .await
            .unwrap_or_else(|_| Err(StorageError::unavailable(anyhow::anyhow!("connecting to RabbitMQ timed out"))));
        match connected {
            Ok(session) => {
                self.backoff().succeeded();
                tracing::info!("connected to RabbitMQ");
                *current = Some(session.clone());
                Ok(session)
            }
            Err(error) => {
                self.backoff().failed();
                tracing::warn!(%error, "cannot reach RabbitMQ");
                Err(error)
            }
        }
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Reconnecting> {
        self.reconnect.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn connect(&self, setup: Setup) -> StorageResult<Arc<Session>> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await.map_err(broker_error)?;
        setup(&connection).await?;
        let publisher = connection.create_channel().await.map_err(broker_error)?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(broker_error)?;
        Ok(Arc::new(Session { connection, publisher }))
    }

    /// Drops the session, so the next caller connects anew.
    pub async fn forget(&self) {
        if let Ok(mut current) = tokio::time::timeout(CONNECT_TIMEOUT, self.current.lock()).await {
            *current = None;
        }
    }
}

/// The wait after a failed connection attempt: 0.5 s doubling to 10 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));

/// Reconnection backoff: after a failed attempt, no new one for a while ([`RECONNECT`]).
#[derive(Clone, Debug, Default)]
struct Reconnecting {
    failures: u32,
    not_before: Option<Instant>,
}

impl Reconnecting {
    fn remaining(&self) -> Option<Duration> {
        self.not_before.and_then(|at| at.checked_duration_since(Instant::now()))
    }

    fn failed(&mut self) {
        self.failures += 1;
        self.not_before = Some(Instant::now() + RECONNECT.wait(self.failures));
    }

    fn succeeded(&mut self) {
        *self = Reconnecting::default();
    }
}

pub fn persistent_json() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into())
}

/// Publishes and waits for the broker's confirm, at most [`CONFIRM_TIMEOUT`]: a broker that
/// blocks publishers (a memory alarm, say) makes the caller fail with `Unavailable`, not hang.
pub async fn publish_confirmed(
    channel: &Channel,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> StorageResult<()> {
    let publish = async {
        channel
            .basic_publish("".into(), routing_key.into(), BasicPublishOptions::default(), body, properties)
            .await?
            .await
    };
    let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, publish)
        .await
        .map_err(|_| StorageError::unavailable(anyhow::anyhow!("RabbitMQ did not confirm in {CONFIRM_TIMEOUT:?}")))?
        .map_err(broker_error)?;
    if confirm.is_nack() {
        return Err(StorageError::unavailable(anyhow::anyhow!("RabbitMQ refused the message")));
    }
    Ok(())
}

pub fn header_number(headers: Option<&FieldTable>, key: &str) -> u32 {
    let value = headers.and_then(|table| table.inner().get(key));
    match value {
        Some(AMQPValue::LongLongInt(n)) => *n as u32,
        Some(AMQPValue::LongInt(n)) => *n as u32,
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => *n as u32,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused time: no wall clock passes between a failure and the look at what remains.
    #[tokio::test(start_paused = true)]
    async fn reconnecting_backs_off_and_a_success_resets_it() {
        let mut backoff = Reconnecting::default();
        assert_eq!(backoff.remaining(), None);
        backoff.failed();
        let first = backoff.remaining().unwrap();
        assert!(first <= Duration::from_millis(500) && first > Duration::from_millis(400), "{first:?}");
        backoff.failed();
        assert!(backoff.remaining().unwrap() > first);
        for _ in 0..10 {
            backoff.failed();
        }
        assert!(backoff.remaining().unwrap() <= Duration::from_secs(10));
        backoff.succeeded();
        assert_eq!(backoff.remaining(), None);
    }
}
