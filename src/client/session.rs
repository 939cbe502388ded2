//! Logging in once: a token per server, cached in the user's config folder
//! (`$XDG_CONFIG_HOME/mp3converter/tokens.json`, else `~/.config/...`; owner-only) and reused
//! while it is the asked user's (its `username` claim, when an email is given), has long
//! enough to run (its `exp` claim) and the server's `/validate` takes it. `MP3C_TOKEN` beats it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use reqwest::header::ACCEPT;
use serde::Deserialize;
use url::Url;

use super::{CALL_TIMEOUT, success};
use crate::prompt::{self, PasswordSource};
use crate::security::private_files::owner_only_dir;

/// A cached token with less time left than this is not used: a batch of conversions takes a
/// while, and a token expiring in the middle fails the files after it. (Less for a server whose
/// tokens live under two hours: half their life.)
const EXPIRY_MARGIN: Duration = Duration::from_secs(3600);

/// How to log in when there is no usable token.
#[derive(Clone, Debug)]
pub struct Login {
    /// The email; asked for on the terminal when absent.
    pub email: Option<String>,
    pub password: PasswordSource,
}

/// Cached tokens by server base URL.
type Tokens = BTreeMap<String, String>;

/// A token for `base`: `MP3C_TOKEN`, else a cached one the server still takes, else a login.
pub async fn token(http: &reqwest::Client, base: &Url, login: &Login) -> anyhow::Result<String> {
    if let Ok(token) = std::env::var("MP3C_TOKEN")
        && !token.is_empty()
    {
        return Ok(token);
    }
    if let Some(token) = read_cache()?.remove(base.as_str())
        && Claims::of(&token).is_some_and(|claims| claims.reusable(login.email.as_deref(), SystemTime::now()))
        && still_valid(http, base, &token).await?
    {
        tracing::debug!(server = %base, "using the cached token");
        return Ok(token);
    }
    self::login(http, base, login).await
}

/// Logs in to `base` and caches the token.
pub async fn login(http: &reqwest::Client, base: &Url, login: &Login) -> anyhow::Result<String> {
    // The server first: nobody should type a password for a server that is not there.
    reachable(http, base).await?;
    let email = match &login.email {
        Some(email) if !email.is_empty() => email.clone(),
        _ => prompt::line("email: ", "email", "set MP3C_EMAIL or pass --email")?,
    };
    let password = prompt::password(login.password, &format!("password for {email}: "))?;
    let request =
        http.post(base.join("/login")?).basic_auth(&email, Some(&password)).header(ACCEPT, "application/json");
    let response = request.timeout(CALL_TIMEOUT).send().await.with_context(|| format!("logging in to {base}"))?;
    let answer: serde_json::Value =
        success(response).await.context("login refused")?.json().await.context("login: not JSON")?;
    let token = answer["token"].as_str().context("login: no token in the answer")?.to_owned();
    let mut tokens = read_cache()?;
    tokens.insert(base.to_string(), token.clone());
    write_cache(&tokens)?;
    Ok(token)
}

/// Ends the cached session with `base` (`everywhere`: every session of its user) and forgets
/// the token; true if there was one to end. A token the server no longer takes is forgotten all
/// the same.
pub async fn logout(http: &reqwest::Client, base: &Url, everywhere: bool) -> anyhow::Result<bool> {
    let mut tokens = read_cache()?;
    let Some(token) = tokens.remove(base.as_str()) else { return Ok(false) };
    let url = base.join(if everywhere { "/logout?all=true" } else { "/logout" })?;
    let response = http.post(url).bearer_auth(&token).timeout(CALL_TIMEOUT).send().await;
    let response = response.with_context(|| format!("reaching {base}"))?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        success(response).await.context("logout refused")?;
    }
    write_cache(&tokens)?;
    Ok(true)
}

/// An error that says so when nothing answers at `base`.
async fn reachable(http: &reqwest::Client, base: &Url) -> anyhow::Result<()> {
    let request = http.get(base.join("/healthz")?).timeout(CALL_TIMEOUT);
    request.send().await.map(drop).with_context(|| {
        format!("cannot reach the service at {base} (is it running? --server or MP3C_SERVER says where it is)")
    })
}

