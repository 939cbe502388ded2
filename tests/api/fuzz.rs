//! Fuzzing the whole service: a few hundred mutated media files, made at test time from small
//! generated files in nine containers by a seeded generator (reproducible: the seed is printed,
//! and `MP3C_FUZZ_SEED` sets it), go through one real node. Each upload is accepted (202) or
//! refused with a 4xx and a JSON error, never a 5xx; every job ends `done` or `failed` with a
//! reason, and never a minute passes without one ending; the node keeps its PID, answers, still
//! converts a clean file, and leaves no zombie worker behind.
//!
//! A file that breaks a rule is saved, with what was done to it, under `fuzz-findings/` in
//! `CARGO_TARGET_TMPDIR`, so that it can be replayed without the generator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;

use crate::helpers::{TestApp, eventually, service_log, zombie_children};
use crate::tools;

/// The seed used unless `MP3C_FUZZ_SEED` gives another (decimal, or hex after `0x`).
const DEFAULT_SEED: u64 = 0x6d70_3363_667a_7a31;
/// Mutated files made from each seed file.
const FILES_PER_SEED: usize = 27;
/// Uploads in flight at once: the node's default cap per user.
const UPLOAD_CONCURRENCY: usize = 4;
/// The longest the node may go without finishing a job while some are unfinished.
const MAX_QUIET: Duration = Duration::from_secs(60);
/// The longest the jobs may take to finish, all together, after the last upload.
const MAX_TOTAL: Duration = Duration::from_secs(15 * 60);
/// The largest chunk a mutation repeats, splices or zeroes.
const MAX_CHUNK: usize = 4096;

// ---------------------------------------------------------------------------------------------
// The seed files

/// The seed files, one per container: two seconds of a tone at the given sample rate, under
/// a small test pattern (`true`) or alone, and the ffmpeg output options that make each.
const SEEDS: [(&str, bool, u32, &str); 9] = [
    ("seed.mp4", true, 22050, "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -b:a 48k -f mp4"),
    ("seed.mkv", true, 22050, "-c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a libvorbis -f matroska"),
    ("seed.webm", true, 16000, "-c:v libvpx -deadline realtime -b:v 100k -c:a libopus -b:a 24k -f webm"),
    ("seed.avi", true, 22050, "-c:v mpeg4 -q:v 10 -c:a libmp3lame -b:a 32k -f avi"),
    ("seed.ts", true, 22050, "-c:v mpeg2video -q:v 10 -c:a mp2 -b:a 64k -f mpegts"),
    ("seed.ogg", false, 22050, "-c:a libvorbis -q:a 0 -f ogg"),
    ("seed.wav", false, 8000, "-c:a pcm_s16le -f wav"),
    ("seed.flac", false, 16000, "-c:a flac -f flac"),
    ("seed.mp3", false, 22050, "-c:a libmp3lame -b:a 32k -f mp3"),
];

/// Output options that make the same bytes on every run with the same FFmpeg.
const BITEXACT: &str = "-threads 1 -fflags +bitexact -flags +bitexact -map_metadata -1";

/// Makes a seed file in `dir` with the ffmpeg CLI ([`BITEXACT`]), and returns its bytes.
fn make_seed(dir: &Path, (name, video, rate, options): (&str, bool, u32, &str)) -> Vec<u8> {
    let path = dir.join(name);
    let mut command = tools::ffmpeg();
    if video {
        command.args(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2"]);
    }
    command.args(["-f", "lavfi", "-i", &format!("sine=frequency=440:sample_rate={rate}:duration=2")]);
    command.args(options.split(' ')).args(BITEXACT.split(' '));
    tools::run(command.arg(&path));
    std::fs::read(path).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The mutations

/// SplitMix64: a small, well-mixed generator, the same numbers from the same seed everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }
}

/// The run's seed: `MP3C_FUZZ_SEED` (decimal, or hex after `0x`), else [`DEFAULT_SEED`].
fn run_seed() -> u64 {
    let Ok(text) = std::env::var("MP3C_FUZZ_SEED") else { return DEFAULT_SEED };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("MP3C_FUZZ_SEED={text:?} is not a number"))
}

