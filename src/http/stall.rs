//! A minimum transfer rate for request bodies: a stream that fails with [`Stalled`] when the
//! client sends nothing for a while.
//!
//! Only the time spent waiting for the client counts: the clock starts when the body is asked
//! for its next bytes and stops when they arrive, so a slow store downstream is never taken
//! for a stalled client. The failure travels like any broken body, so whoever consumes the
//! stream (the blob stores) discards what it had written.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::time::{Instant, Sleep};

/// The body stream failed because no bytes came for `0`.
#[derive(Debug, thiserror::Error)]
#[error("no body bytes arrived for {} s", .0.as_secs())]
pub struct Stalled(pub Duration);

/// Any error of a wrapped body: [`Stalled`], or the inner stream's own.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// `inner`, failing with [`Stalled`] once it has kept the reader waiting for `limit`.
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    /// Fires `limit` after the reader started waiting.
    deadline: Pin<Box<Sleep>>,
    /// Whether the reader is waiting now, i.e. the deadline is armed.
    waiting: bool,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        StallGuard { inner, limit, deadline: Box::pin(tokio::time::sleep(limit)), waiting: false }
    }
}

impl<S, T, E> Stream for StallGuard<S>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: Into<BodyError>,
{
    type Item = Result<T, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if !this.waiting {
            this.deadline.as_mut().reset(Instant::now() + this.limit);
            this.waiting = true;
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(item) => {
                this.waiting = false;
                Poll::Ready(item.map(|result| result.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(Stalled(this.limit))))),
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

    #[tokio::test]
    async fn a_body_that_stops_sending_fails_after_the_limit_and_a_slow_reader_does_not() {
        let limit = Duration::from_millis(200);
        let silent_after_one: Chunks =
            futures_util::stream::iter([Ok("first")]).chain(futures_util::stream::pending()).boxed();
        let mut guarded = StallGuard::new(silent_after_one, limit);
        // The reader dawdles longer than the limit before each read: that is not the client's stall.
        tokio::time::sleep(limit * 2).await;
        assert_eq!(guarded.next().await.unwrap().unwrap(), "first");
        tokio::time::sleep(limit * 2).await;
        let started = Instant::now();
        let error = guarded.next().await.unwrap().unwrap_err();
        assert!(error.downcast_ref::<Stalled>().is_some(), "{error}");
        assert!(started.elapsed() >= limit && started.elapsed() < limit * 5, "{:?}", started.elapsed());
    }
}
