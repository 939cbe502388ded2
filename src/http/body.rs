//! A request body that can be handed to a streaming parser and taken back afterwards.
//!
//! When an upload is refused part-way (too large, malformed, a store that failed), the client
//! is usually still sending. If the
//! server answered and closed at once, the client's next write would hit a reset and it would
//! never read the answer; so before answering, the rest of the body is read and discarded, up
//! to a budget of bytes and time (the "lingering close" of HTTP servers).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body, Incoming};

/// How much of a refused body is read before answering anyway.
const DRAIN_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The data frames of a request body, shared with whoever may drain it later.
#[derive(Clone)]
pub struct SharedBody(Arc<Mutex<Incoming>>);

impl SharedBody {
    pub fn new(body: Incoming) -> Self {
        SharedBody(Arc::new(Mutex::new(body)))
    }

    /// Reads and discards what is left of the body, within the drain budget.
    pub async fn drain(self) {
        let mut read = 0u64;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            let mut frames = self;
            while let Some(Ok(data)) = futures_util::StreamExt::next(&mut frames).await {
                read += data.len() as u64;
                if read > DRAIN_BYTES {
                    break;
                }
            }
        })
        .await;
    }
}

impl Stream for SharedBody {
    type Item = Result<Bytes, hyper::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut body = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if body.is_end_stream() {
                return Poll::Ready(None);
            }
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(_trailers) => continue,
                },
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
