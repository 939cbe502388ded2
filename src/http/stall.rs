//! How slowly a client may send a request body: a stream that fails when the client sends
//! nothing for a while ([`Stalled`]), or sends so little, or for so long, that it would hold an
//! upload slot for as long as it likes ([`TooSlow`]): one byte every few seconds never stalls,
//! but falls under the minimum average rate once the grace period is over.
//!
//! Only the time spent waiting for the client counts: the clock runs while the body is asked
//! for its next bytes and stops when they arrive, so a slow store downstream is never taken for
//! a slow client. The failure travels like any broken body, so whoever consumes the stream (the
//! blob stores) discards what it had written.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::config::Limits;

/// The body stream failed because no bytes came for `0`.
#[derive(Debug, thiserror::Error)]
#[error("no body bytes arrived for {} s", .0.as_secs())]
pub struct Stalled(pub Duration);

/// The body stream failed because the client sent too slowly on average, or for too long.
#[derive(Debug, thiserror::Error)]
pub enum TooSlow {
    #[error("the body came at under {0} bytes a second on average")]
    Rate(u64),
    #[error("the body took over {} s", .0.as_secs())]
    Total(Duration),
}

/// Any error of a wrapped body: [`Stalled`], [`TooSlow`], or the inner stream's own.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// How slowly a body may come.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// The longest wait for the next bytes.
    pub stall: Duration,
    /// The lowest average rate, in bytes a second of waiting, once `grace` has passed.
    pub min_bytes_per_second: u64,
    pub grace: Duration,
    /// The longest the client may keep the reader waiting in all.
    pub total: Duration,
}

impl Pace {
    /// The pace an upload must keep, as the limits set it.
    pub fn of(limits: &Limits) -> Pace {
        Pace {
            stall: Duration::from_secs(limits.upload_stall_seconds),
            min_bytes_per_second: limits.upload_min_bytes_per_second,
            grace: Duration::from_secs(limits.upload_rate_grace_seconds),
            total: Duration::from_secs(limits.upload_max_seconds),
        }
    }
}

/// Which of a [`Pace`]'s limits a wait runs into first.
#[derive(Clone, Copy, Debug)]
enum Limit {
    Stall,
    Rate,
    Total,
}

impl Pace {
    /// How much longer the reader may wait, having waited `waited` for `received` bytes, and
    /// the limit it runs into then.
    fn allowance(&self, waited: Duration, received: u64) -> (Duration, Limit) {
        // The average stays at the minimum until `received / rate` of waiting, never before
        // grace; no minimum (0) never fails.
        let rate_until = match self.min_bytes_per_second {
            0 => Duration::MAX,
            rate => self.grace.max(Duration::from_secs_f64(received as f64 / rate as f64)),
        };
        [
            (self.stall, Limit::Stall),
            (rate_until.saturating_sub(waited), Limit::Rate),
            (self.total.saturating_sub(waited), Limit::Total),
        ]
        .into_iter()
        .min_by_key(|(left, _)| *left)
        .expect("three limits")
    }

    fn failure(&self, limit: Limit) -> BodyError {
        match limit {
            Limit::Stall => Box::new(Stalled(self.stall)),
            Limit::Rate => Box::new(TooSlow::Rate(self.min_bytes_per_second)),
            Limit::Total => Box::new(TooSlow::Total(self.total)),
        }
    }
}

/// `inner`, failing once it keeps the reader waiting longer than its [`Pace`] allows.
pub struct StallGuard<S> {
    inner: S,
    pace: Pace,
    /// Fires when the current wait has used up the allowance.
    deadline: Pin<Box<Sleep>>,
    /// When the current wait began (None: the reader is not waiting), and the limit it runs into.
    waiting: Option<(Instant, Limit)>,
    /// Time spent waiting for the client so far, and the bytes it sent.
    waited: Duration,
    received: u64,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S, pace: Pace) -> Self {
        let deadline = Box::pin(tokio::time::sleep(pace.stall));
        StallGuard { inner, pace, deadline, waiting: None, waited: Duration::ZERO, received: 0 }
    }
}

impl<S, T, E> Stream for StallGuard<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    T: AsRef<[u8]>,
    E: Into<BodyError>,
{
    type Item = Result<T, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.waiting.is_none() {
            let (left, limit) = this.pace.allowance(this.waited, this.received);
            let now = Instant::now();
            this.deadline.as_mut().reset(now + left);
            this.waiting = Some((now, limit));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                if let Some((since, _)) = this.waiting.take() {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(chunk)) = &item {
                    this.received += chunk.as_ref().len() as u64;
                }
                Poll::Ready(item.map(|result| result.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let limit = this.waiting.take().map_or(Limit::Stall, |(_, limit)| limit);
                    Poll::Ready(Some(Err(this.pace.failure(limit))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    type Chunks = futures_util::stream::BoxStream<'static, Result<&'static str, std::io::Error>>;

    const HOUR: Duration = Duration::from_secs(3600);

    fn pace(stall: Duration) -> Pace {
        Pace { stall, min_bytes_per_second: 0, grace: HOUR, total: HOUR }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_sending_fails_after_the_limit_and_a_slow_reader_does_not() {
        let limit = Duration::from_secs(5);
        let silent_after_one: Chunks =
            futures_util::stream::iter([Ok("first")]).chain(futures_util::stream::pending()).boxed();
        let mut guarded = StallGuard::new(silent_after_one, pace(limit));
        // The reader dawdles longer than the limit before each read: that is not the client's stall.
        tokio::time::sleep(limit * 2).await;
        assert_eq!(guarded.next().await.unwrap().unwrap(), "first");
        tokio::time::sleep(limit * 2).await;
        let started = Instant::now();
        let error = guarded.next().await.unwrap().unwrap_err();
        assert!(error.downcast_ref::<Stalled>().is_some(), "{error}");
        // Cut when the limit has passed since the read began waiting, not since the last byte.
        assert_eq!(started.elapsed(), limit);
    }

    /// One byte every `every`, for ever.
    fn drip(every: Duration) -> futures_util::stream::BoxStream<'static, Result<&'static str, std::io::Error>> {
        futures_util::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some((Ok("x"), ()))
        })
        .boxed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_drip_that_never_stalls_falls_under_the_average_rate_after_the_grace_period() {
        let slow = Pace {
            stall: Duration::from_secs(10),
            min_bytes_per_second: 100,
            grace: Duration::from_secs(30),
            total: HOUR,
        };
        let mut guarded = StallGuard::new(drip(Duration::from_secs(8)), slow);
        let started = Instant::now();
        let error = loop {
            if let Err(error) = guarded.next().await.unwrap() {
                break error;
            }
        };
        assert!(matches!(error.downcast_ref::<TooSlow>(), Some(TooSlow::Rate(100))), "{error}");
        // Cut at the end of the grace period, not at the next byte.
        assert_eq!(started.elapsed().as_secs(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_enough_body_runs_until_its_total_time() {
        let capped = Pace {
            stall: Duration::from_secs(10),
            min_bytes_per_second: 1,
            grace: Duration::from_secs(1),
            total: Duration::from_secs(60),
        };
        let mut guarded = StallGuard::new(drip(Duration::from_millis(100)), capped);
        let started = Instant::now();
        let mut received = 0;
        let error = loop {
            match guarded.next().await.unwrap() {
                Ok(_) => received += 1,
                Err(error) => break error,
            }
        };
        assert!(matches!(error.downcast_ref::<TooSlow>(), Some(TooSlow::Total(_))), "{error}");
        assert_eq!(started.elapsed().as_secs(), 60);
        assert!(received >= 590, "{received}");
    }
}
