//! Answers to requests hyper cannot parse, in JSON like every other error.
//!
//! hyper answers a request head it cannot parse by itself, before any handler runs: a path
//! with a character a URI may not hold (`/jobs/<job_id>` pasted from the README), a header
//! without a colon, a head over the read buffer. Its answers are a bare status line with an
//! empty body. [`JsonParseErrors`] wraps the connection's writes and replaces those canned
//! answers, and only those (their status, `content-length: 0` and no body: every answer of
//! ours has a JSON body), with the service's JSON error. hyper closes the connection after
//! them, so nothing follows the replacement.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The canned answers hyper writes for a request it cannot parse, and what each becomes.
const CANNED: [(&str, &str, &str); 3] = [
    (
        "HTTP/1.1 400 Bad Request\r\n",
        "malformed_request",
        "the request is not valid HTTP: its path must be percent-encoded (no spaces, quotes, < or >) \
         and every header must be `name: value`",
    ),
    ("HTTP/1.1 414 URI Too Long\r\n", "uri_too_long", "the request's path and query are too long"),
    ("HTTP/1.1 431 Request Header Fields Too Large\r\n", "headers_too_large", "the request's headers are too large"),
];

/// The JSON answer that replaces `head` when it is one of hyper's canned answers.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let bodiless = text.ends_with("\r\n\r\n") && text.to_ascii_lowercase().contains("\r\ncontent-length: 0\r\n");
    let (status_line, code, message) = CANNED.iter().find(|(status_line, ..)| text.starts_with(status_line))?;
    if !bodiless {
        return None;
    }
    let body = format!("{}\n", serde_json::json!({ "error": { "code": code, "message": message } }));
    let answer = format!(
        "{status_line}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    Some(answer.into_bytes())
}

/// A connection whose canned parse-error answers are replaced with JSON ones.
pub struct JsonParseErrors<S> {
    inner: S,
    /// A replacement answer and how much of it is written; it is finished before anything else.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S> JsonParseErrors<S> {
    pub fn new(inner: S) -> Self {
        JsonParseErrors { inner, pending: None }
    }
}

impl<S: AsyncWrite + Unpin> JsonParseErrors<S> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.pending {
            if *written == answer.len() {
                self.pending = None;
                break;
            }
            let count = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if count == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += count;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `head` (all of it, as written) when it is a canned answer, to send its replacement.
    fn replaces(&mut self, head: &[u8]) -> bool {
        match replacement(head) {
            Some(answer) => {
                self.pending = Some((answer, 0));
                true
            }
            None => false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for JsonParseErrors<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if self.replaces(buf) {
            // Started now, finished by the next write, flush or shutdown.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let [only] = bufs
            && self.replaces(only)
        {
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(only.len()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANNED_400: &str = "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";

    fn body_of(answer: &[u8]) -> serde_json::Value {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).unwrap().parse().unwrap();
        assert_eq!(length, body.len(), "{text}");
        assert!(body.ends_with('\n'), "{text}");
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn each_canned_answer_becomes_a_json_error_with_the_same_status() {
        let answer = replacement(CANNED_400.as_bytes()).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"));
        assert_eq!(body_of(&answer)["error"]["code"], "malformed_request");
        let canned_431 = "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(body_of(&replacement(canned_431.as_bytes()).unwrap())["error"]["code"], "headers_too_large");
        let canned_414 = "HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(body_of(&replacement(canned_414.as_bytes()).unwrap())["error"]["code"], "uri_too_long");
    }

    #[test]
    fn answers_of_ours_pass_untouched() {
        let ours = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n";
        assert_eq!(replacement(ours.as_bytes()), None, "a head with a body to follow");
        let with_body = format!("{CANNED_400}{{}}");
        assert_eq!(replacement(with_body.as_bytes()), None, "bytes after the head");
        assert_eq!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(replacement(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn the_replacement_is_written_whole_through_a_slow_writer() {
        use tokio::io::AsyncWriteExt;
        let (client, mut server) = tokio::io::duplex(7); // a few bytes per write
        let mut wrapped = JsonParseErrors::new(client);
        let writer = tokio::spawn(async move {
            wrapped.write_all(CANNED_400.as_bytes()).await.unwrap();
            wrapped.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(body_of(&received)["error"]["code"], "malformed_request");
    }
}