/// A position in `bytes` to change: half the time in its first KiB, where the headers are.
fn position(rng: &mut SplitMix64, len: usize) -> usize {
    if rng.below(2) == 0 { rng.below(len.min(1024)) } else { rng.below(len) }
}

/// A range of `bytes` (non-empty) of at most [`MAX_CHUNK`] bytes.
fn chunk(rng: &mut SplitMix64, len: usize) -> std::ops::Range<usize> {
    let start = position(rng, len);
    start..start + rng.between(1, (len - start).min(MAX_CHUNK))
}

/// Applies one random mutation to `bytes` (`donor`, another seed file, may give it a chunk),
/// and says what it did.
fn mutate(bytes: &mut Vec<u8>, donor: (&str, &[u8]), rng: &mut SplitMix64) -> String {
    if bytes.is_empty() {
        return "nothing (empty)".to_owned();
    }
    let len = bytes.len();
    match rng.below(5) {
        0 => {
            let count = rng.between(1, 64);
            for _ in 0..count {
                let at = position(rng, len);
                bytes[at] = rng.next() as u8;
            }
            format!("overwrite {count} bytes")
        }
        1 => {
            let at = rng.below(len);
            bytes.truncate(at);
            format!("truncate at {at} of {len}")
        }
        2 => {
            let range = chunk(rng, len);
            let times = rng.between(1, 8);
            let repeated = bytes[range.clone()].repeat(times);
            bytes.splice(range.end..range.end, repeated);
            format!("repeat {range:?} {times} more times")
        }
        3 => {
            let (name, donor) = donor;
            let from = chunk(rng, donor.len());
            let at = rng.below(len + 1);
            bytes.splice(at..at, donor[from.clone()].iter().copied());
            format!("splice {name} {from:?} in at {at}")
        }
        _ => {
            let range = chunk(rng, len);
            bytes[range.clone()].fill(0);
            format!("zero {range:?}")
        }
    }
}

/// One file to upload: made from a seed file by some mutations (none for the controls).
struct Case {
    index: usize,
    /// A seed file unchanged, which must convert.
    control: bool,
    filename: String,
    /// What was done to the seed file.
    how: String,
    bytes: Vec<u8>,
}

/// The seed files unchanged (controls: each must convert), then [`FILES_PER_SEED`] mutants of
/// each, with one to three mutations. Case `i` draws from its own generator, seeded from the
/// run's seed and `i`, so that it does not depend on the others.
fn cases(seeds: &[(&str, Vec<u8>)], seed: u64) -> Vec<Case> {
    let mut cases: Vec<Case> = seeds
        .iter()
        .enumerate()
        .map(|(index, (name, bytes))| Case {
            index,
            control: true,
            filename: format!("control-{name}"),
            how: format!("{name} unchanged"),
            bytes: bytes.clone(),
        })
        .collect();
    for index in seeds.len()..seeds.len() * (FILES_PER_SEED + 1) {
        let mut rng = SplitMix64(seed ^ (index as u64).wrapping_mul(0xa076_1d64_78bd_642f));
        let (name, original) = &seeds[index % seeds.len()];
        let donor = &seeds[(index % seeds.len() + rng.between(1, seeds.len() - 1)) % seeds.len()];
        let mut bytes = original.clone();
        let steps: Vec<String> =
            (0..rng.between(1, 3)).map(|_| mutate(&mut bytes, (donor.0, &donor.1), &mut rng)).collect();
        let filename = format!("fuzz-{index:03}-{}", name.trim_start_matches("seed."));
        cases.push(Case { index, control: false, filename, how: format!("{name}: {}", steps.join("; ")), bytes });
    }
    cases
}

