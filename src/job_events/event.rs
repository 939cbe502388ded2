//! Job events made from job records, and the order of one job's events.
//!
//! An event reports a job record as it was stored, so its `version` (which every write of the
//! record bumps) orders a job's events whichever node wrote them, and whatever their clocks
//! say. Between two writes a converting job's progress is reported as that same record (same
//! version) with its `percent` done. So an event is news to a client that last saw
//! `(version, percent)` only if its version is higher, or it is the same version further on;
//! anything else is older than what the client has (or the same), and is not sent after it.

pub use crate::cluster::protocol::JobEvent;
use crate::storage::Job;

impl JobEvent {
    /// The record as stored (no progress known).
    pub fn of(job: &Job) -> JobEvent {
        JobEvent {
            job_id: job.id,
            version: job.version,
            state: job.state,
            percent: None,
            // As `GET /jobs/{id}` shows it: an MP3 only once the job is done.
            mp3_fid: job.mp3_if_done(),
            media_seconds: job.media_seconds,
            error: job.error.clone(),
        }
    }

    /// The converting record `job` with `fraction` (0 to 1) of its media time done.
    pub fn progress(job: &Job, fraction: f64) -> JobEvent {
        let percent = (fraction.clamp(0.0, 1.0) * 1000.0).round() / 10.0;
        JobEvent { percent: Some(percent), ..JobEvent::of(job) }
    }

    /// `done` or `failed`: the job's last event.
    pub fn is_final(&self) -> bool {
        self.state.is_finished()
    }
}

/// How far a client is in one job's events: the last event it was sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cursor {
    version: u64,
    percent: Option<f64>,
}

impl Cursor {
    /// At `event`, the first one sent.
    pub fn at(event: &JobEvent) -> Cursor {
        Cursor { version: event.version, percent: event.percent }
    }

    /// Whether `event` is news after the events sent so far; if so, the cursor moves to it.
    pub fn advance(&mut self, event: &JobEvent) -> bool {
        let news = match event.version.cmp(&self.version) {
            std::cmp::Ordering::Greater => true,
            // The same record: news only as progress further on (`None` is below any percent).
            std::cmp::Ordering::Equal => event.percent > self.percent,
            std::cmp::Ordering::Less => false,
        };
        if news {
            *self = Cursor::at(event);
        }
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::protocol::{decode, encode};
    use crate::ids::Id;
    use crate::storage::JobState;

    fn job(state: JobState, version: u64) -> Job {
        let mut job = Job::queued(Id::generate(), "a@b.c", Id::generate(), "clip.mp4", 1_000);
        job.state = state;
        job.version = version;
        job
    }

    #[test]
    fn an_event_crosses_the_wire_unchanged_and_tolerates_fields_it_does_not_know() {
        let mut done = job(JobState::Done, 4);
        (done.mp3_fid, done.media_seconds) = (Some(Id::generate()), Some(10.0));
        let event = JobEvent::of(&done);
        assert_eq!(decode::<JobEvent>(&encode(&event)).unwrap(), event);

        let mut json: serde_json::Value = serde_json::to_value(&event).unwrap();
        json["from_a_newer_node"] = serde_json::json!(true);
        json.as_object_mut().unwrap().remove("error");
        assert_eq!(decode::<JobEvent>(json.to_string().as_bytes()).unwrap(), event);
        assert!(decode::<JobEvent>(b"{\"job_id\":\"not an id\"}").is_err());
    }

    #[test]
    fn an_event_shows_the_mp3_only_when_done_and_progress_in_tenths_of_a_percent() {
        let mut converting = job(JobState::Converting, 2);
        converting.mp3_fid = Some(Id::generate());
        assert_eq!(JobEvent::of(&converting).mp3_fid, None);
        assert_eq!(JobEvent::progress(&converting, 0.12345).percent, Some(12.3));
        assert_eq!(JobEvent::progress(&converting, 1.5).percent, Some(100.0));
        assert!(!JobEvent::of(&converting).is_final());
        assert!(JobEvent::of(&job(JobState::Failed, 3)).is_final());
    }

    #[test]
    fn events_older_than_what_was_sent_are_not_sent_after_it() {
        let converting = job(JobState::Converting, 5);
        let mut cursor = Cursor::at(&JobEvent::of(&converting));
        assert!(!cursor.advance(&JobEvent::of(&job(JobState::Queued, 4))), "an older record");
        assert!(!cursor.advance(&JobEvent::of(&converting)), "the same record again");
        assert!(cursor.advance(&JobEvent::progress(&converting, 0.1)), "progress on the same record");
        assert!(!cursor.advance(&JobEvent::progress(&converting, 0.1)), "the same progress again");
        assert!(!cursor.advance(&JobEvent::progress(&converting, 0.05)), "progress reported earlier");
        assert!(cursor.advance(&JobEvent::progress(&converting, 0.2)));
        assert!(!cursor.advance(&JobEvent::of(&converting)), "the record without progress is behind it");
        let renewed = job(JobState::Converting, 6);
        assert!(cursor.advance(&JobEvent::progress(&renewed, 0.2)), "a newer record, even at the same percent");
        assert!(cursor.advance(&JobEvent::of(&job(JobState::Done, 7))));
        assert!(!cursor.advance(&JobEvent::progress(&renewed, 0.9)), "progress that arrives after the end");
    }
}
