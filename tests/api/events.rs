//! `GET /jobs/{id}/events`: a job's live events as server-sent events, from its current state
//! to `done` or `failed`.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{backend_flags, strs, with};
use crate::helpers::{TestApp, eventually, fixture};

/// Conversions held for 3 s (test hook), so that progress is reported while they run.
const SLOW: [&str; 4] = ["--fault-hooks", "true", "--fault-convert-delay-ms", "3000"];
/// Longest wait for the next event (or the end) of a stream.
const EVENT_WAIT: Duration = Duration::from_secs(30);

/// One server-sent event: its name and its JSON.
#[derive(Debug)]
pub struct Sse {
    pub name: String,
    pub data: Value,
}

/// A client reading `/jobs/{id}/events`.
pub struct EventStream {
    response: reqwest::Response,
    /// Text received but not yet parsed into events.
    pending: String,
}

impl EventStream {
    pub async fn open(app: &TestApp, token: &str, job_id: &str) -> EventStream {
        let response = events_request(app, token, job_id).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["cache-control"], "no-cache");
        EventStream { response, pending: String::new() }
    }

    /// The next event (comments skipped), or None once the stream ended cleanly; fails on a
    /// broken stream and after [`EVENT_WAIT`].
    async fn next(&mut self) -> Option<Sse> {
        let deadline = Instant::now() + EVENT_WAIT;
        loop {
            if let Some((block, rest)) = self.pending.split_once("\n\n") {
                let block = block.to_owned();
                self.pending = rest.to_owned();
                match parse_event(&block) {
                    Some(event) => return Some(event),
                    None => continue,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("the next event within the wait")
                .expect("the stream ends cleanly");
            match chunk {
                Some(bytes) => self.pending.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => {
                    assert!(self.pending.trim().is_empty(), "a partial event at the end: {:?}", self.pending);
                    return None;
                }
            }
        }
    }

    /// Every event up to the end of the stream.
    pub async fn rest(&mut self) -> Vec<Sse> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

async fn events_request(app: &TestApp, token: &str, job_id: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/jobs/{job_id}/events"))).bearer_auth(token).send().await.unwrap()
}

/// An event block's name and data; None for a comment (a keep-alive).
fn parse_event(block: &str) -> Option<Sse> {
    let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::to_owned);
    let name = field("event: ")?;
    let data = serde_json::from_str(&field("data: ").expect("an event has data")).unwrap();
    Some(Sse { name, data })
}

/// Asserts what every stream keeps: each event named after its state, about this job, in
/// record order, with a percent only while converting.
fn assert_well_formed(events: &[Sse], job_id: &str) {
    let mut last: Option<(u64, f64)> = None;
    for event in events {
        assert_eq!(event.data["state"], event.name.as_str(), "{event:?}");
        assert_eq!(event.data["job_id"], job_id, "{event:?}");
        let version = event.data["version"].as_u64().unwrap();
        let percent = event.data["percent"].as_f64().unwrap_or(-1.0);
        assert!(last.is_none_or(|last| (version, percent) > last), "{event:?} after {last:?}");
        if event.name != "converting" {
            assert!(event.data["percent"].is_null(), "{event:?}");
        }
        last = Some((version, percent));
    }
}

/// Follows one job from its upload to `done`, checking everything a follower sees; then a
/// late follower, another user, and the subscriber gauge.
async fn assert_followed_to_done(app: &TestApp, token: &str) {
    let job_id = app.submit(token, &fixture("clip.mp4")).await;
    let mut stream = EventStream::open(app, token, &job_id).await;
    let first = stream.next().await.unwrap();
    assert!(matches!(first.name.as_str(), "queued" | "converting"), "starts with the current state: {first:?}");
    assert!(first.data["percent"].is_null(), "the state as stored, without progress: {first:?}");
    assert_eq!(app.metric("mp3c_job_event_subscribers").await, 1.0);
    let rest = stream.rest().await;
    let events: Vec<Sse> = std::iter::once(first).chain(rest).collect();
    assert_well_formed(&events, &job_id);

    let progress: Vec<f64> = events.iter().filter_map(|event| event.data["percent"].as_f64()).collect();
    assert!(!progress.is_empty(), "a converting event with a percent: {events:?}");
    assert!(progress.iter().all(|percent| (0.0..=100.0).contains(percent)), "{progress:?}");
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "ends after done: {events:?}");
    let job = app.job(token, &job_id).await;
    assert_eq!(done.data["mp3_fid"], job["mp3_fid"]);
    assert!(done.data["mp3_fid"].is_string());
    assert!(done.data["media_seconds"].as_f64().unwrap() > 9.0, "{done:?}");

    // A late follower: the current state, which is final, and the end.
    let late = EventStream::open(app, token, &job_id).await.rest().await;
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!((late[0].name.as_str(), &late[0].data["mp3_fid"]), ("done", &job["mp3_fid"]));

    // Nobody follows any more.
    eventually(Duration::from_secs(10), "no subscriber left", || async {
        (app.metric("mp3c_job_event_subscribers").await == 0.0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_follower_sees_the_current_state_then_progress_then_done_with_the_mp3() {
    let app = TestApp::spawn_with(&SLOW).await;
    let token = app.user_token("follower@example.com", false).await;
    assert_followed_to_done(&app, &token).await;
    let route = "mp3c_http_requests_total{route=\"/jobs/{id}/events\",status=\"200\"";
    assert_eq!(app.metric(route).await, 2.0);
}

#[tokio::test]
async fn the_percent_grows_with_the_media_time_converted() {
    let app = TestApp::spawn().await;
    let token = app.user_token("patient@example.com", false).await;
    let job_id = app.submit(&token, &fixture("eight-minutes-audio.mp4")).await;
    let events = EventStream::open(&app, &token, &job_id).await.rest().await;
    assert_well_formed(&events, &job_id);
    assert_eq!(events.last().unwrap().name, "done", "{events:?}");
    let progress: Vec<f64> = events.iter().filter_map(|event| event.data["percent"].as_f64()).collect();
    assert!(progress.iter().any(|percent| *percent > 0.0 && *percent < 100.0), "progress on the way: {progress:?}");
}

#[tokio::test]
async fn only_the_owner_and_admins_follow_a_job() {
    let app = TestApp::spawn().await;
    let owner = app.user_token("owner@example.com", false).await;
    let stranger = app.user_token("stranger@example.com", false).await;
    let admin = app.user_token("admin@example.com", true).await;
    let job_id = app.submit(&owner, &fixture("clip.mp4")).await;
    app.finished_job(&owner, &job_id).await;

    let response = events_request(&app, &stranger, &job_id).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    assert_eq!(events_request(&app, &owner, "0123456789abcdef01234567").await.status(), 404);
    assert_eq!(events_request(&app, &owner, "not-an-id").await.status(), 400);
    let anonymous = app.client.get(app.url(&format!("/jobs/{job_id}/events"))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let seen = EventStream::open(&app, &admin, &job_id).await.rest().await;
    assert_eq!(seen.iter().map(|event| event.name.as_str()).collect::<Vec<_>>(), ["done"]);
    assert_eq!(app.metric("mp3c_job_event_subscribers").await, 0.0, "refused requests hold nothing");
}

#[tokio::test]
async fn a_failed_job_ends_its_stream_with_failed_and_the_reason() {
    let app = TestApp::spawn_with(&SLOW).await;
    let token = app.user_token("failing@example.com", false).await;
    let response = app.upload_bytes(&token, "notes.txt", b"not a video".to_vec()).await;
    let job_id = response.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    let mut stream = EventStream::open(&app, &token, &job_id).await;
    let first = stream.next().await.unwrap();
    assert!(!first.data["state"].as_str().unwrap().is_empty());
    let events: Vec<Sse> = std::iter::once(first).chain(stream.rest().await).collect();
    assert_well_formed(&events, &job_id);
    assert!(events.len() >= 2, "the failure arrived live, after the first state: {events:?}");
    let failed = events.last().unwrap();
    assert_eq!(failed.name, "failed", "{events:?}");
    let job = app.job(&token, &job_id).await;
    assert_eq!(failed.data["error"], job["error"]);
    assert!(failed.data["error"].as_str().unwrap().contains("not a readable media file"), "{failed:?}");
}

#[tokio::test]
async fn a_job_given_back_to_the_queue_is_followed_through_every_attempt() {
    // Each attempt outlasts its time limit: given back counted, taken again, then failed.
    let limits = ["--conversion-timeout-seconds", "1", "--max-attempts", "2"];
    let app = TestApp::spawn_with(&[&SLOW[..], &limits[..]].concat()).await;
    let token = app.user_token("timed-out@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    let events = EventStream::open(&app, &token, &job_id).await.rest().await;
    assert_well_formed(&events, &job_id);
    let states: Vec<&str> = events.iter().map(|event| event.name.as_str()).collect();
    let mut changes = states.clone();
    changes.dedup();
    assert!(changes.ends_with(&["converting", "queued", "converting", "failed"]), "{states:?}");
    let queued = events.iter().rfind(|event| event.name == "queued").unwrap();
    assert!(queued.data["error"].as_str().unwrap().contains("time limit"), "why it was given back: {queued:?}");
    let failed = events.last().unwrap();
    assert!(failed.data["error"].as_str().unwrap().contains("attempt 2 of 2"), "{failed:?}");
}

#[tokio::test]
async fn a_stream_ends_cleanly_at_shutdown_and_a_restarted_gateway_starts_with_the_current_state() {
    let grace = ["--shutdown-grace-seconds", "1"];
    let mut app =
        TestApp::spawn_with(&[&SLOW[..2], &["--fault-convert-delay-ms", "120000"], &grace[..]].concat()).await;
    let token = app.user_token("restarted@example.com", false).await;
    let job_id = app.submit(&token, &fixture("clip.mp4")).await;
    app.wait_for_state(&token, &job_id, "converting").await;
    let mut stream = EventStream::open(&app, &token, &job_id).await;
    assert_eq!(stream.next().await.unwrap().name, "converting");

    crate::servers::send_sigterm(app.pid());
    let before_exit = stream.rest().await;
    assert!(before_exit.iter().all(|event| event.name == "converting"), "{before_exit:?}");
    assert!(app.exit_status(Duration::from_secs(30)).await.success(), "a clean stop exits 0");

    // Released at shutdown; the restarted node converts it at once.
    app.restart_with(&SLOW);
    let mut stream = EventStream::open(&app, &token, &job_id).await;
    let first = stream.next().await.unwrap();
    assert!(matches!(first.name.as_str(), "queued" | "converting"), "{first:?}");
    let events: Vec<Sse> = std::iter::once(first).chain(stream.rest().await).collect();
    assert_well_formed(&events, &job_id);
    assert_eq!(events.last().unwrap().name, "done", "{events:?}");
}

#[tokio::test]
async fn a_follower_sees_a_job_to_done_in_the_cluster_profile() {
    let flags = with(&backend_flags().await, &SLOW);
    let app = TestApp::spawn_with(&strs(&flags)).await;
    let token = app.user_token("cluster-follower@example.com", false).await;
    assert_followed_to_done(&app, &token).await;
}
