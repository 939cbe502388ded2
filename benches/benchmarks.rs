//! Benchmarks, each a ratio against a baseline measured in the same run:
//!
//! 1. conversion: the in-process converter against the ffmpeg CLI on the same 60 s 720p file;
//! 2. pipeline: jobs through the running service, embedded and cluster profile, against
//!    parallel ffmpeg CLI processes;
//! 3. GridFS: upload and download through the service against the driver's GridFS;
//! 4. token validation: our validation against parsing the same claims as plain JSON;
//! 5. memory: peak RSS of the service while a 1 GiB file is uploaded, against its idle RSS.
//! 6. login flood: correct logins from other clients while 200 clients send wrong passwords
//!    from one address, against the same logins on the idle service; refusals per second, and
//!    the service's peak RSS against its idle RSS.
//! 7. outage recovery: in the cluster profile, the time from MongoDB (or RabbitMQ) being back
//!    after a 15 s outage to the first job done, against a job's latency on the healthy service.
//! 8. scaling: 4 jobs of 8 minutes of audio converted by two converter nodes (one core each)
//!    against one; and logins through an auth actor on another node against one on the same
//!    node, with a status call for the bare round trip.
//! 9. the seed system's workload: 4 uploads of a 57 MB minute of 720p, from the first upload to
//!    the fourth email, on 2 converters, in the embedded profile, the cluster profile and the
//!    cluster profile with `--seed-compatible`, against 2 parallel ffmpeg CLI processes (best
//!    of two runs); the service's CPU per job, and the GridFS bytes written and read per job.
//!
//! Run with `scripts/bench` (it starts the test servers the cluster rows need), or
//! `scripts/bench GROUP...` for some of them (`conversion`, `pipeline`, `gridfs`, `token`,
//! `memory`, `login`, `recovery`, `scaling`, `seed`); results are kept in BENCHMARKS.md. Under
//! `cargo test` this binary only says how to run it.

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../tests/support/servers.rs"]
mod servers;
#[allow(dead_code)]
#[path = "../tests/api/tools.rs"]
mod tools;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use helpers::{MailDev, PASSWORD, TestApp, client_from, convert_recordings, eventually, fixture};
use mp3converter::sandbox::{MediaWorker, Sandbox};
use mp3converter::security::token::TokenKeys;
use mp3converter::storage::Media;
use mp3converter::transcode::{Input, StopSignal, TranscodeOptions};

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("benchmarks run with scripts/bench");
        return;
    }
    let groups: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    let wanted = |group: &str| groups.is_empty() || groups.iter().any(|g| g == group);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let benchmarks: [(&str, Group); 10] = [
        ("conversion", |_| conversion()),
        ("pipeline", |runtime| runtime.block_on(pipeline())),
        ("gridfs", |runtime| runtime.block_on(gridfs_throughput())),
        ("token", |runtime| runtime.block_on(token_validation())),
        ("memory", |runtime| runtime.block_on(upload_memory())),
        ("soak", |runtime| runtime.block_on(soak_memory())),
        ("login", |runtime| runtime.block_on(login_flood())),
        ("recovery", |runtime| runtime.block_on(outage_recovery())),
        ("scaling", |runtime| runtime.block_on(scaling())),
        ("seed", |runtime| runtime.block_on(seed_workload())),
    ];
    let mut rows = Vec::new();
    for (group, run) in benchmarks {
        if wanted(group) {
            rows.extend(run(&runtime));
        }
    }
    println!("\n| benchmark | ours | baseline | ratio | target |\n|---|---|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} | {} | {} |", row.name, row.ours, row.baseline, row.ratio, row.target);
    }
}

/// One group of benchmarks, run on the benchmark's runtime.
type Group = fn(&tokio::runtime::Runtime) -> Vec<Row>;

struct Row {
    name: &'static str,
    ours: String,
    baseline: String,
    ratio: String,
    target: &'static str,
}

/// CPU seconds (user and system) used by this process and by its waited-for children, to the
/// microsecond (`getrusage`; `/proc/self/stat` counts in clock ticks of 10 ms, 1.5 % of a
/// conversion).
fn cpu_seconds() -> (f64, f64) {
    let usage = |who: i32| {
        // SAFETY: getrusage fills the struct it is given; both `who` values are valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut usage) };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    };
    (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN))
}

/// The numeric fields of `/proc/<process>/stat` after the command name, so that utime (field
/// 14 of the whole line) is index 11; empty for a process that is gone.
fn stat_fields(process: &str) -> Vec<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    stat.rsplit(')').next().unwrap_or("").split_whitespace().map(|f| f.parse().unwrap_or(0.0)).collect()
}

/// Asked once: the `getconf` process would otherwise count among the children measured.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100.0)
    })
}

fn ffmpeg_cli(input: &Path, output: &Path) {
    tools::run(tools::ffmpeg().arg("-i").arg(input).args(["-vn", "-c:a", "libmp3lame", "-b:a", "192k"]).arg(output));
}

/// Rounds of the conversion benchmark. On a shared 2-core machine the same conversion's CPU
/// time varies by a quarter from one run to the next, so each round runs the three contenders
/// back to back (in an order that turns each round) and the table gives the best of each and
/// the median of the rounds' own ratios.
const CONVERSION_ROUNDS: usize = 15;

/// CPU and wall seconds of one conversion.
#[derive(Clone, Copy)]
struct Spent {
    cpu: f64,
    wall: f64,
}

