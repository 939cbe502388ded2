//! A thin client of the HTTP API for the command line, never bypassing it: a session
//! ([`session`]: login and the token cache), JSON calls and the server's error messages (here),
//! uploads and downloads with progress ([`upload`], [`download`]), following a job
//! ([`follow`], riding out a server that is briefly away: [`retry`]), and the `convert` command that puts them together ([`convert`]).

pub mod convert;
pub mod download;
mod follow;
mod progress;
mod retry;
mod session;
mod upload;

use anyhow::Context;
use serde_json::Value;
use url::Url;

pub use session::Login;

/// Longest wait for a server's answer to an ordinary call (transfers are timed by their reads).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest silence inside a response body: job event streams send a comment every 15 s.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub struct ApiClient {
    base: Url,
    http: reqwest::Client,
    token: String,
}

impl ApiClient {
    /// A client of the service at `base`, with the token of `MP3C_TOKEN`, else the cached token
    /// for `base` if the server still takes it, else a new login (whose token is cached).
    pub async fn connect(base: Url, login: Login) -> anyhow::Result<ApiClient> {
        let http = http_client()?;
        let token = session::token(&http, &base, &login).await?;
        Ok(ApiClient { base, http, token })
    }

    /// Logs in to `base` whatever is cached, and caches the new token.
    pub async fn login_again(base: Url, login: Login) -> anyhow::Result<()> {
        session::login(&http_client()?, &base, &login).await.map(drop)
    }

    /// Ends the session cached for `base` (`everywhere`: every session of its user); false if
    /// none was cached.
    pub async fn logout(base: Url, everywhere: bool) -> anyhow::Result<bool> {
        session::logout(&http_client()?, &base, everywhere).await
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base.join(path).with_context(|| format!("{path} on {}", self.base))
    }

    /// GET `path` with the token.
    fn get(&self, path: &str) -> anyhow::Result<reqwest::RequestBuilder> {
        Ok(self.http.get(self.url(path)?).bearer_auth(&self.token))
    }

    /// GET `path` as JSON; an error response becomes an error with the server's message.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let response = self.get(path)?.timeout(CALL_TIMEOUT).send().await.with_context(|| format!("GET {path}"))?;
        let response = success(response).await.with_context(|| format!("GET {path}"))?;
        response.json().await.with_context(|| format!("GET {path}: not JSON"))
    }

    /// Every job of the caller, newest first (every page).
    pub async fn jobs(&self) -> anyhow::Result<Vec<Value>> {
        let mut jobs = Vec::new();
        let mut path = "/jobs?limit=100".to_owned();
        loop {
            let mut page = self.get_json(&path).await?;
            jobs.extend(page["jobs"].as_array_mut().map(std::mem::take).unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/jobs?limit=100&cursor={cursor}"),
                None => return Ok(jobs),
            }
        }
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
    builder.read_timeout(READ_TIMEOUT).build().context("building the HTTP client")
}

/// An error the server answered with: its status, code and message (and what to do about a
/// login that ran out).
#[derive(Debug, thiserror::Error)]
#[error("{message} ({status}, {code}){}", login_hint(.status, .code))]
pub struct ServerError {
    pub status: reqwest::StatusCode,
    pub code: String,
    pub message: String,
}

impl ServerError {
    /// The error in an unsuccessful response (`{"error":{"code","message"}}`).
    async fn read(response: reqwest::Response) -> ServerError {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        let text = |value: &Value, otherwise: &str| value.as_str().unwrap_or(otherwise).to_owned();
        ServerError {
            status,
            code: text(&body["error"]["code"], "unknown"),
            message: text(&body["error"]["message"], status.canonical_reason().unwrap_or("error")),
        }
    }
}

/// What to do when the server no longer takes the token (it expired during a long run, or the
/// server has a new secret).
fn login_hint(status: &reqwest::StatusCode, code: &str) -> &'static str {
    let login_lost = *status == reqwest::StatusCode::UNAUTHORIZED && matches!(code, "token_expired" | "invalid_token");
    if login_lost { ": run `mp3converter login`, then run this command again for what failed" } else { "" }
}

/// The response if it is a success, else the server's error.
async fn success(response: reqwest::Response) -> Result<reqwest::Response, ServerError> {
    if response.status().is_success() { Ok(response) } else { Err(ServerError::read(response).await) }
}