/// Keeps a case that broke a rule, with what was done to it and why it is kept; returns where.
fn save_finding(seed: u64, case: &Case, why: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{seed:#018x}-{}", case.filename));
    std::fs::write(&path, &case.bytes).unwrap();
    let note = format!("seed {seed:#018x}, case {}: {}\n{why}\n", case.index, case.how);
    std::fs::write(path.with_extension("txt"), note).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Talking to the node

/// What the node answered to an upload.
enum Upload {
    /// 202, with the job's id.
    Accepted(String),
    /// A 4xx, with its JSON error code.
    Refused(u16, String),
    /// Anything else: a 5xx, a 4xx without a JSON error, no answer at all.
    Broken(String),
}

async fn upload(app: &TestApp, token: &str, case: &Case) -> Upload {
    let part = reqwest::multipart::Part::bytes(case.bytes.clone()).file_name(case.filename.clone());
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = match app.client.post(app.url("/upload")).bearer_auth(token).multipart(form).send().await {
        Ok(response) => response,
        Err(error) => return Upload::Broken(format!("no answer: {error}")),
    };
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let json: Value = serde_json::from_str(&body).unwrap_or_default();
    match (status, json["job_id"].as_str(), json["error"]["code"].as_str()) {
        (202, Some(job_id), _) => Upload::Accepted(job_id.to_owned()),
        (400..=499, _, Some(code)) if !code.is_empty() => Upload::Refused(status, code.to_owned()),
        _ => Upload::Broken(format!("{status} {body}")),
    }
}

/// Every job of the token's user, by id, through every page of `GET /jobs`.
async fn all_jobs(app: &TestApp, token: &str) -> BTreeMap<String, Value> {
    let mut jobs = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/jobs?limit=100&cursor={cursor}"),
            None => "/jobs?limit=100".to_owned(),
        };
        let page = app.get_json(token, &path).await;
        for job in page["jobs"].as_array().expect("a page of jobs") {
            jobs.insert(job["job_id"].as_str().unwrap().to_owned(), job.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return jobs,
        }
    }
}

fn finished(job: &Value) -> bool {
    matches!(job["state"].as_str(), Some("done" | "failed"))
}

/// Polls the jobs until every one in `expected` is finished and returns them; panics when
/// [`MAX_QUIET`] passes without a job finishing, or [`MAX_TOTAL`] in all ([`report_stuck`]).
async fn wait_for_every_job(
    app: &TestApp,
    token: &str,
    expected: &BTreeMap<String, &Case>,
    seed: u64,
) -> BTreeMap<String, Value> {
    let started = Instant::now();
    let (mut done_before, mut progress_at) = (0, Instant::now());
    loop {
        let jobs = all_jobs(app, token).await;
        let unfinished: Vec<&str> =
            expected.keys().filter(|id| !jobs.get(id.as_str()).is_some_and(finished)).map(String::as_str).collect();
        if unfinished.is_empty() {
            return jobs;
        }
        let done_now = expected.len() - unfinished.len();
        if done_now > done_before {
            (done_before, progress_at) = (done_now, Instant::now());
        }
        if progress_at.elapsed() > MAX_QUIET || started.elapsed() > MAX_TOTAL {
            let stuck: BTreeMap<&str, (&Case, Value)> = unfinished
                .iter()
                .map(|id| (*id, (expected[*id], jobs.get(*id).cloned().unwrap_or_default())))
                .collect();
            report_stuck(app, seed, &stuck, progress_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Panics naming the jobs that did not end: those a converter took (the files that hold it,
/// saved as findings), or every one when none was taken; the others are only counted.
fn report_stuck(app: &TestApp, seed: u64, stuck: &BTreeMap<&str, (&Case, Value)>, quiet: Duration) -> ! {
    let taken = |job: &Value| job["state"] != "queued" || job["attempts"].as_u64().unwrap_or(0) > 0;
    let any_taken = stuck.values().any(|(_, job)| taken(job));
    let mut waiting = 0;
    let mut suspects = Vec::new();
    for (id, (case, job)) in stuck {
        if any_taken && !taken(job) {
            waiting += 1;
            continue;
        }
        let saved = save_finding(seed, case, &format!("job {id} did not end: {job}"));
        suspects.push(format!("{} ({}): {job}\n  saved as {}", case.filename, case.how, saved.display()));
    }
    panic!(
        "{} job(s) did not end (the last job to end did {quiet:?} ago), {waiting} of them never started; \
         the others:\n{}\nthe end of the log:\n{}",
        stuck.len(),
        suspects.join("\n"),
        log_tail(app, 60)
    );
}

/// The last `lines` lines of the node's log.
fn log_tail(app: &TestApp, lines: usize) -> String {
    let log = service_log(&app.data_dir);
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The start time of process `pid` (in clock ticks since boot) while it runs; `None` once it
/// has exited, even unreaped.
fn running_since(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name: state, ppid, ..., starttime (the 20th field after the name).
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// A job's error without its detail (after a colon or in brackets): its kind of failure.
fn reason_kind(error: &str) -> String {
    let head = error.split([':', '(']).next().unwrap_or_default();
    head.split_whitespace().take(8).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// The test

#[tokio::test]
async fn mutated_media_in_every_container_ends_every_job_and_keeps_the_node_up() {
    let _heavy = crate::helpers::HEAVY.lock().await;
    let seed = run_seed();
    println!("fuzz seed {seed:#018x} (rerun with MP3C_FUZZ_SEED={seed:#018x})");
    let dir = tempfile::tempdir().unwrap();
    let seeds: Vec<(&str, Vec<u8>)> = SEEDS.iter().map(|seed| (seed.0, make_seed(dir.path(), *seed))).collect();
    let cases = cases(&seeds, seed);

    let args = ["--max-media-seconds", "600", "--conversion-timeout-seconds", "20", "--max-jobs-per-user", "1000"];
    let app = TestApp::spawn_with(&args).await;
    let (pid, since) = (app.pid(), running_since(app.pid()).expect("the node runs"));
    let token = app.user_token("fuzz@example.com", false).await;

    let started = Instant::now();
    let (app, token_ref) = (&app, token.as_str());
    let answers: Vec<(&Case, Upload)> = futures_util::stream::iter(&cases)
        .map(|case| async move { (case, upload(app, token_ref, case).await) })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .collect()
        .await;
    let uploaded_in = started.elapsed();

    let mut problems = Vec::new();
    let mut upload_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut accepted: BTreeMap<String, &Case> = BTreeMap::new();
    for (case, answer) in answers {
        match answer {
            Upload::Accepted(job_id) => {
                *upload_counts.entry("202".to_owned()).or_default() += 1;
                accepted.insert(job_id, case);
            }
            Upload::Refused(status, code) => *upload_counts.entry(format!("{status} {code}")).or_default() += 1,
            Upload::Broken(what) => {
                let saved = save_finding(seed, case, &format!("upload answered {what}"));
                problems.push(format!(
                    "{} ({}): upload answered {what} -> {}",
                    case.filename,
                    case.how,
                    saved.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "uploads the node mishandled:\n{}\n{}", problems.join("\n"), log_tail(app, 60));

    let jobs = wait_for_every_job(app, &token, &accepted, seed).await;
    let finished_in = started.elapsed();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (job_id, case) in &accepted {
        let job = &jobs[job_id];
        let state = job["state"].as_str().unwrap();
        *states.entry(state).or_default() += 1;
        let error = job["error"].as_str().unwrap_or_default();
        match state {
            "failed" if error.trim().is_empty() => problems.push(format!("{}: failed with no reason: {job}", case.how)),
            "failed" => *reasons.entry(reason_kind(error)).or_default() += 1,
            _ if job["mp3_fid"].as_str().is_none() => problems.push(format!("{}: done with no MP3: {job}", case.how)),
            _ => {}
        }
        if case.control && state != "done" {
            problems.push(format!("the control {} did not convert: {job}", case.filename));
        }
    }
    println!(
        "fuzz seed {seed:#018x}: {} files in {uploaded_in:.0?}, all ended {finished_in:.0?} after the first upload; \
         uploads {upload_counts:?}; jobs {states:?}; reasons {reasons:?}",
        cases.len()
    );
    assert!(problems.is_empty(), "jobs that broke the rules:\n{}", problems.join("\n"));

    // The same node, still alive, answering and converting; every worker reaped.
    assert_eq!(app.pid(), pid);
    assert_eq!(running_since(pid), Some(since), "the node's process died or was replaced");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let control = Case {
        index: 0,
        control: true,
        filename: "after.mp4".to_owned(),
        how: "seed.mp4 unchanged".to_owned(),
        bytes: seeds[0].1.clone(),
    };
    let Upload::Accepted(job_id) = upload(app, &token, &control).await else { panic!("a clean file was refused") };
    assert_eq!(app.finished_job(&token, &job_id).await["state"], "done");
    eventually(Duration::from_secs(10), "every worker of the node to be reaped", || async {
        (zombie_children(pid) == 0).then_some(())
    })
    .await;
}