fn best(spent: &[Spent], of: impl Fn(&Spent) -> f64) -> f64 {
    spent.iter().map(of).fold(f64::MAX, f64::min)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn conversion() -> Vec<Row> {
    let input = fixture("minute-720p.mp4");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp3");
    let options = TranscodeOptions { bit_rate: 192_000, max_media_seconds: 4.0 * 3600.0 };
    // The service's own path: a sandboxed worker process per conversion, its start included.
    let sandbox = Sandbox::new(env!("CARGO_BIN_EXE_mp3converter"), 1 << 30);
    std::fs::write(&output, b"").unwrap();
    let timed = |convert: &dyn Fn()| {
        let (before, started) = (cpu_seconds(), Instant::now());
        convert();
        let (after, wall) = (cpu_seconds(), started.elapsed().as_secs_f64());
        // This process's share and its reaped children's (a sandboxed worker, the CLI).
        Spent { cpu: after.0 - before.0 + after.1 - before.1, wall }
    };
    let sandboxed = || {
        let stop = StopSignal::new(Instant::now() + Duration::from_secs(600));
        sandbox.transcode(Media::File(input.clone()), &output, options, None, &stop).unwrap();
    };
    let cli = || ffmpeg_cli(&input, &output);
    // The same conversion in this very process, as before the sandbox: what the sandbox costs.
    let in_process = || {
        let stop = StopSignal::new(Instant::now() + Duration::from_secs(600));
        let (file, out) = (std::fs::File::open(&input).unwrap(), std::fs::File::create(&output).unwrap());
        mp3converter::transcode::transcode(Input::local(file), Box::new(out), options, &stop).unwrap();
    };
    let contenders: [&dyn Fn(); 3] = [&sandboxed, &cli, &in_process];
    let mut spent = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..CONVERSION_ROUNDS {
        for turn in 0..contenders.len() {
            let which = (round + turn) % contenders.len();
            spent[which].push(timed(contenders[which]));
        }
    }
    let [ours, cli, in_process] = spent;
    let paired = |a: &[Spent], b: &[Spent]| median(a.iter().zip(b).map(|(a, b)| a.cpu / b.cpu).collect());
    let (ours_cpu, cli_cpu) = (best(&ours, |s| s.cpu), best(&cli, |s| s.cpu));
    let (ours_wall, cli_wall) = (best(&ours, |s| s.wall), best(&cli, |s| s.wall));
    vec![
        Row {
            name: "conversion CPU, 60 s 720p (best of 15)",
            ours: format!("{ours_cpu:.3} s"),
            baseline: format!("{cli_cpu:.3} s (ffmpeg CLI)"),
            ratio: format!("{:.2}", ours_cpu / cli_cpu),
            target: "<= 0.85",
        },
        Row {
            name: "conversion CPU against the CLI, median of the 15 rounds' ratios",
            ours: format!("{:.3} s (median)", median(ours.iter().map(|s| s.cpu).collect())),
            baseline: format!("{:.3} s (median)", median(cli.iter().map(|s| s.cpu).collect())),
            ratio: format!("{:.2}", paired(&ours, &cli)),
            target: "<= 0.85",
        },
        Row {
            name: "conversion CPU, sandboxed worker against the same conversion in-process, median of the rounds' ratios",
            ours: format!("{:.3} s (median)", median(ours.iter().map(|s| s.cpu).collect())),
            baseline: format!(
                "{:.3} s (median, in the calling process, no sandbox)",
                median(in_process.iter().map(|s| s.cpu).collect())
            ),
            ratio: format!("{:.2}", paired(&ours, &in_process)),
            target: "",
        },
        Row {
            name: "conversion wall, 60 s 720p (best of 15)",
            ours: format!("{ours_wall:.3} s"),
            baseline: format!("{cli_wall:.3} s (ffmpeg CLI)"),
            ratio: format!("{:.2}", ours_wall / cli_wall),
            target: "",
        },
    ]
}

const PIPELINE_JOBS: usize = 8;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Wall time and sorted per-job completion times of a batch, and the CPU seconds the service
/// and (cluster) the MongoDB-wire test server spent on it.
struct Batch {
    jobs: usize,
    wall: f64,
    latencies: Vec<f64>,
    service_cpu: f64,
    database_cpu: f64,
}

impl Batch {
    fn throughput(&self) -> f64 {
        self.jobs as f64 / self.wall
    }

    fn latency(&self) -> String {
        format!("{:.2} s / {:.2} s", percentile(&self.latencies, 0.5), percentile(&self.latencies, 0.95))
    }
}

/// `jobs` conversions of `input` through `cores` parallel ffmpeg CLI processes; `service_cpu`
/// is their CPU.
fn cli_batch(input: &Path, cores: usize, jobs: usize) -> Batch {
    let (_, children_before) = cpu_seconds();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut latencies: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..cores)
            .map(|worker| {
                let (next, dir) = (&next, &dir);
                scope.spawn(move || {
                    let mut done = Vec::new();
                    while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < jobs {
                        ffmpeg_cli(input, &dir.path().join(format!("{worker}-{}.mp3", done.len())));
                        done.push(started.elapsed().as_secs_f64());
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    latencies.sort_by(f64::total_cmp);
    let wall = started.elapsed().as_secs_f64();
    Batch { jobs, wall, latencies, service_cpu: cpu_seconds().1 - children_before, database_cpu: 0.0 }
}

/// CPU seconds (user and system) process `pid` and its reaped children have used so far: a
/// node's own and its sandboxed FFmpeg workers'.
fn process_cpu(pid: u32) -> f64 {
    let fields = stat_fields(&pid.to_string());
    fields.get(11..15).map_or(0.0, |times| times.iter().sum::<f64>() / clock_ticks())
}

/// The batch through a running service: all uploaded, then each followed to `done`.
/// `database` is the pid of a database server whose CPU to count (0 for none).
async fn service_batch(input: &Path, args: &[&str], database: u32) -> Batch {
    let app = TestApp::spawn_with(args).await;
    let token = app.user_token("bench@example.com", false).await;
    let (service_before, database_before) = (process_cpu(app.pid()), process_cpu(database));
    let started = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..PIPELINE_JOBS {
        jobs.push(app.submit(&token, input).await);
    }
    let mut latencies = Vec::new();
    for job in &jobs {
        assert_eq!(app.finished_job(&token, job).await["state"], "done");
        latencies.push(started.elapsed().as_secs_f64());
    }
    latencies.sort_by(f64::total_cmp);
    Batch {
        jobs: PIPELINE_JOBS,
        wall: started.elapsed().as_secs_f64(),
        latencies,
        service_cpu: process_cpu(app.pid()) - service_before,
        database_cpu: process_cpu(database) - database_before,
    }
}

/// Flags for the cluster profile on the test servers (`scripts/bench` starts them) and the
/// given MongoDB server (a fresh one per benchmark: the test server slows as data accumulates).
async fn cluster_args_with(mongodb_url: &str) -> Vec<String> {
    let flags = [
        ("--profile", "cluster".to_owned()),
        ("--mysql-url", servers::mysql_url().await),
        ("--mongodb-url", mongodb_url.to_owned()),
        ("--amqp-url", servers::amqp_url().await),
    ];
    flags.into_iter().flat_map(|(flag, value)| [flag.to_owned(), value]).collect()
}

async fn pipeline() -> Vec<Row> {
    let input = fixture("minute-720p.mp4");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let converters = cores.to_string();
    let cli = cli_batch(&input, cores, PIPELINE_JOBS);
    let embedded = service_batch(&input, &["--converters", &converters], 0).await;
    let mongo = servers::OwnMongo::start().await;
    let cluster_args =
        [cluster_args_with(&mongo.url()).await, vec!["--converters".to_owned(), converters.clone()]].concat();
    let cluster =
        service_batch(&input, &cluster_args.iter().map(String::as_str).collect::<Vec<_>>(), mongo.pid()).await;
    let cli_label = format!("{:.2} jobs/s ({cores} parallel ffmpeg CLI)", cli.throughput());
    let mut rows = Vec::new();
    let profiles = [
        ("pipeline throughput, embedded, 8 x 60 s 720p", &embedded, ">= 0.95"),
        ("pipeline throughput, cluster, 8 x 60 s 720p", &cluster, ">= 0.9"),
    ];
    for (name, batch, target) in profiles {
        rows.push(Row {
            name,
            ours: format!("{:.2} jobs/s", batch.throughput()),
            baseline: cli_label.clone(),
            ratio: format!("{:.2}", batch.throughput() / cli.throughput()),
            target,
        });
    }
    rows.push(Row {
        name: "pipeline throughput, cluster against embedded",
        ours: format!("{:.2} jobs/s", cluster.throughput()),
        baseline: format!("{:.2} jobs/s (embedded)", embedded.throughput()),
        ratio: format!("{:.2}", cluster.throughput() / embedded.throughput()),
        target: "",
    });
    rows.push(Row {
        name: "pipeline CPU: service (embedded; cluster) and MongoDB-wire test server",
        ours: format!("{:.1} s; {:.1} s", embedded.service_cpu, cluster.service_cpu),
        baseline: format!("{:.1} s (SecantusDB, cluster run)", cluster.database_cpu),
        ratio: format!("{:.2}", cluster.service_cpu / embedded.service_cpu),
        target: "",
    });
    rows.push(Row {
        name: "pipeline latency p50 / p95 (embedded; cluster)",
        ours: format!("{}; {}", embedded.latency(), cluster.latency()),
        baseline: format!("{} (ffmpeg CLI)", cli.latency()),
        ratio: format!("{:.2}", percentile(&cluster.latencies, 0.95) / percentile(&cli.latencies, 0.95)),
        target: "",
    });
    rows
}

/// MiB/s of moving `bytes` in `seconds`.
fn mib_per_second(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / seconds
}

async fn gridfs_throughput() -> Vec<Row> {
    use mongodb::bson::{doc, oid::ObjectId};
    use tokio::io::AsyncWriteExt;
    use tokio_util::compat::{FuturesAsyncReadCompatExt, FuturesAsyncWriteCompatExt};
    const SIZE: usize = 64 * 1024 * 1024;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let mongo = servers::OwnMongo::start().await;
    let args = cluster_args_with(&mongo.url()).await;
    let app = TestApp::spawn_with(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let token = app.user_token("gridfs@example.com", false).await;
    let client = mongodb::Client::with_uri_str(mongo.url()).await.unwrap();
    let (videos, mp3s) = (client.database("videos").gridfs_bucket(None), client.database("mp3s").gridfs_bucket(None));

    // Alternating rounds, best of each, so that neither side always meets the fuller database.
    let (mut ours_up, mut raw_up, mut ours_down, mut raw_down) = (0f64, 0f64, 0f64, 0f64);
    for _ in 0..2 {
        let started = Instant::now();
        let response = app.upload_bytes(&token, "big.bin", data.clone()).await;
        assert_eq!(response.status(), 202);
        ours_up = ours_up.max(mib_per_second(SIZE, started.elapsed().as_secs_f64()));

        let started = Instant::now();
        let mut upload = videos.open_upload_stream("raw.bin").await.unwrap().compat_write();
        upload.write_all(&data).await.unwrap();
        upload.shutdown().await.unwrap();
        raw_up = raw_up.max(mib_per_second(SIZE, started.elapsed().as_secs_f64()));

        // An MP3-bucket file of the same size, owned by the benchmark's user.
        let id = ObjectId::new();
        let metadata = doc! { "owner": "gridfs@example.com", "filename": "big.mp3", "content_type": "audio/mpeg" };
        let mut stored =
            mp3s.open_upload_stream("big.mp3").id(id.into()).metadata(metadata).await.unwrap().compat_write();
        stored.write_all(&data).await.unwrap();
        stored.shutdown().await.unwrap();

        let started = Instant::now();
        let response =
            app.client.get(app.url(&format!("/download?fid={}", id.to_hex()))).bearer_auth(&token).send().await;
        assert_eq!(response.unwrap().bytes().await.unwrap().len(), SIZE);
        ours_down = ours_down.max(mib_per_second(SIZE, started.elapsed().as_secs_f64()));

        let started = Instant::now();
        let mut reader = mp3s.open_download_stream(id.into()).await.unwrap().compat();
        let mut sink = Vec::with_capacity(SIZE);
        tokio::io::copy(&mut reader, &mut sink).await.unwrap();
        assert_eq!(sink.len(), SIZE);
        raw_down = raw_down.max(mib_per_second(SIZE, started.elapsed().as_secs_f64()));
    }
    vec![
        Row {
            name: "GridFS upload through the service, 64 MiB (best of 2)",
            ours: format!("{ours_up:.1} MiB/s"),
            baseline: format!("{raw_up:.1} MiB/s (driver GridFS)"),
            ratio: format!("{:.2}", ours_up / raw_up),
            target: "",
        },
        Row {
            name: "GridFS download through the service, 64 MiB (best of 2)",
            ours: format!("{ours_down:.1} MiB/s"),
            baseline: format!("{raw_down:.1} MiB/s (driver GridFS)"),
            ratio: format!("{:.2}", ours_down / raw_down),
            target: "",
        },
    ]
}

/// The median of `rounds` timings of `call`, in microseconds.
async fn median_micros<F: Future<Output = ()>>(rounds: usize, mut call: impl FnMut() -> F) -> f64 {
    let mut timings = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        call().await;
        timings.push(started.elapsed().as_secs_f64() * 1e6);
    }
    timings.sort_by(f64::total_cmp);
    timings[rounds / 2]
}

async fn token_validation() -> Vec<Row> {
    const ROUNDS: usize = 100_000;
    let keys = TokenKeys::new(b"a benchmark secret of at least 32 bytes", Duration::from_secs(3600)).unwrap();
    let token = keys.issue("bench@example.com", false, 0).unwrap().token;
    let claims_json = serde_json::to_string(&keys.validate(&token).unwrap()).unwrap();
    let baseline = median_micros(ROUNDS, || async {
        let parsed: mp3converter::security::token::Claims =
            serde_json::from_str(std::hint::black_box(&claims_json)).unwrap();
        std::hint::black_box(parsed);
    })
    .await;
    let signature_only = median_micros(ROUNDS, || async {
        std::hint::black_box(keys.validate(std::hint::black_box(&token)).unwrap());
    })
    .await;
    // With the session check a request makes: the user's state cached, as for every request
    // but the first in two seconds.
    let dir = tempfile::tempdir().unwrap();
    let users = mp3converter::storage::sqlite::SqliteUsers::new(
        mp3converter::storage::sqlite::open(&dir.path().join("db")).await.unwrap(),
    );
    let user = mp3converter::storage::User {
        email: "bench@example.com".into(),
        password_hash: "x".into(),
        admin: false,
        session_generation: 0,
    };
    mp3converter::storage::UserStore::add(&users, &user).await.unwrap();
    let sessions = mp3converter::http::sessions::Sessions::new(std::sync::Arc::new(users));
    let with_session = median_micros(ROUNDS, || async {
        let claims = keys.validate(std::hint::black_box(&token)).unwrap();
        sessions.check(&claims).await.unwrap();
    })
    .await;
    let row = |name, ours: f64| Row {
        name,
        ours: format!("{ours:.2} us"),
        baseline: format!("{baseline:.2} us (parse the claims JSON)"),
        ratio: format!("{:.1}", ours / baseline),
        target: "<= 20 us",
    };
    vec![
        row("token validation (HS256, pinned), median", signature_only),
        row("token validation with the session check (cached), median", with_session),
    ]
}

/// Peak RSS of a service while `size` bytes are uploaded to it, against its idle RSS.
async fn upload_memory_of(args: &[&str], size_mib: usize) -> (f64, f64) {
    const MIB: usize = 1024 * 1024;
    let app = TestApp::spawn_with(args).await;
    let token = app.user_token("memory@example.com", false).await;
    let idle = app.memory_mib("VmRSS");
    let chunks = futures_util::stream::iter((0..size_mib).map(|_| Ok::<_, std::io::Error>(vec![0x5au8; MIB])));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(chunks)).file_name("big.bin");
    let form = reqwest::multipart::Form::new().part("file", part);
    let response = app.client.post(app.url("/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 202);
    (app.memory_mib("VmHWM"), idle)
}

async fn upload_memory() -> Vec<Row> {
    let embedded = upload_memory_of(&[], 1024).await;
    // A fresh MongoDB-wire server: the test server slows down as GridFS data accumulates.
    let own_mongo = servers::OwnMongo::start().await;
    let args = cluster_args_with(&own_mongo.url()).await;
    let cluster = upload_memory_of(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1024).await;
    let profiles = [
        ("service peak RSS during a 1 GiB upload, embedded", embedded),
        ("service peak RSS during a 1 GiB upload, cluster (GridFS)", cluster),
    ];
    profiles
        .into_iter()
        .map(|(name, (peak, idle))| Row {
            name,
            ours: format!("{peak:.1} MiB"),
            baseline: format!("{idle:.1} MiB (idle RSS)"),
            ratio: format!("{:.2}", peak / idle),
            target: "<= 80 MiB",
        })
        .collect()
}

/// Jobs converted before the first memory sample of the soak, and in all.
const SOAK_FIRST: usize = 100;
const SOAK_ALL: usize = 1000;

/// A node's RSS after [`SOAK_ALL`] converted jobs and after [`SOAK_FIRST`].
async fn soak_memory_of(args: &[&str]) -> (f64, f64) {
    let app = TestApp::spawn_with(&[args, &["--max-jobs-per-user", "10000"]].concat()).await;
    let token = app.user_token("soak@example.com", false).await;
    convert_recordings(&app, &token, SOAK_FIRST).await;
    let first = app.memory_mib("VmRSS");
    convert_recordings(&app, &token, SOAK_ALL - SOAK_FIRST).await;
    (app.memory_mib("VmRSS"), first)
}

async fn soak_memory() -> Vec<Row> {
    let embedded = soak_memory_of(&[]).await;
    let own_mongo = servers::OwnMongo::start().await;
    let args = cluster_args_with(&own_mongo.url()).await;
    let cluster = soak_memory_of(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let profiles = [
        ("node RSS after 1,000 converted jobs, less after 100, embedded", embedded),
        ("node RSS after 1,000 converted jobs, less after 100, cluster", cluster),
    ];
    profiles
        .into_iter()
        .map(|(name, (last, first))| Row {
            name,
            ours: format!("{:.1} MiB", last - first),
            baseline: format!("{first:.1} MiB (RSS after 100 jobs)"),
            ratio: format!("{:.2}", last / first),
            target: "<= 8 MiB",
        })
        .collect()
}

/// Wrong-password clients of the login flood, all from 127.0.0.1 on one account.
const FLOOD_CLIENTS: usize = 200;
/// Clients logging in correctly, one login after another each (one per core).
const LOGIN_CLIENTS: u8 = 2;
const FLOOD_TIME: Duration = Duration::from_secs(5);

/// Seconds each correct login took, by `LOGIN_CLIENTS` clients until `until`. Each login comes
/// from the next address of its client's own range (127.0.{10+client}.1-250), as many users
/// would, so that no address runs out of its login budget.
async fn correct_logins(app: &TestApp, until: Instant) -> Vec<f64> {
    let client = |worker: u8| async move {
        let mut latencies = Vec::new();
        for n in (0..250u8).cycle() {
            if Instant::now() >= until {
                break;
            }
            let started = Instant::now();
            let from = client_from([127, 0, 10 + worker, n + 1]);
            let response = from.post(app.url("/login")).basic_auth("real@example.com", Some(PASSWORD)).send().await;
            assert_eq!(response.unwrap().status(), 200);
            latencies.push(started.elapsed().as_secs_f64());
        }
        latencies
    };
    let all = futures_util::future::join_all((0..LOGIN_CLIENTS).map(client)).await;
    let mut latencies: Vec<f64> = all.into_iter().flatten().collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Refusals (429, 503) the flood got until `until`; any other answer but 401 fails the run.
async fn wrong_logins(app: &TestApp, until: Instant) -> usize {
    let flooder = || async {
        let mut refused = 0;
        while Instant::now() < until {
            let request = app.client.post(app.url("/login")).basic_auth("victim@example.com", Some("a wrong guess"));
            match request.send().await.unwrap().status().as_u16() {
                429 | 503 => refused += 1,
                401 => {}
                other => panic!("the flood got {other}"),
            }
        }
        refused
    };
    futures_util::future::join_all((0..FLOOD_CLIENTS).map(|_| flooder())).await.into_iter().sum()
}

async fn login_flood() -> Vec<Row> {
    let app = TestApp::spawn().await;
    app.add_user("victim@example.com", false);
    app.add_user("real@example.com", false);
    let idle_rss = app.memory_mib("VmRSS");
    let idle = correct_logins(&app, Instant::now() + FLOOD_TIME).await;
    let until = Instant::now() + FLOOD_TIME;
    let (flooded, refused) = tokio::join!(correct_logins(&app, until), wrong_logins(&app, until));
    let per_second = |count: usize| count as f64 / FLOOD_TIME.as_secs_f64();
    let latency = |sorted: &[f64]| {
        format!("p50 {:.0} ms, max {:.0} ms", percentile(sorted, 0.5) * 1000.0, percentile(sorted, 1.0) * 1000.0)
    };
    let peak = app.memory_mib("VmHWM");
    vec![
        Row {
            name: "correct logins/s during a flood of 200 wrong-password clients (5 s)",
            ours: format!("{:.1}/s, {}", per_second(flooded.len()), latency(&flooded)),
            baseline: format!("{:.1}/s, {} (idle service)", per_second(idle.len()), latency(&idle)),
            ratio: format!("{:.2}", flooded.len() as f64 / idle.len() as f64),
            target: "every login < 5 s",
        },
        Row {
            name: "flood logins refused (429/503) per second",
            ours: format!("{:.0}/s", per_second(refused)),
            baseline: format!("{:.1}/s (correct logins, idle service)", per_second(idle.len())),
            ratio: format!("{:.0}", refused as f64 / idle.len() as f64),
            target: "",
        },
        Row {
            name: "service peak RSS, idle then the login flood",
            ours: format!("{peak:.1} MiB"),
            baseline: format!("{idle_rss:.1} MiB (idle RSS)"),
            ratio: format!("{:.2}", peak / idle_rss),
            target: "< 150 MiB",
        },
    ]
}

/// How long a server stays away in the recovery benchmark.
const OUTAGE: Duration = Duration::from_secs(15);
/// Jobs in flight when the server goes away.
const RECOVERY_JOBS: usize = 4;

/// A backend server the recovery benchmark stops and starts.
enum Outage {
    MongoDb,
    RabbitMq,
}

/// The state of a job, or None while the service cannot tell (its database is away).
async fn state_of(app: &TestApp, token: &str, job_id: &str) -> Option<String> {
    let response = app.client.get(app.url(&format!("/jobs/{job_id}"))).bearer_auth(token).send().await.ok()?;
    let job: serde_json::Value = response.json().await.ok()?;
    job["state"].as_str().map(str::to_owned)
}

/// Seconds from the server being back to the first of `jobs` (unfinished when it went away)
/// being done, and the seconds one job took on the healthy service before.
async fn recovery_after(outage: Outage) -> (f64, f64) {
    let mut mongo = servers::OwnMongo::start().await;
    let mut broker = servers::OwnRabbit::start().await;
    let flags = [
        ("--profile", "cluster".to_owned()),
        ("--mysql-url", servers::mysql_url().await),
        ("--mongodb-url", mongo.url()),
        ("--amqp-url", broker.url()),
        ("--converters", "2".to_owned()),
    ];
    let args: Vec<String> = flags.into_iter().flat_map(|(flag, value)| [flag.to_owned(), value]).collect();
    let app = TestApp::spawn_with(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let token = app.user_token("recovery@example.com", false).await;
    let clip = fixture("clip.mp4");
    let started = Instant::now();
    let first = app.submit(&token, &clip).await;
    assert_eq!(app.finished_job(&token, &first).await["state"], "done");
    let healthy = started.elapsed().as_secs_f64();

    let mut jobs = Vec::new();
    for _ in 0..RECOVERY_JOBS {
        jobs.push(app.submit(&token, &clip).await);
    }
    match outage {
        Outage::MongoDb => mongo.stop(),
        Outage::RabbitMq => broker.stop(),
    }
    tokio::time::sleep(OUTAGE).await; // the outage itself
    match outage {
        Outage::MongoDb => mongo.start_again().await,
        Outage::RabbitMq => broker.start_again().await,
    }
    let back = Instant::now();
    let mut waiting = Vec::new();
    for job in &jobs {
        if state_of(&app, &token, job).await.as_deref() != Some("done") {
            waiting.push(job.clone());
        }
    }
    // Otherwise the row would time nothing but the state reads.
    assert!(!waiting.is_empty(), "every job finished during the outage: give it more jobs in flight");
    loop {
        let mut done = false;
        for job in &waiting {
            done |= state_of(&app, &token, job).await.as_deref() == Some("done");
        }
        if done {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(180), "no job done within 3 minutes of the recovery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (back.elapsed().as_secs_f64(), healthy)
}

async fn outage_recovery() -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, outage) in [
        ("recovery: first job done after MongoDB is back (15 s outage)", Outage::MongoDb),
        ("recovery: first job done after RabbitMQ is back (15 s outage)", Outage::RabbitMq),
    ] {
        let (recovery, healthy) = recovery_after(outage).await;
        rows.push(Row {
            name,
            ours: format!("{recovery:.1} s"),
            baseline: format!("{healthy:.1} s (one job, upload to done, healthy)"),
            ratio: format!("{:.1}", recovery / healthy),
            target: "",
        });
    }
    rows
}

/// The flags of one node of an actor cluster on the given backends, listening on `port`.
fn cluster_node(backends: &[String], name: &str, roles: &str, port: u16, seeds: &[u16], cookie: &Path) -> Vec<String> {
    let listen = format!("127.0.0.1:{port}");
    let seeds: Vec<String> = seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut flags = backends.to_vec();
    for (flag, value) in [
        ("--node-name", name.to_owned()),
        ("--roles", roles.to_owned()),
        ("--cluster-listen", listen.clone()),
        ("--cluster-advertise", listen),
        ("--cluster-cookie-file", cookie.to_string_lossy().into_owned()),
        ("--address-logins-per-minute", "100000".to_owned()),
        ("--address-login-burst", "100000".to_owned()),
    ] {
        flags.extend([flag.to_owned(), value]);
    }
    if !seeds.is_empty() {
        flags.extend(["--cluster-seeds".to_owned(), seeds.join(",")]);
    }
    flags
}

fn strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Pins every thread of process `pid` to `core`.
fn pin(pid: u32, core: usize) {
    let status = Command::new("taskset").args(["-a", "-c", "-p", &core.to_string(), &pid.to_string()]).output();
    assert!(status.is_ok_and(|s| s.status.success()), "taskset pins the converter node");
}

/// Seconds for `nodes` converter nodes (one converter each, each on its own core) to convert
/// `jobs`, uploaded beforehand.
async fn converted_by(backends: &[String], nodes: usize) -> f64 {
    let cookie = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cookie.path(), "a benchmark cookie").unwrap();
    let gateway_port = servers::free_port();
    let gateway_flags = cluster_node(backends, "gateway", "gateway,auth,notifier", gateway_port, &[], cookie.path());
    let gateway = TestApp::spawn_with(&strs(&gateway_flags)).await;
    let token = gateway.user_token("scaling@example.com", false).await;
    let input = fixture("eight-minutes-audio.mp4");
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(gateway.submit(&token, &input).await);
    }
    let mut converters = Vec::new();
    for n in 0..nodes {
        let flags = cluster_node(
            backends,
            &format!("converter-{n}"),
            "converter",
            servers::free_port(),
            &[gateway_port],
            cookie.path(),
        );
        let node = TestApp::spawn_with(&strs(&[flags, vec!["--converters".to_owned(), "1".to_owned()]].concat())).await;
        pin(node.pid(), n);
        converters.push(node);
    }
    // From the first conversion on: the nodes' start-up is not conversion work.
    helpers::eventually(Duration::from_secs(60), "a first conversion", || async {
        let listing = gateway.get_json(&token, "/jobs?limit=10").await;
        listing["jobs"].as_array().unwrap().iter().any(|job| job["state"] != "queued").then_some(())
    })
    .await;
    let started = Instant::now();
    for job in &jobs {
        let done = helpers::eventually(Duration::from_secs(600), "the job", || async {
            let job = gateway.job(&token, job).await;
            (job["state"] == "done").then_some(())
        });
        done.await;
    }
    started.elapsed().as_secs_f64()
}

/// Latencies (s, sorted) of `count` requests made by `request`.
async fn latencies<F, Fut>(count: usize, mut request: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut all = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        request().await;
        all.push(started.elapsed().as_secs_f64());
    }
    all.sort_by(f64::total_cmp);
    all
}

fn p50_p99(sorted: &[f64]) -> String {
    format!("p50 {:.1} ms, p99 {:.1} ms", percentile(sorted, 0.5) * 1000.0, percentile(sorted, 0.99) * 1000.0)
}

/// Logins and status calls through a gateway with its own auth actor, and through one whose
/// auth actor is on another node.
async fn remote_login(backends: &[String]) -> Vec<Row> {
    let cookie = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(cookie.path(), "a benchmark cookie").unwrap();
    let (auth_port, local_port, remote_port) = (servers::free_port(), servers::free_port(), servers::free_port());
    let _auth =
        TestApp::spawn_with(&strs(&cluster_node(backends, "auth", "auth", auth_port, &[], cookie.path()))).await;
    let local = TestApp::spawn_with(&strs(&cluster_node(
        backends,
        "local",
        "gateway,auth",
        local_port,
        &[auth_port],
        cookie.path(),
    )))
    .await;
    let remote = TestApp::spawn_with(&strs(&cluster_node(
        backends,
        "remote",
        "gateway",
        remote_port,
        &[auth_port],
        cookie.path(),
    )))
    .await;
    local.add_user("ops@example.com", true);
    let admin = local.login("ops@example.com", PASSWORD).await;
    helpers::eventually(Duration::from_secs(30), "the remote gateway's first login", || async {
        let response =
            remote.client.post(remote.url("/login")).basic_auth("ops@example.com", Some(PASSWORD)).send().await;
        response.ok().filter(|r| r.status() == 200).map(drop)
    })
    .await;
    let login = |app: &TestApp| {
        let request = app.client.post(app.url("/login")).basic_auth("ops@example.com", Some(PASSWORD));
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    let (through_local, through_remote) =
        (latencies(50, || login(&local)).await, latencies(50, || login(&remote)).await);
    // `/cluster` on the remote gateway makes one status call to each of its two peers.
    let status = |app: &TestApp| {
        let request = app.client.get(app.url("/cluster")).bearer_auth(admin.clone());
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    let alone = TestApp::spawn().await;
    let alone_admin = alone.user_token("ops@example.com", true).await;
    let without_peers = latencies(50, || {
        let request = alone.client.get(alone.url("/cluster")).bearer_auth(alone_admin.clone());
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    })
    .await;
    let with_peers = latencies(50, || status(&remote)).await;
    vec![
        Row {
            name: "login through an auth actor on another node (50 logins)",
            ours: p50_p99(&through_remote),
            baseline: format!("{} (auth on the same node)", p50_p99(&through_local)),
            ratio: format!("{:.2}", percentile(&through_remote, 0.5) / percentile(&through_local, 0.5)),
            target: "",
        },
        Row {
            name: "GET /cluster: status calls to 2 peers (the bare round trip)",
            ours: p50_p99(&with_peers),
            baseline: format!("{} (no peers)", p50_p99(&without_peers)),
            ratio: format!("{:.2}", percentile(&with_peers, 0.5) / percentile(&without_peers, 0.5)),
            target: "",
        },
    ]
}

async fn scaling() -> Vec<Row> {
    let mongo = servers::OwnMongo::start().await;
    // Each run on a database and virtual host of its own.
    let one = converted_by(&cluster_args_with(&mongo.url()).await, 1).await;
    let two = converted_by(&cluster_args_with(&mongo.url()).await, 2).await;
    let mut rows = vec![Row {
        name: "horizontal scaling: 4 x 8 min of audio, 2 converter nodes (1 core each) against 1",
        ours: format!("{:.1} s", two),
        baseline: format!("{:.1} s (1 node)", one),
        ratio: format!("{:.2}", one / two),
        target: ">= 1.8",
    }];
    rows.extend(remote_login(&cluster_args_with(&mongo.url()).await).await);
    rows
}

/// The seed system's workload, as it was measured from outside (issue 8).
const SEED_JOBS: usize = 4;
const SEED_CONVERTERS: usize = 2;

/// One profile's run of the seed workload.
struct SeedRun {
    /// From the first upload to the last email, in seconds.
    wall: f64,
    /// Seconds each upload took (request to 202), sorted.
    uploads: Vec<f64>,
    service_cpu: f64,
    database_cpu: f64,
    /// GridFS bytes written and read, from the service's `mp3c_gridfs_bytes_total`.
    gridfs_written: f64,
    gridfs_read: f64,
}

/// Emails `maildev` received for `user`.
async fn emails_to(maildev: &MailDev, user: &str) -> usize {
    maildev.all_emails().await.iter().filter(|mail| mail["to"][0]["address"] == user).count()
}

/// The sum of every series of `name` whose labels include `label` (such as `direction="read"`).
fn labelled_sum(metrics: &str, name: &str, label: &str) -> f64 {
    let lines = metrics.lines().filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label));
    lines.filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// Uploads `video` [`SEED_JOBS`] times, one after another as one client would, and waits for
/// the last email; `database` is the pid of a database server whose CPU to count (0: none).
async fn seed_run(video: &[u8], args: &[String], maildev: &MailDev, user: &str, database: u32) -> SeedRun {
    let app = TestApp::spawn_with(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let token = app.user_token(user, false).await;
    let (service_before, database_before) = (process_cpu(app.pid()), process_cpu(database));
    let started = Instant::now();
    let mut uploads = Vec::new();
    for _ in 0..SEED_JOBS {
        let upload_started = Instant::now();
        let response = app.upload_bytes(&token, "seed-720p.mp4", video.to_vec()).await;
        assert_eq!(response.status(), 202);
        uploads.push(upload_started.elapsed().as_secs_f64());
    }
    eventually(Duration::from_secs(600), "every email", || async {
        (emails_to(maildev, user).await >= SEED_JOBS).then_some(())
    })
    .await;
    let wall = started.elapsed().as_secs_f64();
    let (service_cpu, database_cpu) =
        (process_cpu(app.pid()) - service_before, process_cpu(database) - database_before);
    uploads.sort_by(f64::total_cmp);
    let metrics = app.metrics().await;
    SeedRun {
        wall,
        uploads,
        service_cpu,
        database_cpu,
        gridfs_written: labelled_sum(&metrics, "mp3c_gridfs_bytes_total", "direction=\"written\""),
        gridfs_read: labelled_sum(&metrics, "mp3c_gridfs_bytes_total", "direction=\"read\""),
    }
}

async fn seed_workload() -> Vec<Row> {
    let input = fixture("seed-720p.mp4");
    let video = std::fs::read(&input).unwrap();
    let first_cli = cli_batch(&input, SEED_CONVERTERS, SEED_JOBS);
    let maildev = MailDev::start().await;
    let smtp = ["--smtp-url".to_owned(), format!("smtp://127.0.0.1:{}", maildev.smtp_port)];
    let converters = ["--converters".to_owned(), SEED_CONVERTERS.to_string()];
    let embedded_args = [&smtp[..], &converters[..]].concat();
    let embedded = seed_run(&video, &embedded_args, &maildev, "seed-embedded@example.com", 0).await;
    let mut cluster_runs = Vec::new();
    for (user, extra) in
        [("seed-cluster@example.com", None), ("seed-compatible@example.com", Some("--seed-compatible"))]
    {
        // A fresh MongoDB-wire server for each: it slows down as data accumulates.
        let mongo = servers::OwnMongo::start().await;
        let args = [cluster_args_with(&mongo.url()).await, smtp.to_vec(), converters.to_vec()].concat();
        let args = [args, extra.map(str::to_owned).into_iter().collect()].concat();
        cluster_runs.push(seed_run(&video, &args, &maildev, user, mongo.pid()).await);
    }
    // The baseline's best of two, before and after: the ratios never flatter us.
    let second_cli = cli_batch(&input, SEED_CONVERTERS, SEED_JOBS);
    let cli = if first_cli.wall <= second_cli.wall { first_cli } else { second_cli };
    seed_rows(&cli, &embedded, &cluster_runs[0], &cluster_runs[1], video.len() as f64)
}

fn seed_rows(cli: &Batch, embedded: &SeedRun, cluster: &SeedRun, compatible: &SeedRun, video: f64) -> Vec<Row> {
    let jobs = SEED_JOBS as f64;
    let cli_label = format!("{:.2} s (2 parallel ffmpeg CLI, best of 2)", cli.wall);
    let slowest_upload = |run: &SeedRun| run.uploads[SEED_JOBS - 1];
    let uploads = |run: &SeedRun| format!("{:.2} s / {:.2} s", run.uploads[0], slowest_upload(run));
    let megabytes = |bytes: f64| bytes / jobs / 1e6;
    let mut rows = Vec::new();
    for (name, run, target) in [
        ("seed workload, cluster: 4 x 57 MB 720p, first upload to 4th email", cluster, ">= 0.65"),
        ("seed workload, cluster --seed-compatible", compatible, ""),
        ("seed workload, embedded", embedded, ""),
    ] {
        rows.push(Row {
            name,
            ours: format!("{:.2} s", run.wall),
            baseline: cli_label.clone(),
            ratio: format!("{:.2}", cli.wall / run.wall),
            target,
        });
    }
    for (name, run, target) in [
        ("seed workload, service CPU per job, cluster against embedded", cluster, "<= 1.3"),
        ("seed workload, service CPU per job, cluster --seed-compatible against embedded", compatible, ""),
    ] {
        rows.push(Row {
            name,
            ours: format!("{:.2} s", run.service_cpu / jobs),
            baseline: format!("{:.2} s (embedded)", embedded.service_cpu / jobs),
            ratio: format!("{:.2}", run.service_cpu / embedded.service_cpu),
            target,
        });
    }
    rows.push(Row {
        name: "seed workload, MongoDB-wire test server CPU per job (cluster; --seed-compatible)",
        ours: format!("{:.2} s; {:.2} s", cluster.database_cpu / jobs, compatible.database_cpu / jobs),
        baseline: format!("{:.2} s (one ffmpeg CLI conversion)", cli.service_cpu / jobs),
        ratio: format!("{:.2}", cluster.database_cpu / cli.service_cpu),
        target: "",
    });
    rows.push(Row {
        name: "seed workload, upload time fastest / slowest (cluster; --seed-compatible)",
        ours: format!("{}; {}", uploads(cluster), uploads(compatible)),
        baseline: format!("{} (embedded)", uploads(embedded)),
        ratio: format!("{:.2}", slowest_upload(cluster) / slowest_upload(embedded)),
        target: "",
    });
    for (name, run) in [
        ("seed workload, GridFS bytes per job written / read, cluster", cluster),
        ("seed workload, GridFS bytes per job written / read, --seed-compatible", compatible),
    ] {
        rows.push(Row {
            name,
            ours: format!("{:.1} MB / {:.1} MB", megabytes(run.gridfs_written), megabytes(run.gridfs_read)),
            baseline: format!("{:.1} MB (the video)", video / 1e6),
            ratio: format!("{:.2}", (run.gridfs_written + run.gridfs_read) / jobs / video),
            target: "",
        });
    }
    rows
}
