//! The actor cluster: several nodes (the real binary, one process each) on 127.0.0.1 forming one
//! actor system, with the test servers as backends.

use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::cluster::{cluster_flags, strs, with};
use crate::helpers::{MailDev, PASSWORD, TestApp, eventually, fixture, free_port, service_log, settled_count};

/// One cluster of nodes on the same backends, sharing a cookie.
pub struct Cluster {
    pub flags: Vec<String>,
    cookie: tempfile::NamedTempFile,
    /// The host nodes advertise: an address, or a name peers must resolve.
    advertise_host: &'static str,
}

/// A node and its cluster port.
pub struct Node {
    pub app: TestApp,
    pub port: u16,
}

impl Cluster {
    pub async fn new(maildev: &MailDev) -> Cluster {
        let cookie = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(cookie.path(), "a shared cluster cookie\n").unwrap();
        // These tests log in often while nodes come and go: no address limit in the way.
        let unlimited = ["--address-logins-per-minute", "10000", "--address-login-burst", "10000"];
        Cluster { flags: with(&cluster_flags(maildev).await, &unlimited), cookie, advertise_host: "127.0.0.1" }
    }

    /// The flags of node `name` with `roles`, joining the nodes on `seeds`.
    fn node_flags(&self, name: &str, roles: &str, port: u16, seeds: &[u16], extra: &[&str]) -> Vec<String> {
        let listen = format!("127.0.0.1:{port}");
        let advertise = format!("{}:{port}", self.advertise_host);
        let seeds: Vec<String> = seeds.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let cookie = self.cookie.path().to_string_lossy().into_owned();
        let mut flags = with(
            &self.flags,
            &["--node-name", name, "--roles", roles, "--cluster-listen", &listen, "--cluster-advertise", &advertise],
        );
        flags = with(&flags, &["--cluster-cookie-file", &cookie]);
        if !seeds.is_empty() {
            flags = with(&flags, &["--cluster-seeds", &seeds.join(",")]);
        }
        with(&flags, extra)
    }

    pub async fn start(&self, name: &str, roles: &str, seeds: &[u16], extra: &[&str]) -> Node {
        let port = free_port();
        let app = TestApp::spawn_with(&strs(&self.node_flags(name, roles, port, seeds, extra))).await;
        Node { app, port }
    }
}

/// GET /cluster as `token`.
async fn cluster_view(gateway: &TestApp, token: &str) -> Value {
    gateway.get_json(token, "/cluster").await
}

/// The state `/cluster` gives node `name` ("self", "connected", "unreachable"), if listed.
fn state_of(view: &Value, name: &str) -> Option<String> {
    let nodes = view["nodes"].as_array()?;
    nodes.iter().find(|n| n["node"] == name).and_then(|n| n["state"].as_str().map(str::to_owned))
}

/// Waits until the gateway sees every one of `names` connected.
async fn wait_connected(gateway: &TestApp, token: &str, names: &[&str]) {
    eventually(Duration::from_secs(30), &format!("{names:?} connected"), || async {
        let view = cluster_view(gateway, token).await;
        names.iter().all(|name| state_of(&view, name).as_deref() == Some("connected")).then_some(())
    })
    .await;
}

/// Logs in through `app` once it can, returning the token. The cluster may still be forming:
/// the mesh forms within a few redials (1, 2, 4, 8, 16 s apart when a loaded peer is slow to
/// answer its first dials), then a password check; a minute is that with room.
pub async fn first_login(app: &TestApp, email: &str) -> String {
    eventually(Duration::from_secs(60), &format!("a first login of {email}"), || async {
        let (status, body) = try_login(app, email).await;
        (status == 200).then_some(body)
    })
    .await
}

