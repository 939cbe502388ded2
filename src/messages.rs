//! The messages carried by the persistent mailbox, as JSON.
//!
//! The fields are the legacy design's (`video_fid`, `mp3_fid`, `username`), so the legacy design's own
//! converter or notifier can read what we publish in a mixed deployment, plus `job_id` (the
//! job record it is about) and, on `failures`, `error`. Messages only point at job records:
//! what the actors do is decided from the record, never from what a message claims.
//!
//! We also read the legacy design's own messages: an upload from the legacy design's gateway on `video` (no
//! `job_id`), and a result from the legacy design's converter on `mp3` (no `job_id`).

use serde::{Deserialize, Serialize};

use crate::ids::Id;
use crate::storage::{Job, JobState, Queue};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub video_fid: Id,
    /// None on the `video` and `failures` queues; the MP3's id on the `mp3` queue.
    pub mp3_fid: Option<Id>,
    /// The owner's login, which is their email address.
    pub username: String,
    pub job_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobMessage {
    fn about(job: &Job) -> JobMessage {
        JobMessage { video_fid: job.video_fid, mp3_fid: None, username: job.owner.clone(), job_id: job.id, error: None }
    }

    /// The `video` message of a queued job: the legacy design's shape (`mp3_fid: null`) plus `job_id`.
    pub fn video(job: &Job) -> JobMessage {
        JobMessage::about(job)
    }

    /// The message that tells the notifier a job finished: on `mp3` (the legacy design's shape, for a
    /// done job) or on `failures` (with the reason). None while the job is unfinished.
    pub fn notice(job: &Job) -> Option<(Queue, JobMessage)> {
        match job.state {
            JobState::Done => Some((Queue::Mp3, JobMessage { mp3_fid: job.mp3_fid, ..JobMessage::about(job) })),
            JobState::Failed => {
                Some((Queue::Failures, JobMessage { error: job.error.clone(), ..JobMessage::about(job) }))
            }
            JobState::Queued | JobState::Converting => None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a JobMessage always serialises")
    }
}

/// An upload from the legacy design's own gateway: the legacy design's fields only.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LegacyUpload {
    pub video_fid: Id,
    pub username: String,
}

/// What the `video` queue may carry: our job message, or the legacy gateway's upload.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum VideoNotice {
    Ours(JobMessage),
    Legacy(LegacyUpload),
}

/// The legacy converter's result message on the `mp3` queue: the legacy design's fields only.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct LegacyResult {
    pub video_fid: Id,
    pub mp3_fid: Id,
    pub username: String,
}

/// What the `mp3` and `failures` queues may carry: our notice, or a legacy converter's result.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Mp3Notice {
    Ours(JobMessage),
    Legacy(LegacyResult),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job::queued(Id::generate(), "a@b.c", Id::generate(), "clip.mp4", 0)
    }

    #[test]
    fn the_video_message_carries_the_legacy_fields() {
        let job = job();
        let json: serde_json::Value = serde_json::from_slice(&JobMessage::video(&job).to_json()).unwrap();
        assert_eq!(json["video_fid"], job.video_fid.to_string());
        assert_eq!(json["mp3_fid"], serde_json::Value::Null);
        assert_eq!(json["username"], "a@b.c");
        assert_eq!(json["job_id"], job.id.to_string());
        assert!(json.get("error").is_none());
    }

    #[test]
    fn a_finished_job_is_announced_on_mp3_when_done_and_on_failures_when_failed() {
        let mut done = job();
        done.state = JobState::Done;
        done.mp3_fid = Some(Id::generate());
        let (queue, message) = JobMessage::notice(&done).unwrap();
        assert_eq!((queue, message.mp3_fid), (Queue::Mp3, done.mp3_fid));
        let failed = job().fail("no audio", 1);
        let (queue, message) = JobMessage::notice(&failed).unwrap();
        assert_eq!((queue, message.error.as_deref(), message.mp3_fid), (Queue::Failures, Some("no audio"), None));
        assert!(JobMessage::notice(&job()).is_none());
    }

    #[test]
    fn the_legacy_gateways_upload_and_converters_result_are_read() {
        let video = Id::generate();
        let upload = format!(r#"{{"video_fid": "{video}", "mp3_fid": null, "username": "a@b.c"}}"#);
        assert!(matches!(serde_json::from_str::<VideoNotice>(&upload).unwrap(), VideoNotice::Legacy(_)));
        let ours = JobMessage::video(&job());
        assert_eq!(serde_json::from_slice::<VideoNotice>(&ours.to_json()).unwrap(), VideoNotice::Ours(ours));
        let result = format!(r#"{{"video_fid": "{video}", "mp3_fid": "{}", "username": "a@b.c"}}"#, Id::generate());
        assert!(matches!(serde_json::from_str::<Mp3Notice>(&result).unwrap(), Mp3Notice::Legacy(_)));
        assert!(serde_json::from_str::<Mp3Notice>(r#"{"video_fid": "x"}"#).is_err());
        assert!(serde_json::from_str::<VideoNotice>("not json").is_err());
    }
}
