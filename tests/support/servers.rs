//! Where the test servers are (`scripts/test` starts them), and a fresh namespace on each for
//! one test. Shared by the test binaries and the benchmarks.

use std::time::{Duration, Instant};

use mp3converter::ids::Id;

fn env(name: &str) -> String {
    let how = "run the tests with scripts/test (scripts/test NAME... for some), which starts the servers";
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {how}"))
}

/// A unique name for one test's namespace.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", Id::generate())
}

/// A new, empty MariaDB database.
pub async fn mysql_url() -> String {
    let base = env("MP3C_TEST_MYSQL_URL");
    let name = unique("t");
    let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(1).connect(&base).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
    pool.close().await;
    let server = base.rsplit_once('/').unwrap().0;
    format!("{server}/{name}")
}

/// A new RabbitMQ virtual host, usable by guest.
pub async fn amqp_url() -> String {
    let api = env("MP3C_TEST_RABBITMQ_API");
    let vhost = unique("v");
    let client = reqwest::Client::new();
    let (base, user, password) = split_credentials(&api);
    let created = client.put(format!("{base}/vhosts/{vhost}")).basic_auth(&user, Some(&password)).send().await.unwrap();
    assert!(created.status().is_success(), "creating vhost: {}", created.status());
    let permissions = serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" });
    let granted = client
        .put(format!("{base}/permissions/{vhost}/{user}"))
        .basic_auth(&user, Some(&password))
        .json(&permissions)
        .send()
        .await
        .unwrap();
    assert!(granted.status().is_success(), "granting vhost: {}", granted.status());
    format!("{}/{vhost}", env("MP3C_TEST_AMQP_URL"))
}

/// `http://user:password@host/api` into (`http://host/api`, user, password).
fn split_credentials(url: &str) -> (String, String, String) {
    let parsed = url::Url::parse(url).unwrap();
    let (user, password) = (parsed.username().to_owned(), parsed.password().unwrap_or_default().to_owned());
    let mut bare = parsed.clone();
    bare.set_username("").unwrap();
    bare.set_password(None).unwrap();
    (bare.as_str().trim_end_matches('/').to_owned(), user, password)
}

pub fn mongodb_url() -> String {
    env("MP3C_TEST_MONGODB_URL")
}

pub async fn mongo_client() -> mongodb::Client {
    mongodb::Client::with_uri_str(mongodb_url()).await.unwrap()
}

/// Polls `check` until it returns `Some`, or panics at the deadline.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Servers of one test's own, for tests that stop and restart them

/// A free TCP port on 127.0.0.1 (free when this returns; the caller binds it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn port_open(port: u16) -> Option<()> {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
}

/// Sends SIGTERM to process `pid` (a clean stop request, as a service manager sends).
pub fn send_sigterm(pid: u32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
}

/// Sends SIGTERM to `child` and waits up to 30 s for it to exit.
fn terminate(child: &mut std::process::Child) {
    send_sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn detached(command: &mut std::process::Command) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    command
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the test server starts (scripts/install-deps --test installs it)")
}

/// A MongoDB-wire server (SecantusDB) that keeps its data across restarts.
pub struct OwnMongo {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
}

impl OwnMongo {
    pub async fn start() -> OwnMongo {
        let mut server = OwnMongo { port: free_port(), dir: tempfile::tempdir().unwrap(), process: None };
        server.start_again().await;
        server
    }

    pub async fn start_again(&mut self) {
        let binary = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/venv/bin/secantusd-py");
        let mut command = std::process::Command::new(binary);
        command.args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--storage-path"]);
        command.arg(self.dir.path()).args(["--cache-size", "256M", "--log-level", "WARNING"]);
        self.process = Some(detached(&mut command));
        eventually(Duration::from_secs(60), "SecantusDB to listen", || port_open(self.port)).await;
    }

    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            terminate(&mut process);
        }
    }

    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// The server's process id (0 while stopped).
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, |p| p.id())
    }
}