/// Logs in through `app`, returning the status and body.
async fn try_login(app: &TestApp, email: &str) -> (u16, String) {
    let response = app.client.post(app.url("/login")).basic_auth(email, Some(PASSWORD)).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn three_nodes_convert_a_job_with_auth_and_work_on_other_nodes() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let auth = cluster.start("auth-1", "auth", &[], &[]).await;
    let worker = cluster.start("worker-1", "converter,notifier", &[auth.port], &[]).await;
    let gateway = cluster.start("gateway-1", "gateway", &[auth.port], &[]).await;
    gateway.app.add_user("ops@example.com", true);
    gateway.app.add_user("user@example.com", false);

    // The gateway has no auth actor of its own: logins go to the auth node.
    let admin = first_login(&gateway.app, "ops@example.com").await;
    // The worker was learnt from the auth node: a full mesh.
    wait_connected(&gateway.app, &admin, &["auth-1", "worker-1"]).await;
    let view = cluster_view(&gateway.app, &admin).await;
    let worker_entry = view["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "worker-1").unwrap().clone();
    assert_eq!(worker_entry["roles"], serde_json::json!(["converter", "notifier"]), "{view}");
    assert_eq!(worker_entry["status"]["version"], env!("CARGO_PKG_VERSION"));
    // Every role's actors are found in their groups from any node (gauges refresh every 5 s).
    eventually(Duration::from_secs(15), "the groups as the gateway sees them", || async {
        let members = |group: &'static str| gateway.app.metric(group);
        let (converters, notifiers, auth) = (
            members("mp3c_cluster_group_members{group=\"converters\"").await,
            members("mp3c_cluster_group_members{group=\"notifier\"").await,
            members("mp3c_cluster_group_members{group=\"auth\"").await,
        );
        (converters == 1.0 && notifiers == 2.0 && auth == 1.0).then_some(())
    })
    .await;

    let token = gateway.app.login("user@example.com", PASSWORD).await;
    let job_id = gateway.app.submit(&token, &fixture("clip.mp4")).await;
    // Followed live: the worker's events reach the gateway through the actor cluster.
    let events = crate::events::EventStream::open(&gateway.app, &token, &job_id).await.rest().await;
    let last = events.last().expect("at least the current state");
    assert_eq!(last.name, "done", "{events:?}");
    let job = gateway.app.job(&token, &job_id).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(last.data["mp3_fid"], job["mp3_fid"]);
    let mp3_fid = job["mp3_fid"].as_str().unwrap();
    let download = gateway.app.client.get(gateway.app.url(&format!("/download?fid={mp3_fid}"))).bearer_auth(&token);
    assert_eq!(download.send().await.unwrap().status(), 200);
    let mails = || async { maildev.all_emails().await.len() };
    assert_eq!(settled_count(Duration::from_secs(30), Duration::from_secs(2), mails).await, 1);
    let converted = worker.app.metric("mp3c_conversions_total{outcome=\"done\"").await;
    assert_eq!(converted, 1.0, "the worker node converted it");

    // A non-admin may not see the cluster.
    let forbidden = gateway.app.client.get(gateway.app.url("/cluster")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);

    // The same as a table on the command line.
    let output = std::process::Command::new(crate::helpers::binary())
        .args(["cluster", "status", "--server", &gateway.app.url("")])
        .env("MP3C_TOKEN", &admin)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}{}", String::from_utf8_lossy(&output.stderr));
    let line = |node: &str| table.lines().find(|line| line.starts_with(node)).unwrap_or_default().to_owned();
    assert!(line("gateway-1").contains("self"), "{table}");
    assert!(line("auth-1").contains("connected") && line("auth-1").contains("auth"), "{table}");
    assert!(line("worker-1").contains("converter,notifier"), "{table}");
}

