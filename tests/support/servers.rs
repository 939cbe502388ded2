//! Where the test servers are (`scripts/test` starts them), and a fresh namespace on each for
//! one test. Shared by the test binaries and the benchmarks.

use std::time::{Duration, Instant};

use mp3converter::ids::Id;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test, which starts the test servers"))
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
