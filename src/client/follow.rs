//! Following one job to its end: its live events (`GET /jobs/{id}/events`, server-sent
//! events) when the server gives them, else polling `GET /jobs/{id}` (through a server that is
//! briefly away: [`retry`](super::retry)); each step shown on the file's progress bar.

use std::time::Duration;

use eventsource_stream::EventStream;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::ACCEPT;
use serde::Deserialize;

use super::progress::FileProgress;
use super::{ApiClient, CALL_TIMEOUT, ServerError, retry, success};

/// How often a job is read again when the server has no event stream.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What the client needs of a job event or a job record (they share these fields). The state
/// is the API's word for it, read as text: the client depends on the HTTP contract, not on the
/// server's types, and a state a newer server adds ends the following instead of failing it.
#[derive(Debug, Deserialize)]
pub(super) struct JobStatus {
    pub state: String,
    #[serde(default)]
    pub percent: Option<f64>,
    #[serde(default)]
    pub mp3_fid: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl JobStatus {
    /// `queued` and `converting` are the API's only unfinished states.
    pub fn is_finished(&self) -> bool {
        !matches!(self.state.as_str(), "queued" | "converting")
    }

    /// The MP3 of a `done` job.
    pub fn done_mp3(&self) -> Option<&str> {
        self.mp3_fid.as_deref().filter(|_| self.state == "done")
    }
}

impl ApiClient {
    /// Follows the job until it is `done` or `failed`, and returns that last status.
    pub(super) async fn follow(&self, job_id: &str, progress: &FileProgress) -> anyhow::Result<JobStatus> {
        match self.follow_events(job_id, progress).await? {
            Some(finished) => Ok(finished),
            None => self.poll(job_id, progress).await,
        }
    }

    /// The job's events until its last; None when the server gives no event stream (an older
    /// one, too many followers, away) or the stream ended early (the server stopping), so that
    /// polling takes over. Only a refused token is an error here (a job that is not the
    /// caller's fails at the first poll, with the server's reason).
    async fn follow_events(&self, job_id: &str, progress: &FileProgress) -> anyhow::Result<Option<JobStatus>> {
        let request = self.get(&format!("/jobs/{job_id}/events"))?.header(ACCEPT, "text/event-stream");
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(job_id, %error, "no event stream: polling");
                return Ok(None);
            }
        };
        match response.status() {
            status if status.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(ServerError::read(response).await.into()),
            status => {
                tracing::debug!(job_id, %status, "no event stream: polling");
                return Ok(None);
            }
        }
        let mut events = EventStream::new(response.bytes_stream());
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::debug!(job_id, %error, "the event stream broke: polling");
                    return Ok(None);
                }
            };
            let status: JobStatus = serde_json::from_str(&event.data)?;
            show(progress, &status);
            if status.is_finished() {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    async fn poll(&self, job_id: &str, progress: &FileProgress) -> anyhow::Result<JobStatus> {
        loop {
            let response = retry::send(self.get(&format!("/jobs/{job_id}"))?.timeout(CALL_TIMEOUT), progress).await?;
            let status: JobStatus = success(response).await?.json().await?;
            show(progress, &status);
            if status.is_finished() {
                return Ok(status);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

fn show(progress: &FileProgress, status: &JobStatus) {
    if !status.is_finished() {
        progress.converting(&status.state, status.percent);
    }
}