#[tokio::test]
async fn logins_fail_over_between_auth_nodes_and_come_back() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let mut first = cluster.start("auth-a", "auth", &[], &[]).await;
    let mut second = cluster.start("auth-b", "auth", &[first.port], &[]).await;
    let gateway = cluster.start("gateway-1", "gateway", &[first.port, second.port], &[]).await;
    gateway.app.add_user("ops@example.com", true);
    let admin = first_login(&gateway.app, "ops@example.com").await;
    wait_connected(&gateway.app, &admin, &["auth-a", "auth-b"]).await;

    first.app.kill();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let (status, _) = try_login(&gateway.app, "ops@example.com").await;
        assert_eq!(status, 200, "the other auth node answers");
        // The promise: at most one wait of the 2 s limit for the dead node, then the other
        // answers (its password check takes its own time on a loaded machine).
        let bound = Duration::from_secs(2) + Duration::from_secs(5);
        assert!(started.elapsed() < bound, "one failover at most: {:?}", started.elapsed());
    }

    second.app.kill();
    let refused = gateway.app.client.post(gateway.app.url("/login")).basic_auth("ops@example.com", Some(PASSWORD));
    let refused = refused.send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "auth_unavailable");
    crate::openapi::assert_documented_error("POST", "/login", 503, "auth_unavailable");

    // An auth node comes back: logins work again, the gateway untouched.
    let port = second.port;
    second.app.restart_with(&strs(&cluster.node_flags("auth-b", "auth", port, &[], &[])));
    eventually(Duration::from_secs(40), "logins to work again", || async {
        (try_login(&gateway.app, "ops@example.com").await.0 == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_session_ended_on_one_gateway_is_refused_by_another_within_seconds() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let east = cluster.start("east", "gateway,auth", &[], &[]).await;
    let west = cluster.start("west", "gateway,auth", &[east.port], &[]).await;
    east.app.add_user("roamer@example.com", false);
    let token = first_login(&east.app, "roamer@example.com").await;
    let everywhere = first_login(&east.app, "roamer@example.com").await;
    let status = |node: &Node, token: &str| {
        let request = node.app.client.get(node.app.url("/jobs")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Both gateways honour both tokens (and cache that).
    for token in [&token, &everywhere] {
        assert_eq!((status(&east, token).await, status(&west, token).await), (200, 200));
    }

    // Ended on the west gateway: refused there at once, and on the east one within 5 s.
    let ended = west.app.client.post(west.app.url("/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ended.status(), 204);
    assert_eq!(status(&west, &token).await, 401);
    eventually(Duration::from_secs(5), "the east gateway to refuse the ended session", || async {
        (status(&east, &token).await == 401).then_some(())
    })
    .await;
    assert_eq!(status(&east, &everywhere).await, 200, "another session of the user stands");

    // Every session ended on the east gateway: the west one follows.
    let all = east.app.client.post(east.app.url("/logout?all=true")).bearer_auth(&everywhere).send().await.unwrap();
    assert_eq!(all.status(), 204);
    eventually(Duration::from_secs(5), "the west gateway to refuse every session", || async {
        (status(&west, &everywhere).await == 401).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_node_with_the_wrong_cookie_joins_nothing_and_both_sides_say_why() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let member = cluster.start("member", "gateway,auth", &[], &[]).await;
    let wrong_cookie = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong_cookie.path(), "not the cookie").unwrap();
    let port = free_port();
    let mut flags = cluster.node_flags("intruder", "auth", port, &[member.port], &[]);
    let at = flags.iter().position(|f| f == "--cluster-cookie-file").unwrap();
    flags[at + 1] = wrong_cookie.path().to_string_lossy().into_owned();
    let intruder = TestApp::spawn_with(&strs(&flags)).await;

    member.app.add_user("ops@example.com", true);
    let admin = member.app.login("ops@example.com", PASSWORD).await;
    eventually(Duration::from_secs(30), "both sides to count the refused session", || async {
        let series = "mp3c_cluster_session_events_total{event=\"auth_failed\"";
        (member.app.metric(series).await >= 1.0 && intruder.metric(series).await >= 1.0).then_some(())
    })
    .await;
    for app in [&member.app, &intruder] {
        let log = service_log(&app.data_dir);
        assert!(log.contains("closed before it authenticated"), "{log}");
    }
    let view = cluster_view(&member.app, &admin).await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 1, "the intruder is not a member: {view}");
    let auth_members = member.app.metric("mp3c_cluster_group_members{group=\"auth\"").await;
    assert_eq!(auth_members, 1.0, "only the member's own auth actor");
}

#[tokio::test]
async fn a_malformed_frame_on_the_cluster_port_does_not_stop_the_node() {
    use tokio::io::AsyncWriteExt;
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let node = cluster.start("sturdy", "gateway,auth", &[], &[]).await;
    for garbage in [&b"\x00\x00\x00\x10not a protobuf frame"[..], b"\xff\xff\xff\xff", b"GET / HTTP/1.1\r\n\r\n"] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", node.port)).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let _ = stream.shutdown().await;
    }
    node.app.add_user("ops@example.com", true);
    let admin = node.app.login("ops@example.com", PASSWORD).await;
    assert_eq!(cluster_view(&node.app, &admin).await["nodes"][0]["state"], "self");
    // A real peer still joins.
    let _peer = cluster.start("peer", "auth", &[node.port], &[]).await;
    wait_connected(&node.app, &admin, &["peer"]).await;
}

fn signal(app: &TestApp, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(app.pid() as i32), signal).unwrap();
}

#[tokio::test]
async fn a_dead_or_paused_converter_node_is_noticed_and_its_job_done_by_another() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let lease = ["--lease-seconds", "3"];
    let gateway = cluster.start("gateway-1", "gateway,auth", &[], &lease).await;
    let slow = [&lease[..], &["--fault-hooks", "true", "--fault-convert-delay-ms", "120000"]].concat();
    let mut doomed = cluster.start("worker-a", "converter,notifier", &[gateway.port], &slow).await;
    gateway.app.add_user("ops@example.com", true);
    let admin = gateway.app.login("ops@example.com", PASSWORD).await;
    wait_connected(&gateway.app, &admin, &["worker-a"]).await;
    let job_id = gateway.app.submit(&admin, &fixture("clip.mp4")).await;
    gateway.app.wait_for_state(&admin, &job_id, "converting").await;

    let survivor = cluster.start("worker-b", "converter,notifier", &[gateway.port], &lease).await;
    wait_connected(&gateway.app, &admin, &["worker-b"]).await;
    doomed.app.kill();
    // The promise: a dead peer is unreachable within the heartbeat's timeout (seconds), well
    // inside this deadline.
    eventually(Duration::from_secs(10), "the dead node to show unreachable", || async {
        (state_of(&cluster_view(&gateway.app, &admin).await, "worker-a").as_deref() == Some("unreachable"))
            .then_some(())
    })
    .await;
    let job = gateway.app.finished_job(&admin, &job_id).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_u64()), (Some("done"), Some(2)), "{job}");
    assert_eq!(survivor.app.metric("mp3c_conversions_total{outcome=\"done\"").await, 1.0);
    let mails = || async { maildev.all_emails().await.len() };
    assert_eq!(settled_count(Duration::from_secs(30), Duration::from_secs(2), mails).await, 1);

    // A paused node (TCP stays open) is noticed by the heartbeat, and comes back.
    signal(&survivor.app, nix::sys::signal::Signal::SIGSTOP);
    eventually(Duration::from_secs(10), "the paused node to show unreachable", || async {
        (state_of(&cluster_view(&gateway.app, &admin).await, "worker-b").as_deref() == Some("unreachable"))
            .then_some(())
    })
    .await;
    assert!(gateway.app.metric("mp3c_cluster_session_events_total{event=\"heartbeat_timeout\"").await >= 1.0);
    signal(&survivor.app, nix::sys::signal::Signal::SIGCONT);
    wait_connected(&gateway.app, &admin, &["worker-b"]).await;
}

#[tokio::test]
async fn a_node_drains_by_sigterm_or_by_the_api_finishing_its_job_once() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    // The notifier stays up on the gateway node while the workers come and go.
    let gateway = cluster.start("gateway-1", "gateway,auth,notifier", &[], &[]).await;
    gateway.app.add_user("ops@example.com", true);
    let admin = gateway.app.login("ops@example.com", PASSWORD).await;
    let slow = ["--fault-hooks", "true", "--fault-convert-delay-ms", "3000"];

    let mut by_api = cluster.start("worker-a", "converter", &[gateway.port], &slow).await;
    wait_connected(&gateway.app, &admin, &["worker-a"]).await;
    let first = gateway.app.submit(&admin, &fixture("clip.mp4")).await;
    gateway.app.wait_for_state(&admin, &first, "converting").await;
    let drain = gateway.app.client.post(gateway.app.url("/cluster/nodes/worker-a/drain")).bearer_auth(&admin);
    assert_eq!(drain.send().await.unwrap().status(), 202);
    assert!(by_api.app.exit_status(Duration::from_secs(40)).await.success(), "a drained node exits 0");
    let job = gateway.app.job(&admin, &first).await;
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("done"), Some(1)),
        "finished before the exit: {job}"
    );

    let mut by_signal = cluster.start("worker-b", "converter", &[gateway.port], &slow).await;
    wait_connected(&gateway.app, &admin, &["worker-b"]).await;
    let second = gateway.app.submit(&admin, &fixture("clip.mp4")).await;
    gateway.app.wait_for_state(&admin, &second, "converting").await;
    assert!(by_signal.app.terminate().success());
    let job = gateway.app.job(&admin, &second).await;
    assert_eq!((job["state"].as_str(), job["attempts"].as_u64()), (Some("done"), Some(1)), "{job}");

    let mails = || async { maildev.all_emails().await.len() };
    assert_eq!(settled_count(Duration::from_secs(30), Duration::from_secs(2), mails).await, 2, "one email per job");
    let unknown = gateway.app.client.post(gateway.app.url("/cluster/nodes/nobody/drain")).bearer_auth(&admin);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}

