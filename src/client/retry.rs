//! Riding out a server that is briefly away (restarting, or a gateway in front of it answering
//! 502, 503 or 504): an idempotent request is sent again after growing pauses (or as long as the
//! server's `Retry-After` asks), for up to [`RETRY_FOR`] in a row, saying so on the file's line.

use std::time::Duration;

use anyhow::Context;
use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

use super::progress::FileProgress;
use crate::backoff::Backoff;

/// How long a server may be away before the request fails.
const RETRY_FOR: Duration = Duration::from_secs(120);
/// The pauses between tries: 0.25 s doubling to 10 s, the longest whatever `Retry-After` says.
const PAUSES: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));

/// Sends `request` until it gets an answer that is not transient, or until [`RETRY_FOR`] has
/// passed; then returns the last answer (or error). Each retry is told on `progress`.
pub(super) async fn send(request: RequestBuilder, progress: &FileProgress) -> anyhow::Result<Response> {
    let deadline = Instant::now() + RETRY_FOR;
    let mut tries: u32 = 0;
    loop {
        tries = tries.saturating_add(1);
        let pause = PAUSES.wait(tries);
        let attempt = request.try_clone().context("a request with a streamed body cannot be sent again")?;
        let outcome = attempt.send().await;
        let (wait, why) = match &outcome {
            Ok(response) if transient(response.status()) => {
                (retry_after(response).unwrap_or(pause).max(PAUSES.first), response.status().to_string())
            }
            Err(error) if error.is_connect() || error.is_timeout() || error.is_request() => (pause, error.to_string()),
            _ => return Ok(outcome?),
        };
        if Instant::now() + wait > deadline {
            return outcome.context("the server stayed away");
        }
        progress.waiting(&format!("the server is away ({why}); trying again in {:.1}s", wait.as_secs_f64()));
        tokio::time::sleep(wait).await;
    }
}

/// Answers that a proxy or a restarting server gives for a while.
fn transient(status: StatusCode) -> bool {
    matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
}

/// The pause a `Retry-After: SECONDS` header asks for, at most the longest of [`PAUSES`].
fn retry_after(response: &Response) -> Option<Duration> {
    let seconds: u64 = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(PAUSES.cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_gateway_and_unavailable_answers_are_transient() {
        for status in [502, 503, 504] {
            assert!(transient(StatusCode::from_u16(status).unwrap()), "{status}");
        }
        for status in [200, 400, 401, 404, 500] {
            assert!(!transient(StatusCode::from_u16(status).unwrap()), "{status}");
        }
    }
}