impl Drop for OwnMongo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A RabbitMQ broker (with its own epmd) that keeps its queues across restarts.
pub struct OwnRabbit {
    amqp_port: u16,
    dist_port: u16,
    epmd_port: u16,
    dir: tempfile::TempDir,
    epmd: std::process::Child,
    server: Option<std::process::Child>,
}

const ERL_ARGS: &str = "-kernel inet_dist_use_interface {127,0,0,1}";

impl OwnRabbit {
    pub async fn start() -> OwnRabbit {
        let dir = tempfile::tempdir().unwrap();
        let (amqp_port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
        let config = format!(
            "listeners.tcp.default = 127.0.0.1:{amqp_port}\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {}\n",
            free_port()
        );
        std::fs::write(dir.path().join("rabbitmq.conf"), config).unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].").unwrap();
        let epmd = detached(
            std::process::Command::new("epmd")
                .args(["-address", "127.0.0.1", "-port", &epmd_port.to_string()])
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .env("ERL_EPMD_PORT", epmd_port.to_string()),
        );
        let mut broker = OwnRabbit { amqp_port, dist_port, epmd_port, dir, epmd, server: None };
        broker.start_again().await;
        broker
    }

    fn env(&self, command: &mut std::process::Command) {
        let dir = self.dir.path();
        command
            .env("HOME", dir)
            .env("RABBITMQ_NODENAME", "rabbit@localhost")
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.amqp_port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbitmq.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", ERL_ARGS)
            .env("RABBITMQ_CTL_ERL_ARGS", ERL_ARGS);
    }

    pub async fn start_again(&mut self) {
        let mut command = std::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        self.env(&mut command);
        self.server = Some(detached(&mut command));
        eventually(Duration::from_secs(90), "RabbitMQ to listen", || port_open(self.amqp_port)).await;
        eventually(Duration::from_secs(90), "RabbitMQ to run", || async {
            let mut check = std::process::Command::new("/usr/lib/rabbitmq/bin/rabbitmq-diagnostics");
            check.args(["-q", "check_running"]);
            self.env(&mut check);
            let status = check.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).status();
            status.ok().filter(|s| s.success()).map(drop)
        })
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let pid = std::fs::read_to_string(self.dir.path().join("rabbitmq.pid")).unwrap_or_default();
            if let Ok(pid) = pid.trim().parse() {
                send_sigterm(pid);
            }
            terminate(&mut server);
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }
}

impl Drop for OwnRabbit {
    fn drop(&mut self) {
        self.stop();
        terminate(&mut self.epmd);
    }
}

/// nginx as a reverse proxy on 127.0.0.1 in front of `upstream` (`host:port`), appending the
/// address it sees to `X-Forwarded-For` as deployments configure it. One process (no master,
/// no daemon), stopped by its pid.
pub struct Nginx {
    pub port: u16,
    _dir: tempfile::TempDir,
    process: std::process::Child,
}

impl Nginx {
    pub async fn start(upstream: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let root = dir.path().display();
        let config = format!(
            "daemon off; master_process off; worker_processes 1; pid {root}/nginx.pid;
             error_log {root}/error.log warn;
             events {{ worker_connections 512; }}
             http {{
               access_log off;
               client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
               fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
               server {{
                 listen 127.0.0.1:{port};
                 location / {{
                   proxy_pass http://{upstream};
                   proxy_set_header Host $host;
                   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                 }}
               }}
             }}"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).unwrap();
        let mut command = std::process::Command::new("/usr/sbin/nginx");
        command.arg("-p").arg(dir.path()).arg("-e").arg(dir.path().join("error.log")).arg("-c").arg(&path);
        let process = detached(&mut command);
        eventually(Duration::from_secs(20), "nginx to listen", || port_open(port)).await;
        Nginx { port, _dir: dir, process }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        terminate(&mut self.process);
    }
}
