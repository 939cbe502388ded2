//! The embedded persistent mailbox: the `video` and `mp3` queues as rows of one SQLite table.
//!
//! Delivery is at least once. A consumer claims the oldest visible message with a lease; while
//! the delivery is held a keep-alive task renews the lease, so a long conversion keeps its job,
//! and a process that dies stops renewing, so its jobs become visible again when the lease runs
//! out. Every claim stamps a fresh token: a consumer whose lease was lost cannot ack a message
//! that someone else now holds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use sqlx::SqliteExecutor;

use super::{db_error, ping};
use crate::storage::{Delivery, Mailbox, Queue, StorageResult, now_millis};

/// How often a waiting consumer looks again without being woken (for retries whose delay ran
/// out and leases that expired).
const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub struct SqliteMailbox {
    pool: SqlitePool,
    /// How long a claim holds a message without a keep-alive.
    lease: Duration,
    /// Unanswered deliveries after which a message goes to its dead-letter queue (a consumer
    /// that died each time): [`crate::storage::DELIVERY_LIMIT`] outside tests.
    delivery_limit: u32,
    /// Wakes this process's waiting consumers when it publishes.
    published: Arc<HashMap<&'static str, Arc<Notify>>>,
}

impl SqliteMailbox {
    pub fn new(pool: SqlitePool, lease: Duration, delivery_limit: u32) -> Self {
        let published = Queue::ALL.into_iter().map(|queue| (queue.name(), Arc::new(Notify::new()))).collect();
        SqliteMailbox { pool, lease, delivery_limit, published: Arc::new(published) }
    }

    /// Wakes the consumers waiting on `queue` in this process (after a commit that added to it).
    pub(super) fn wake(&self, queue: Queue) {
        self.published[queue.name()].notify_waiters();
    }

    /// Moves the visible messages of `queue` that were delivered as often as allowed to its
    /// dead-letter queue, as RabbitMQ does with `x-delivery-limit`.
    async fn dead_letter_exhausted(&self, queue: Queue) -> StorageResult<()> {
        if !queue.is_work() {
            return Ok(());
        }
        let dead = queue.dead_letters();
        let moved = sqlx::query(
            "UPDATE mailbox SET queue = ?, deliveries = 0, retries = 0, consumer = NULL, token = NULL \
             WHERE queue = ? AND visible_at <= ? AND deliveries - retries >= ?",
        )
        .bind(dead.name())
        .bind(queue.name())
        .bind(now_millis())
        .bind(self.delivery_limit as i64)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if moved.rows_affected() > 0 {
            tracing::warn!(queue = queue.name(), count = moved.rows_affected(), "dead-lettered messages");
            self.published[dead.name()].notify_waiters();
        }
        Ok(())
    }

    async fn try_claim(&self, queue: Queue, consumer: &str) -> StorageResult<Option<SqliteDelivery>> {
        self.dead_letter_exhausted(queue).await?;
        let now = now_millis();
        let token = random_token();
        let row = sqlx::query(
            "UPDATE mailbox SET visible_at = ?, deliveries = deliveries + 1, consumer = ?, token = ? \
             WHERE seq = (SELECT seq FROM mailbox WHERE queue = ? AND visible_at <= ? ORDER BY seq LIMIT 1) \
             RETURNING seq, body, deliveries",
        )
        .bind(now + self.lease.as_millis() as i64)
        .bind(consumer)
        .bind(token)
        .bind(queue.name())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(row.map(|row| {
            let claim =
                Claim { pool: self.pool.clone(), seq: row.get("seq"), token, published: self.published.clone() };
            let keep_alive = tokio::spawn(claim.clone().keep_alive(self.lease)).abort_handle();
            let attempt = row.get::<i64, _>("deliveries") as u32;
            SqliteDelivery { claim, queue, body: row.get("body"), attempt, keep_alive }
        }))
    }
}

fn random_token() -> i64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    i64::from_le_bytes(bytes)
}

#[async_trait]
impl Mailbox for SqliteMailbox {
    async fn publish(&self, queue: Queue, body: &[u8]) -> StorageResult<()> {
        insert(&self.pool, queue, body).await?;
        self.wake(queue);
        Ok(())
    }