/// A CA made for one test, and certificates for nodes on 127.0.0.1 signed by it.
struct TestCa {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        TestCa { ca, dir: tempfile::tempdir().unwrap() }
    }

    /// The TLS flags of node `name`: its own certificate and key, and `trusted`'s CA.
    fn flags(&self, name: &str, trusted: &TestCa) -> Vec<String> {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let path = |file: &str| self.dir.path().join(format!("{name}.{file}"));
        std::fs::write(path("crt"), cert.pem()).unwrap();
        std::fs::write(path("key"), key.serialize_pem()).unwrap();
        std::fs::write(path("ca"), trusted.ca.pem()).unwrap();
        ["crt", "key", "ca"]
            .into_iter()
            .zip(["--cluster-tls-cert", "--cluster-tls-key", "--cluster-tls-ca"])
            .flat_map(|(file, flag)| [flag.to_owned(), path(file).to_string_lossy().into_owned()])
            .collect()
    }
}

#[tokio::test]
async fn with_mutual_tls_the_cluster_forms_past_idle_connections_and_a_node_without_a_ca_certificate_is_refused() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let (ca, rogue) = (TestCa::new(), TestCa::new());
    let first = cluster.start("tls-a", "gateway,auth", &[], &strs(&ca.flags("tls-a", &ca))).await;
    // Connections that never start their TLS handshake hold nothing up: the next node joins.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(("127.0.0.1", first.port)).await.unwrap());
    }
    let _second = cluster.start("tls-b", "auth", &[first.port], &strs(&ca.flags("tls-b", &ca))).await;
    // Trusts the right CA, but its own certificate comes from another one.
    let intruder = cluster.start("intruder", "auth", &[first.port], &strs(&rogue.flags("intruder", &ca))).await;
    first.app.add_user("ops@example.com", true);
    let admin = first.app.login("ops@example.com", PASSWORD).await;
    wait_connected(&first.app, &admin, &["tls-b"]).await;
    // Its TLS handshake fails, or the session closes before it authenticates: refused either way.
    let series = |event: &str| format!("mp3c_cluster_session_events_total{{event=\"{event}\"");
    let (unauthenticated, undialled) = (series("auth_failed"), series("dial_failed"));
    eventually(Duration::from_secs(40), "the intruder's tries to be refused", || async {
        let refused = intruder.app.metric(&unauthenticated).await + intruder.app.metric(&undialled).await;
        (refused >= 2.0).then_some(())
    })
    .await;
    let view = cluster_view(&first.app, &admin).await;
    assert_eq!(state_of(&view, "intruder"), None, "{view}");
    // The gauges are refreshed every 5 s.
    eventually(Duration::from_secs(15), "tls-a's and tls-b's auth actors, and no third", || async {
        (first.app.metric("mp3c_cluster_group_members{group=\"auth\"").await == 2.0).then_some(())
    })
    .await;
    assert_eq!(state_of(&cluster_view(&first.app, &admin).await, "intruder"), None);
    // The idle connections were closed once their handshake time was up.
    for mut connection in idle {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "an idle connection is still held: {read:?}");
    }
}

