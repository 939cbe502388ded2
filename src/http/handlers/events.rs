//! `GET /jobs/{job_id}/events`: a job's live events as server-sent events
//! (`text/event-stream`), for its owner (or an admin), as `GET /jobs/{job_id}`.
//!
//! The stream starts with the job's current state, read from the job store, then sends each of
//! the job's events as this node's hub receives them ([`crate::job_events`]), and ends after
//! `done` or `failed` (a job already finished: that one event, then the end). It subscribes
//! before it reads the state, so that nothing in between is missed, and never sends an event
//! older than one it sent ([`Cursor`]). Every [`KEEP_ALIVE`] it sends a comment, so that
//! proxies keep an idle stream open, and reads the record again: that catches up on events lost
//! on the way (a hub restarting, a peer lost, a client that fell behind) and ends the stream of
//! a job deleted meanwhile. It ends when the server stops (node shutdown, or its gateway
//! stopping), so that draining the server never waits for it.
//!
//! Each event is `event: <state>` and `data: <the event as JSON>` ([`JobEvent`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Request, StatusCode};
use tokio::time::Interval;
use tokio_util::sync::CancellationToken;

use super::jobs::{caller_and_job_id, visible};
use crate::http::client_address::ClientAddress;
use crate::http::error::ApiError;
use crate::http::limits::StreamSlot;
use crate::http::response::Response;
use crate::http::{Gateway, ServerStop};
use crate::ids::Id;
use crate::job_events::{Cursor, JobEvent, Received, Subscription};
use crate::storage::JobStore;

/// How often an open stream sends a comment and reads the job record again.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
const KEEP_ALIVE_COMMENT: &str = ": keep-alive\n\n";

pub async fn follow(
    gateway: &Gateway,
    jobs: &Arc<dyn JobStore>,
    request: Request<Incoming>,
) -> Result<Response, ApiError> {
    let (claims, job_id) = caller_and_job_id(&gateway.identity, &request).await?;
    let ServerStop(stop) =
        request.extensions().get::<ServerStop>().cloned().ok_or_else(|| ApiError::internal("no server stop signal"))?;
    let ClientAddress(client) =
        *request.extensions().get::<ClientAddress>().ok_or_else(|| ApiError::internal("no client address"))?;
    let slot = gateway.limits.streams.take(&claims.username, client)?;
    let subscription = gateway.subscribers.subscribe(job_id).map_err(|full| ApiError::busy(full.to_string()))?;
    let job = visible(jobs.get(job_id).await?, &claims)?;
    let first = JobEvent::of(&job);
    let keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    let follower = Follower {
        job_id,
        subscription,
        jobs: jobs.clone(),
        stop,
        cursor: Cursor::at(&first),
        keep_alive,
        first: Some(first),
        ended: false,
        _slot: slot,
    };
    Ok(event_stream(follower.chunks()))
}

/// One client's stream of one job.
struct Follower {
    job_id: Id,
    subscription: Subscription,
    /// Where the record is read again on every keep-alive and after missed events.
    jobs: Arc<dyn JobStore>,
    /// The server's: the stream ends when it is cancelled.
    stop: CancellationToken,
    /// The last event sent.
    cursor: Cursor,
    keep_alive: Interval,
    /// The current state, to send before anything else.
    first: Option<JobEvent>,
    /// Set once the final event is sent.
    ended: bool,
    /// The stream's place under its user's and client's caps, freed when it ends.
    _slot: StreamSlot,
}

/// What the follower woke up for.
enum Wakeup {
    Stop,
    Received(Received),
    KeepAlive,
}

/// What the follower learnt about the job.
enum Update {
    Event(JobEvent),
    /// It was deleted: the stream ends.
    Gone,
    /// Nothing: the store did not answer (the next keep-alive reads it again).
    Unknown,
}

impl Follower {
    fn chunks(self) -> impl Stream<Item = Bytes> + Send + 'static {
        futures_util::stream::unfold(self, |mut follower| async move {
            let chunk = follower.next_chunk().await?;
            Some((chunk, follower))
        })
    }

    /// The next bytes to send, or None to end the stream.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(self.send(None, Some(first)));
        }
        loop {
            if self.ended {
                return None;
            }
            let (comment, update) = match self.wake().await {
                Wakeup::Stop => return None,
                Wakeup::Received(Received::Event(event)) => (None, Update::Event((*event).clone())),
                Wakeup::Received(Received::Missed) => (None, self.read_record().await),
                Wakeup::KeepAlive => (Some(KEEP_ALIVE_COMMENT), self.read_record().await),
            };
            let event = match update {
                Update::Event(event) => Some(event).filter(|event| self.cursor.advance(event)),
                Update::Unknown => None,
                Update::Gone => return None,
            };
            let chunk = self.send(comment, event);
            if !chunk.is_empty() {
                return Some(chunk);
            }
        }
    }

    async fn wake(&mut self) -> Wakeup {
        tokio::select! {
            () = self.stop.cancelled() => Wakeup::Stop,
            received = self.subscription.recv() => Wakeup::Received(received),
            _ = self.keep_alive.tick() => Wakeup::KeepAlive,
        }
    }

    /// The job record, read again.
    async fn read_record(&self) -> Update {
        match self.jobs.get(self.job_id).await {
            Ok(Some(job)) => Update::Event(JobEvent::of(&job)),
            Ok(None) => Update::Gone,
            Err(error) => {
                tracing::debug!(job_id = %self.job_id, %error, "could not read a followed job again");
                Update::Unknown
            }
        }
    }

    /// The bytes for a comment and an event (either may be absent), noting a final event.
    fn send(&mut self, comment: Option<&str>, event: Option<JobEvent>) -> Bytes {
        let mut chunk = comment.unwrap_or_default().to_owned();
        if let Some(event) = event {
            self.ended = event.is_final();
            chunk.push_str(&sse_event(&event));
        }
        Bytes::from(chunk)
    }
}

/// One event in the `text/event-stream` format (its JSON has no line breaks).
fn sse_event(event: &JobEvent) -> String {
    let data = serde_json::to_string(event).expect("an event always serialises");
    format!("event: {}\ndata: {data}\n\n", event.state.as_str())
}

fn event_stream(chunks: impl Stream<Item = Bytes> + Send + 'static) -> Response {
    let frames = chunks.map(|chunk| Ok::<_, std::io::Error>(Frame::data(chunk)));
    let mut response = hyper::Response::new(StreamBody::new(frames).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Job, JobState};

    #[test]
    fn an_event_is_one_named_sse_event_with_its_json_on_one_line() {
        let mut job = Job::queued(Id::generate(), "a@b.c", Id::generate(), "clip\nwith a break.mp4", 1);
        (job.state, job.error) = (JobState::Failed, Some("line one\nline two".into()));
        let text = sse_event(&JobEvent::of(&job));
        let (head, data) = text.split_once('\n').unwrap();
        assert_eq!(head, "event: failed");
        let json = data.strip_prefix("data: ").unwrap().strip_suffix("\n\n").unwrap();
        assert!(!json.contains('\n'));
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(parsed["error"], "line one\nline two");
        assert_eq!(parsed["job_id"], job.id.to_string());
    }
}
