//! A thin client of the HTTP API for the command line (`mp3converter cluster status`): it logs
//! in (or takes a token from `MP3C_TOKEN`) and reads JSON, never bypassing the API.

use std::io::{BufRead, Write};

use anyhow::Context;
use serde_json::Value;
use url::Url;

pub struct ApiClient {
    base: Url,
    http: reqwest::Client,
    token: String,
}

impl ApiClient {
    /// A client of the service at `base`, with the token of `MP3C_TOKEN`, else of a login whose
    /// email and password are asked for (email from `MP3C_EMAIL` if set).
    pub async fn connect(base: Url) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        let token = match std::env::var("MP3C_TOKEN") {
            Ok(token) if !token.is_empty() => token,
            _ => login(&http, &base).await?,
        };
        Ok(ApiClient { base, http, token })
    }

    /// GET `path` as JSON; an error response becomes an error with the server's message.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let url = self.base.join(path)?;
        let response =
            self.http.get(url.clone()).bearer_auth(&self.token).send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| format!("GET {url}: not JSON"))?;
        anyhow::ensure!(status.is_success(), "GET {url}: {status}: {}", body["error"]["message"]);
        Ok(body)
    }
}

async fn login(http: &reqwest::Client, base: &Url) -> anyhow::Result<String> {
    let email = match std::env::var("MP3C_EMAIL") {
        Ok(email) if !email.is_empty() => email,
        _ => ask("email: ")?,
    };
    let password = ask("password: ")?;
    let response = http.post(base.join("/login")?).basic_auth(&email, Some(&password)).send().await?;
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status.is_success(), "login refused ({status}): {body}");
    Ok(body)
}

/// One line from standard input, after a prompt on standard error.
fn ask(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
