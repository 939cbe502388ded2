//! The chart's dashboards and alert rules against the real thing: their JSON checked for what
//! Grafana needs, and every panel query and alert expression run on a real Prometheus (the
//! Debian package) scraping a real two-node cluster that has just done a batch of jobs, and
//! RabbitMQ's `rabbitmq_prometheus` plugin.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mp3converter::storage::rabbitmq::RabbitMailbox;
use mp3converter::storage::{Mailbox, Queue};
use serde_json::{Value, json};

use crate::actor_cluster::{Cluster, first_login};
use crate::helpers::{MailDev, TestApp, eventually, fixture, free_port, service_log};

const DASHBOARDS: [&str; 3] = ["throughput", "actors-and-nodes", "rabbitmq"];
const RULES: &str = "chart/rules/mp3converter.rules.yaml";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn dashboard(name: &str) -> Value {
    let path = repo_file(&format!("chart/dashboards/{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every panel of a dashboard, those inside rows too.
fn panels(board: &Value) -> Vec<&Value> {
    let top = board["panels"].as_array().expect("a dashboard has panels");
    top.iter()
        .flat_map(|panel| std::iter::once(panel).chain(panel["panels"].as_array().into_iter().flatten()))
        .collect()
}

/// The panels that query (all but rows).
fn query_panels(board: &Value) -> Vec<&Value> {
    panels(board).into_iter().filter(|panel| panel["type"] != "row").collect()
}

fn variables(board: &Value) -> Vec<&Value> {
    board["templating"]["list"].as_array().map(|list| list.iter().collect()).unwrap_or_default()
}

/// Every panel query of a dashboard.
fn queries(board: &Value) -> Vec<String> {
    let targets = query_panels(board).into_iter().flat_map(|panel| panel["targets"].as_array().unwrap().iter());
    targets.map(|target| target["expr"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn dashboards_have_unique_ids_a_uid_a_datasource_variable_on_every_query_and_units() {
    let mut uids = HashSet::new();
    for name in DASHBOARDS {
        let board = dashboard(name);
        let uid = board["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty() && uids.insert(uid.to_owned()), "{name}: a uid of its own, got {uid:?}");
        let ids: Vec<u64> = panels(&board).iter().map(|panel| panel["id"].as_u64().unwrap()).collect();
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{name}: panel ids repeat: {ids:?}");

        let vars = variables(&board);
        let datasource = vars.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
        assert_eq!((&datasource["type"], &datasource["query"]), (&json!("datasource"), &json!("prometheus")));
        let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
        for var in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(var["datasource"]["uid"], "${datasource}", "{name}: variable {}", var["name"]);
            assert!(var["definition"].as_str().unwrap().starts_with("label_values("), "{name}: {}", var["name"]);
        }
        if name != "rabbitmq" {
            assert!(names.contains(&"node") && names.contains(&"actor"), "{name}: node and actor variables");
        }

        for panel in query_panels(&board) {
            let title = panel["title"].as_str().unwrap();
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{name}/{title}: the panel's data source");
            let unit = panel["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or_default();
            assert!(!unit.is_empty(), "{name}/{title}: a unit");
            let targets = panel["targets"].as_array().filter(|t| !t.is_empty()).expect("a panel has queries");
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "${datasource}", "{name}/{title}: the query's data source");
                let expr = target["expr"].as_str().unwrap();
                for used in template_variables(expr) {
                    assert!(names.contains(&used.as_str()), "{name}/{title}: ${used} is not a variable");
                }
            }
        }
    }
}

/// The `$name` variables a query uses (Grafana's own `$__…` aside).
fn template_variables(expr: &str) -> Vec<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>())
        .filter(|name| !name.starts_with("__"))
        .collect()
}

/// A query as Prometheus runs it: every variable given a value (all nodes, actors and queues;
/// the test's own virtual host), and rate windows that span the whole test.
fn concrete(expr: &str, vhost: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$node", ".+")
        .replace("$actor", ".+")
        .replace("$queue", ".+")
        .replace("$vhost", vhost)
}

/// The `mp3c_*` and `process_*` metric names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| (word.starts_with("mp3c_") || word.starts_with("process_")) && !word.ends_with('_'))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus

/// `prometheus` (the Debian package) on a free port with a temporary data folder, scraping every
/// 2 s (with 2 s for a scrape, which a loaded machine needs) and evaluating the chart's rules
/// every second; stopped by its pid when dropped.
struct Prometheus {
    url: String,
    process: Child,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Prometheus {
    async fn start(nodes: &[&str], rabbit: &str, vhost: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({
            "global": { "scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s" },
            "rule_files": [repo_file(RULES)],
            "scrape_configs": [
                { "job_name": "mp3converter", "static_configs": [{ "targets": nodes }] },
                { "job_name": "rabbitmq", "static_configs": [{ "targets": [rabbit] }] },
                {
                    "job_name": "rabbitmq-detailed",
                    "metrics_path": "/metrics/detailed",
                    "params": { "family": ["queue_coarse_metrics", "queue_consumer_count"], "vhost": [vhost] },
                    "static_configs": [{ "targets": [rabbit] }]
                }
            ]
        });
        // JSON is YAML: no YAML writer needed.
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let port = free_port();
        let process = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus runs (scripts/install-deps --test installs it)");
        let prometheus =
            Prometheus { url: format!("http://127.0.0.1:{port}"), process, _dir: dir, client: reqwest::Client::new() };
        eventually(Duration::from_secs(30), "Prometheus to be ready", || async {
            let ready = prometheus.client.get(format!("{}/-/ready", prometheus.url)).send().await.ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        prometheus
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self.client.get(format!("{}/api/v1/{path}", self.url)).query(query).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// The samples of an instant query, asserting that it ran without error.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("query", &[("query", expr)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `expr` returns a sample. On a loaded machine a scrape may time out (its
    /// series then go stale until the next one succeeds), so the wait is generous, and a time-out
    /// says what every target's last scrape did.
    async fn has_data(&self, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.query(expr).await.is_empty() {
            if Instant::now() > deadline {
                let targets = self.api("targets", &[]).await["activeTargets"].clone();
                let scrapes: Vec<String> = (targets.as_array().into_iter().flatten())
                    .map(|t| format!("{} {} {}", t["scrapeUrl"], t["health"], t["lastError"]))
                    .collect();
                let measured = match expr.split_once(" == ") {
                    Some((left, _)) => format!("{left} is {:?}", self.query(left).await),
                    None => String::new(),
                };
                panic!("Prometheus never had {expr}; {measured}; the last scrapes: {scrapes:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every rule as Prometheus last evaluated it.
    async fn rules(&self) -> Vec<Value> {
        let groups = self.api("rules", &[]).await["groups"].as_array().cloned().unwrap_or_default();
        groups.iter().flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default()).collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        crate::servers::send_sigterm(self.process.id());
        let _ = self.process.wait();
    }
}

/// Whether some sample of an instant query's result is a number (not NaN: a quantile of no
/// observations).
fn has_number(samples: &[Value]) -> bool {
    samples.iter().any(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite))
}

/// For each alert, a query it is built on that must have data after the batch (its expression
/// without its threshold): an alert whose metrics were misspelt or never exported would
/// otherwise stay quiet forever.
const PROBES: [(&str, &str); 9] = [
    ("Mp3cBacklogGrowing", r#"max by (queue) (deriv(mp3c_queue_depth{queue=~"video|mp3|failures"}[5m]))"#),
    ("Mp3cNoVideoConsumer", r#"sum(mp3c_queue_consumers{queue="video"}) and max(mp3c_queue_depth{queue="video"})"#),
    (
        "Mp3cJobsDeadLettered",
        r#"sum by (queue) (increase(mp3c_queue_deliveries_total{queue=~"video.dlq|mp3.dlq|failures.dlq"}[15m])) > 0"#,
    ),
    (
        "Mp3cFailureRatioHigh",
        r#"sum(rate(mp3c_conversions_total{outcome="failed"}[15m])) / sum(rate(mp3c_conversions_total{outcome=~"done|failed"}[15m]))"#,
    ),
    ("Mp3cActorRestarts", "sum by (node, actor) (increase(mp3c_actor_restarts_total[15m]))"),
    (
        "Mp3cNodeUnreachable",
        r#"up * on (job, instance) group_left (node) group by (job, instance, node) (last_over_time(mp3c_backend_up{backend="jobs"}[10m])) and on () sum(increase(mp3c_cluster_session_events_total{event="heartbeat_timeout"}[10m]))"#,
    ),
    ("Mp3cUploadsRefused", r#"sum by (node) (rate(mp3c_http_requests_total{route="/upload",status="503"}[5m]))"#),
    (
        "Mp3cEmailLate",
        r#"max by (queue) (mp3c_queue_oldest_message_age_seconds{queue=~"mp3|failures"}) and on () sum(increase(mp3c_notifications_total{outcome="sent"}[5m])) > 0"#,
    ),
    ("Mp3cJobRetrying", "max(mp3c_job_retrying_seconds)"),
];

/// Uploads `bytes` as `filename` and returns the job's id and video id.
async fn upload(app: &TestApp, token: &str, filename: &str, bytes: Vec<u8>) -> (String, String) {
    let response = app.upload_bytes(token, filename, bytes).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    (body["job_id"].as_str().unwrap().to_owned(), body["video_fid"].as_str().unwrap().to_owned())
}

/// Holds the gateway's only upload slot with a stalled upload, and sends uploads without a file
/// (400 if one got through, so no job is made) until Prometheus sees the 503s rise.
async fn refuse_uploads(gateway: &TestApp, token: &str, prometheus: &Prometheus) {
    let mut held = crate::limits::start_upload(gateway, token, 1024).await;
    let refused = r#"rate(mp3c_http_requests_total{route="/upload",status="503"}[1m]) > 0"#;
    // Prometheus sees a rate once two scrapes (every 2 s, each allowed 2 s) have come
    // through around a refusal. The wait is generous, within the held upload's 60 s stall limit
    // plus the rate's minute; a failure says what the gateway answered and what Prometheus saw.
    let mut statuses = BTreeMap::<u16, usize>::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let form = reqwest::multipart::Form::new().text("note", "no file");
        let response = gateway.client.post(gateway.url("/upload")).bearer_auth(token).multipart(form);
        let status = response.send().await.unwrap().status();
        assert!(matches!(status.as_u16(), 400 | 503), "{status}");
        *statuses.entry(status.as_u16()).or_default() += 1;
        // On a loaded machine the gateway may read the held upload's head while a probe holds
        // the slot: the held upload is then the one refused (and answered), so it is started
        // again until it holds the slot.
        if status == 400 && was_answered(&held) {
            held = crate::limits::start_upload(gateway, token, 1024).await;
        }
        if !prometheus.query(refused).await.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            // What each side saw, to tell a slot that was not held from scrapes that failed.
            let counter = prometheus.query(r#"mp3c_http_requests_total{route="/upload"}"#).await;
            let targets = prometheus.query("up").await;
            panic!(
                "Prometheus never saw uploads refused with 503; answers {statuses:?}; it has {counter:?}; {targets:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
}

/// Whether the server has answered (or closed) a request sent on `stream`.
fn was_answered(stream: &tokio::net::TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(stream.try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn every_panel_and_alert_runs_on_a_real_prometheus_scraping_a_cluster_after_a_batch() {
    let _heavy = crate::helpers::HEAVY.lock().await;
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let amqp_url = cluster.flags.iter().skip_while(|flag| *flag != "--amqp-url").nth(1).unwrap().clone();
    let vhost = amqp_url.rsplit('/').next().unwrap().to_owned();
    // Conversions held a moment (test hook), so that a job waits in `video` behind them.
    let slow = ["--converters", "1", "--fault-hooks", "true", "--fault-convert-delay-ms", "1500"];
    let alpha = cluster.start("alpha", "auth,converter,notifier", &[], &slow).await;
    // No auth actor on the gateway node: its logins are calls to alpha (RPC latency).
    // One upload at a time on the gateway, so that the test can have an upload refused (503).
    let gateway = [&slow[..], &["--max-concurrent-uploads", "1"]].concat();
    let beta = cluster.start("beta", "gateway,converter", &[alpha.port], &gateway).await;
    let rabbit = std::env::var("MP3C_TEST_RABBITMQ_PROMETHEUS").expect("run scripts/test, which starts RabbitMQ");
    let prometheus = Prometheus::start(&[&alpha.app.address, &beta.app.address], &rabbit, &vhost).await;

    // Every node scraped before the batch: counters seen at zero, so that the batch's first
    // dead letter is an increase.
    prometheus.has_data(r#"count(mp3c_queue_deliveries_total{queue="video.dlq"} == 0) == 2"#).await;
    beta.app.add_user("batch@example.com", false);
    let token = first_login(&beta.app, "batch@example.com").await;
    let clip = std::fs::read(fixture("clip.mp4")).unwrap();
    let mut good = Vec::new();
    for n in 0..3 {
        good.push(upload(&beta.app, &token, &format!("clip-{n}.mp4"), clip.clone()).await.0);
    }
    let (not_media, _) = upload(&beta.app, &token, "notes.mp4", b"a text file, not a video".to_vec()).await;
    // Waiting behind the others, its message is dead-lettered as the broker does after 20
    // unanswered deliveries: the video.dlq worker fails the job.
    let (dead, dead_video) = upload(&beta.app, &token, "dead.mp4", clip).await;
    let message = json!({ "video_fid": dead_video, "mp3_fid": null, "username": "batch@example.com", "job_id": dead });
    let broker = RabbitMailbox::new(amqp_url, 1, Duration::from_secs(1));
    broker.publish(Queue::VideoDead, message.to_string().as_bytes()).await.unwrap();

    for job_id in &good {
        assert_eq!(beta.app.finished_job(&token, job_id).await["state"], "done");
    }
    assert_eq!(beta.app.finished_job(&token, &not_media).await["state"], "failed");
    let dead_job = beta.app.finished_job(&token, &dead).await;
    assert!(dead_job["error"].as_str().unwrap().contains("delivered 20 times"), "{dead_job}");
    // This test's own emails: a cluster sharing the MongoDB of other tests may also mail a notice
    // one of them left behind (by design, any node's sweeper finishes any node's work).
    let ours = || async {
        let all = maildev.all_emails().await;
        let mine: Vec<Value> =
            all.iter().filter(|mail| mail["to"].to_string().contains("batch@example.com")).cloned().collect();
        (all.len(), mine)
    };
    eventually(Duration::from_secs(30), "5 emails", || async { (ours().await.1.len() == 5).then_some(()) }).await;

    refuse_uploads(&beta.app, &token, &prometheus).await;

    // Prometheus has scraped the batch's end, and evaluated every rule since.
    let (sent, mine) = ours().await;
    prometheus.has_data(&format!(r#"sum(mp3c_notifications_total{{outcome="sent"}}) == {sent}"#)).await;
    let subjects: Vec<String> = mine.iter().map(|mail| mail["subject"].to_string()).collect();
    assert_eq!(mine.len(), 5, "one email per job: {subjects:#?}\n{}", service_log(&alpha.app.data_dir));
    prometheus.has_data(r#"sum(mp3c_queue_deliveries_total{queue="video.dlq"}) == 1"#).await;
    prometheus.has_data(&format!(r#"rabbitmq_detailed_queue_consumers{{vhost="{vhost}",queue="video"}} == 2"#)).await;

    // Every variable has values, and every panel query returns a number.
    for name in DASHBOARDS {
        let board = dashboard(name);
        for var in variables(&board).into_iter().filter(|v| v["type"] == "query") {
            let definition = var["definition"].as_str().unwrap();
            let inner = definition.strip_prefix("label_values(").and_then(|d| d.strip_suffix(')')).unwrap();
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let path = format!("label/{}/values", label.trim());
            let values = prometheus.api(&path, &[("match[]", &concrete(selector, &vhost))]).await;
            assert!(values.as_array().is_some_and(|v| !v.is_empty()), "{name}: no values for {definition}");
        }
        for expr in queries(&board) {
            let samples = prometheus.query(&concrete(&expr, &vhost)).await;
            assert!(has_number(&samples), "{name}: no data for {expr}: {samples:?}");
        }
    }

    // Every alert evaluates without error, is probed on data, and the batch trips the three it
    // should: a dead letter at once, 2 failures out of 5 and the 503s (pending: 15 and 5
    // minutes to go). Waited for until the rules have seen the last of it, the 503s.
    let rules = eventually(Duration::from_secs(30), "every rule evaluated since the 503s", || async {
        let rules = prometheus.rules().await;
        let refused = rules.iter().any(|rule| rule["name"] == "Mp3cUploadsRefused" && rule["state"] != "inactive");
        (refused && rules.iter().all(|rule| rule["health"] == "ok")).then_some(rules)
    })
    .await;
    let names: BTreeSet<&str> = rules.iter().map(|rule| rule["name"].as_str().unwrap()).collect();
    assert_eq!(names, PROBES.iter().map(|(name, _)| *name).collect(), "one probe per alert");
    for (alert, probe) in PROBES {
        let samples = prometheus.query(probe).await;
        assert!(has_number(&samples), "{alert}: no data for its probe {probe}");
    }
    let state = |name: &str| rules.iter().find(|rule| rule["name"] == name).unwrap()["state"].as_str().unwrap();
    assert_eq!(state("Mp3cJobsDeadLettered"), "firing");
    assert_eq!(state("Mp3cFailureRatioHigh"), "pending");
    assert_eq!(state("Mp3cUploadsRefused"), "pending");
    for quiet in ["Mp3cNoVideoConsumer", "Mp3cNodeUnreachable", "Mp3cActorRestarts", "Mp3cEmailLate", "Mp3cJobRetrying"]
    {
        assert_eq!(state(quiet), "inactive", "{quiet}");
    }

    // Every metric the dashboards and rules name is in a node's /metrics.
    let exported = metric_names(&(alpha.app.metrics().await + &beta.app.metrics().await));
    let mut named = metric_names(&std::fs::read_to_string(repo_file(RULES)).unwrap());
    for name in DASHBOARDS {
        named.extend(metric_names(
            &std::fs::read_to_string(repo_file(&format!("chart/dashboards/{name}.json"))).unwrap(),
        ));
    }
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(missing.is_empty(), "named in dashboards or rules but not exported: {missing:?}");
}