/// Whether the server at `base` still takes `token` (it may have a new secret).
async fn still_valid(http: &reqwest::Client, base: &Url, token: &str) -> anyhow::Result<bool> {
    let request = http.post(base.join("/validate")?).bearer_auth(token).timeout(CALL_TIMEOUT);
    let response = request.send().await.with_context(|| format!("reaching {base}"))?;
    Ok(response.status().is_success())
}

/// What the client reads of a token's claims (not verified: the server verifies).
#[derive(Debug, Deserialize)]
struct Claims {
    username: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

impl Claims {
    /// The claims of a JWT, if it has readable ones.
    fn of(token: &str) -> Option<Claims> {
        let payload = token.split('.').nth(1)?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// Whether a cached token with these claims may be used `now` by whoever asks as `email`
    /// (anyone when None): it is theirs, and it has long enough left.
    fn reusable(&self, email: Option<&str>, now: SystemTime) -> bool {
        let theirs = email.is_none_or(|email| email.is_empty() || email.eq_ignore_ascii_case(&self.username));
        let life = self.iat.map_or(EXPIRY_MARGIN * 2, |iat| Duration::from_secs(self.exp.saturating_sub(iat)));
        theirs && UNIX_EPOCH + Duration::from_secs(self.exp) > now + EXPIRY_MARGIN.min(life / 2)
    }
}

/// The folder of the cache: `$XDG_CONFIG_HOME/mp3converter`, else `$HOME/.config/mp3converter`.
fn cache_dir() -> anyhow::Result<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    let config = non_empty("XDG_CONFIG_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".config")))
        .context("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the login")?;
    Ok(config.join("mp3converter"))
}

fn read_cache() -> anyhow::Result<Tokens> {
    let path = cache_dir()?.join("tokens.json");
    match std::fs::read(&path) {
        // A damaged cache is only a lost login.
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_default()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::new()),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces the cache at once (a new owner-only file renamed over the old one).
fn write_cache(tokens: &Tokens) -> anyhow::Result<()> {
    let dir = cache_dir()?;
    owner_only_dir(&dir)?;
    let mut file = tempfile::NamedTempFile::new_in(&dir).context("creating the token cache")?;
    serde_json::to_writer(&mut file, tokens)?;
    let path = dir.join("tokens.json");
    file.persist(&path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600;

    fn token(username: &str, iat: u64, exp: u64) -> String {
        let json = format!("{{\"username\":\"{username}\",\"iat\":{iat},\"exp\":{exp}}}");
        format!("header.{}.signature", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    fn reusable(token: &str, email: Option<&str>, now: u64) -> bool {
        Claims::of(token).is_some_and(|claims| claims.reusable(email, UNIX_EPOCH + Duration::from_secs(now)))
    }

    #[test]
    fn a_token_is_reused_only_with_an_hour_left() {
        let day_token = token("a@b.c", 0, DAY);
        assert!(reusable(&day_token, None, DAY - 3601));
        assert!(!reusable(&day_token, None, DAY - 3600));
        assert!(!reusable(&day_token, None, DAY - 60), "a token with a minute left fails a long batch");
        // A server whose tokens live 20 minutes: reused for their first half.
        let short = token("a@b.c", 0, 1200);
        assert!(reusable(&short, None, 599));
        assert!(!reusable(&short, None, 600));
        assert!(!reusable("not a token", None, 0));
        assert!(!reusable("a.bm90IGpzb24.c", None, 0));
    }

    #[test]
    fn a_token_is_reused_only_by_its_user() {
        let alices = token("alice@example.com", 0, DAY);
        assert!(reusable(&alices, Some("alice@example.com"), 0));
        assert!(reusable(&alices, Some("Alice@Example.com"), 0));
        assert!(reusable(&alices, None, 0), "no email asked: whoever logged in last");
        assert!(!reusable(&alices, Some("bob@example.com"), 0));
    }
}
