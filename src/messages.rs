//! The messages carried by the persistent mailbox, as JSON.
//!
//! The fields are the seed design's (`video_fid`, `mp3_fid`, `username`), so the seed's own
//! converter or notifier can read what we publish in a mixed deployment, plus `job_id` (the
//! job record to update) and `error` (set when a conversion failed, for the failure email).

use serde::{Deserialize, Serialize};

use crate::ids::Id;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub video_fid: Id,
    /// None on the `video` queue; the MP3's id on the `mp3` queue once converted.
    pub mp3_fid: Option<Id>,
    /// The owner's login, which is their email address.
    pub username: String,
    pub job_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The seed converter's result message on the `mp3` queue: the seed's fields only. A seed
/// converter running beside ours (a deployment moving over one service at a time) sends these.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct SeedResult {
    pub video_fid: Id,
    pub mp3_fid: Id,
    pub username: String,
}

/// What the `mp3` queue may carry: our own result message, or a seed converter's.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Mp3Notice {
    Ours(JobMessage),
    Seed(SeedResult),
}

impl JobMessage {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a JobMessage always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_the_seed_fields_and_reads_a_message_without_error() {
        let message = JobMessage {
            video_fid: Id::generate(),
            mp3_fid: None,
            username: "a@b.c".into(),
            job_id: Id::generate(),
            error: None,
        };
        let json: serde_json::Value = serde_json::from_slice(&message.to_json()).unwrap();
        assert_eq!(json["video_fid"], message.video_fid.to_string());
        assert_eq!(json["mp3_fid"], serde_json::Value::Null);
        assert_eq!(json["username"], "a@b.c");
        assert!(json.get("error").is_none());
        let back: JobMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, message);
    }

    #[test]
    fn the_mp3_queue_takes_ours_and_the_seed_converters_messages() {
        let ours = JobMessage {
            video_fid: Id::generate(),
            mp3_fid: Some(Id::generate()),
            username: "a@b.c".into(),
            job_id: Id::generate(),
            error: None,
        };
        let parsed: Mp3Notice = serde_json::from_slice(&ours.to_json()).unwrap();
        assert_eq!(parsed, Mp3Notice::Ours(ours.clone()));
        let seed =
            format!(r#"{{"video_fid": "{}", "mp3_fid": "{}", "username": "a@b.c"}}"#, ours.video_fid, Id::generate());
        assert!(matches!(serde_json::from_str::<Mp3Notice>(&seed).unwrap(), Mp3Notice::Seed(_)));
        assert!(serde_json::from_str::<Mp3Notice>(r#"{"video_fid": "x"}"#).is_err());
    }
}