    async fn receive(&self, queue: Queue, consumer: &str, wait: Duration) -> StorageResult<Option<Box<dyn Delivery>>> {
        let deadline = tokio::time::Instant::now() + wait;
        let notify = &self.published[queue.name()];
        loop {
            // Listen before looking, so a publish between the look and the wait is not missed.
            let woken = notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(delivery) = self.try_claim(queue, consumer).await? {
                return Ok(Some(Box::new(delivery)));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let nap = POLL_INTERVAL.min(deadline - now);
            let _ = tokio::time::timeout(nap, woken).await;
        }
    }

    async fn depth(&self, queue: Queue) -> StorageResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mailbox WHERE queue = ? AND visible_at <= ?")
            .bind(queue.name())
            .bind(now_millis())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(count as u64)
    }

    async fn ping(&self) -> StorageResult<()> {
        ping(&self.pool).await
    }
}

/// Adds a message to `queue`, visible at once (also used inside the intake's transaction).
pub(super) async fn insert(executor: impl SqliteExecutor<'_>, queue: Queue, body: &[u8]) -> StorageResult<()> {
    sqlx::query("INSERT INTO mailbox (queue, body, visible_at) VALUES (?, ?, ?)")
        .bind(queue.name())
        .bind(body)
        .bind(now_millis())
        .execute(executor)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The identity of one claim of one message.
#[derive(Clone)]
struct Claim {
    pool: SqlitePool,
    seq: i64,
    token: i64,
    published: Arc<HashMap<&'static str, Arc<Notify>>>,
}

impl Claim {
    async fn keep_alive(self, lease: Duration) {
        let mut ticks = tokio::time::interval(lease / 3);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let renewed = sqlx::query("UPDATE mailbox SET visible_at = ? WHERE seq = ? AND token = ?")
                .bind(now_millis() + lease.as_millis() as i64)
                .bind(self.seq)
                .bind(self.token)
                .execute(&self.pool)
                .await;
            if let Err(error) = renewed {
                tracing::warn!(seq = self.seq, %error, "could not renew a mailbox lease");
            }
        }
    }

    /// Hands the message back, visible again at `visible_at`, taking its delivery back (a
    /// release). Clearing the token ends the claim: a renewal still in flight from the
    /// keep-alive task then matches nothing and cannot push the message out of sight again.
    async fn give_back(&self, visible_at: i64) -> StorageResult<()> {
        sqlx::query(
            "UPDATE mailbox SET visible_at = ?, deliveries = deliveries - 1, token = NULL WHERE seq = ? AND token = ?",
        )
        .bind(visible_at)
        .bind(self.seq)
        .bind(self.token)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Moves the message to `queue` (its own, for a retry), visible at `visible_at`. A retry is
    /// an answered delivery: it does not count toward dead-lettering. In another queue the
    /// message starts afresh.
    async fn forward(&self, queue: Queue, visible_at: i64) -> StorageResult<()> {
        sqlx::query(
            "UPDATE mailbox SET queue = ?1, visible_at = ?2, consumer = NULL, token = NULL, \
             retries = CASE WHEN queue = ?1 THEN retries + 1 ELSE 0 END, \
             deliveries = CASE WHEN queue = ?1 THEN deliveries ELSE 0 END \
             WHERE seq = ?3 AND token = ?4",
        )
        .bind(queue.name())
        .bind(visible_at)
        .bind(self.seq)
        .bind(self.token)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        self.published[queue.name()].notify_waiters();
        Ok(())
    }
}

struct SqliteDelivery {
    claim: Claim,
    queue: Queue,
    body: Vec<u8>,
    attempt: u32,
    keep_alive: AbortHandle,
}

impl Drop for SqliteDelivery {
    fn drop(&mut self) {
        // A delivery dropped unanswered stops renewing: its lease runs out and it is redelivered.
        self.keep_alive.abort();
    }
}

#[async_trait]
impl Delivery for SqliteDelivery {
    fn body(&self) -> &[u8] {
        &self.body
    }

    fn queue(&self) -> Queue {
        self.queue
    }

    fn attempt(&self) -> u32 {
        self.attempt
    }

    async fn ack(self: Box<Self>) -> StorageResult<()> {
        self.keep_alive.abort();
        sqlx::query("DELETE FROM mailbox WHERE seq = ? AND token = ?")
            .bind(self.claim.seq)
            .bind(self.claim.token)
            .execute(&self.claim.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn forward(self: Box<Self>, queue: Queue, delay: Duration) -> StorageResult<()> {
        self.keep_alive.abort();
        self.claim.forward(queue, now_millis() + delay.as_millis() as i64).await
    }

    async fn release(self: Box<Self>) -> StorageResult<()> {
        self.keep_alive.abort();
        self.claim.give_back(now_millis()).await
    }
}