#[tokio::test]
async fn cluster_nodes_share_a_data_folder_and_each_keeps_its_own_scratch() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let first = cluster.start("one", "gateway,auth", &[], &[]).await;
    let port = free_port();
    let second =
        TestApp::spawn_beside(&first.app, &strs(&cluster.node_flags("two", "converter", port, &[first.port], &[])))
            .await;
    for app in [&first.app, &second] {
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
    }
    let scratch: Vec<String> = std::fs::read_dir(first.app.data_dir.join("scratch"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(scratch.len(), 2, "one scratch folder per process: {scratch:?}");
    assert!(
        scratch.contains(&format!("one-{}", first.app.pid())) && scratch.contains(&format!("two-{}", second.pid()))
    );
}

#[tokio::test]
async fn a_peer_of_another_protocol_version_is_refused_and_both_sides_say_so() {
    let maildev = MailDev::start().await;
    let cluster = Cluster::new(&maildev).await;
    let current = cluster.start("current", "gateway,auth", &[], &[]).await;
    let newer = ["--fault-hooks", "true", "--fault-protocol-version", "2"];
    let other = cluster.start("newer", "auth", &[current.port], &newer).await;
    eventually(Duration::from_secs(30), "both sides to log the refusal", || async {
        let (ours, theirs) = (service_log(&current.app.data_dir), service_log(&other.app.data_dir));
        let said = |log: &str| log.contains("another protocol version");
        (said(&ours) && said(&theirs)).then_some(())
    })
    .await;
    current.app.add_user("ops@example.com", true);
    let admin = current.app.login("ops@example.com", PASSWORD).await;
    assert_ne!(state_of(&cluster_view(&current.app, &admin).await, "newer").as_deref(), Some("connected"));
}

#[tokio::test]
async fn nodes_that_advertise_a_name_still_form_a_full_mesh() {
    let maildev = MailDev::start().await;
    let cluster = Cluster { advertise_host: "localhost", ..Cluster::new(&maildev).await };
    let hub = cluster.start("hub", "auth", &[], &[]).await;
    // Both know only the hub: they find each other through it, by name.
    let gateway = cluster.start("edge", "gateway,auth", &[hub.port], &[]).await;
    let _worker = cluster.start("worker", "converter", &[hub.port], &[]).await;
    gateway.app.add_user("ops@example.com", true);
    let admin = gateway.app.login("ops@example.com", PASSWORD).await;
    wait_connected(&gateway.app, &admin, &["hub", "worker"]).await;
    // A session closed unauthenticated is judged 5 s later (the election's grace): a count that
    // stays 0 for longer than that is the design's answer.
    let refused =
        || async { gateway.app.metric("mp3c_cluster_session_events_total{event=\"auth_failed\"").await as usize };
    let settled = settled_count(Duration::from_secs(60), Duration::from_secs(8), refused).await;
    let judged: Vec<String> = service_log(&gateway.app.data_dir)
        .lines()
        .filter(|line| line.contains("before it authenticated"))
        .map(str::to_owned)
        .collect();
    assert_eq!(settled, 0, "no session of the mesh is taken for a refused one: {judged:#?}");
}
