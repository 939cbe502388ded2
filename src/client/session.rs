//! Logging in once: a token per server, cached in the user's config folder
//! (`$XDG_CONFIG_HOME/mp3converter/tokens.json`, else `~/.config/...`; owner-only) and reused
//! while its `exp` claim is ahead and the server's `/validate` takes it. `MP3C_TOKEN` beats it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use reqwest::header::ACCEPT;
use url::Url;

use super::{CALL_TIMEOUT, success};
use crate::prompt::{self, PasswordSource};
use crate::security::private_files::owner_only_dir;

/// A cached token that expires sooner than this is not used (a conversion takes a while).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

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
        && expires_after(&token, SystemTime::now() + EXPIRY_MARGIN)
        && still_valid(http, base, &token).await?
    {
        tracing::debug!(server = %base, "using the cached token");
        return Ok(token);
    }
    self::login(http, base, login).await
}

/// Logs in to `base` and caches the token.
pub async fn login(http: &reqwest::Client, base: &Url, login: &Login) -> anyhow::Result<String> {
    let email = match &login.email {
        Some(email) if !email.is_empty() => email.clone(),
        _ => prompt::line("email: ", "email (set MP3C_EMAIL or pass --email)")?,
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

/// Whether the server at `base` still takes `token` (it may have a new secret).
async fn still_valid(http: &reqwest::Client, base: &Url, token: &str) -> anyhow::Result<bool> {
    let request = http.post(base.join("/validate")?).bearer_auth(token).timeout(CALL_TIMEOUT);
    let response = request.send().await.with_context(|| format!("reaching {base}"))?;
    Ok(response.status().is_success())
}

/// Whether the token's `exp` claim (read, not verified: the server verifies) is after `at`.
fn expires_after(token: &str, at: SystemTime) -> bool {
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|payload| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|claims| claims["exp"].as_u64());
    exp.is_some_and(|exp| UNIX_EPOCH + Duration::from_secs(exp) > at)
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

    fn token_expiring(exp: u64) -> String {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{exp}}}"));
        format!("header.{claims}.signature")
    }

    #[test]
    fn a_token_is_used_only_until_its_expiry() {
        let at = UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(expires_after(&token_expiring(1_001), at));
        assert!(!expires_after(&token_expiring(1_000), at));
        assert!(!expires_after("not a token", at));
        assert!(!expires_after("a.bm90IGpzb24.c", at));
    }
}
