//! A cap on what a multipart body may send outside the file: its preamble, every part's
//! headers and the parts without a file, together at most [`PREAMBLE_LIMIT`].
//!
//! The multipart parser buffers a part's headers until they end, and a body's preamble until
//! its first boundary, without a limit of its own: a header that never ends, or a body without
//! the boundary, would grow the node's memory as fast as the client sends. So the body is
//! counted while the parser looks for the next part ([`Preamble::looking`]) and not while it
//! hands out a part's data. While looking, the body is handed over in pieces of at most
//! [`PIECE_BYTES`], one per poll (the parser reads all a stream has ready before it parses), so
//! that the file data read ahead with the last headers counts only that much.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// The most a body may send outside its file.
pub const PREAMBLE_LIMIT: usize = 64 * 1024;
/// The largest piece handed to the parser while it looks for a part.
const PIECE_BYTES: usize = 4 * 1024;

/// The body failed because it sent more than `0` bytes outside its file.
#[derive(Debug, thiserror::Error)]
#[error("the multipart body sent more than {0} bytes before or around its file")]
pub struct PreambleTooLarge(pub usize);

/// The count shared by a [`Counted`] body and the handler that drives its parser.
#[derive(Default)]
pub struct Preamble {
    looking: AtomicBool,
    spent: AtomicUsize,
}

impl Preamble {
    /// The parser is looking for the next part: what the body sends counts.
    pub fn looking(&self, looking: bool) {
        self.looking.store(looking, Ordering::Relaxed);
    }
}

/// `inner`, counted against its [`Preamble`].
pub struct Counted<S> {
    inner: S,
    preamble: Arc<Preamble>,
    /// What is left of a chunk cut into pieces.
    rest: Bytes,
    /// A piece was just handed over while looking: the parser looks at it before the next.
    handed_piece: bool,
}

impl<S> Counted<S> {
    pub fn new(inner: S, preamble: Arc<Preamble>) -> Self {
        Counted { inner, preamble, rest: Bytes::new(), handed_piece: false }
    }
}

impl<S, E> Stream for Counted<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: From<PreambleTooLarge>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let looking = this.preamble.looking.load(Ordering::Relaxed);
        if looking && this.handed_piece {
            this.handed_piece = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.rest.is_empty() {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.rest = chunk,
                other => return other,
            }
        }
        if !looking {
            return Poll::Ready(Some(Ok(std::mem::take(&mut this.rest))));
        }
        let piece = this.rest.split_to(this.rest.len().min(PIECE_BYTES));
        this.handed_piece = true;
        let spent = this.preamble.spent.fetch_add(piece.len(), Ordering::Relaxed) + piece.len();
        if spent > PREAMBLE_LIMIT {
            return Poll::Ready(Some(Err(PreambleTooLarge(PREAMBLE_LIMIT).into())));
        }
        Poll::Ready(Some(Ok(piece)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::stall::BodyError;
    use futures_util::StreamExt;

    type Chunks = futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, BodyError>>>;

    fn body(chunks: Vec<Bytes>) -> Counted<Chunks> {
        let chunks: Vec<Result<Bytes, BodyError>> = chunks.into_iter().map(Ok).collect();
        Counted::new(futures_util::stream::iter(chunks), Arc::new(Preamble::default()))
    }

    #[tokio::test]
    async fn only_what_comes_while_looking_counts_and_in_small_pieces() {
        let mut counted = body(vec![Bytes::from(vec![1; 10_000]), Bytes::from(vec![2; 1 << 20])]);
        counted.preamble.looking(true);
        assert_eq!(counted.next().await.unwrap().unwrap().len(), PIECE_BYTES);
        counted.preamble.looking(false);
        // The rest of the chunk, then whole chunks however large.
        assert_eq!(counted.next().await.unwrap().unwrap().len(), 10_000 - PIECE_BYTES);
        assert_eq!(counted.next().await.unwrap().unwrap().len(), 1 << 20);
        assert_eq!(counted.preamble.spent.load(Ordering::Relaxed), PIECE_BYTES);
        assert!(counted.next().await.is_none());
    }

    #[tokio::test]
    async fn past_the_limit_while_looking_the_body_fails() {
        let mut counted = body(vec![Bytes::from(vec![b'x'; PREAMBLE_LIMIT + 1])]);
        counted.preamble.looking(true);
        let mut passed = 0;
        let error = loop {
            match counted.next().await.unwrap() {
                Ok(piece) => passed += piece.len(),
                Err(error) => break error,
            }
        };
        assert!(passed <= PREAMBLE_LIMIT, "{passed}");
        assert!(error.is::<PreambleTooLarge>(), "{error}");
    }
}
