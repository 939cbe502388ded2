//! Logging in and the tokens that come of it: every bad credential gets a 401 with a JSON error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PASSWORD, TestApp};

pub fn forge(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

async fn assert_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn login_gives_a_token_as_text_or_json_and_validate_returns_its_claims() {
    let app = TestApp::spawn().await;
    app.add_user("bob@example.com", false);

    let token = app.login("bob@example.com", PASSWORD).await;
    let response = app.client.post(app.url("/validate")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["username"], "bob@example.com");
    assert_eq!(claims["admin"], false);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 24 * 3600);

    let response = app
        .client
        .post(app.url("/login"))
        .basic_auth("bob@example.com", Some(PASSWORD))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 24 * 3600);
    assert!(body["token"].as_str().unwrap().starts_with("eyJ"));
}

#[tokio::test]
async fn only_admins_carry_the_admin_claim() {
    let app = TestApp::spawn().await;
    let token = app.user_token("root@example.com", true).await;
    let claims: Value =
        app.client.post(app.url("/validate")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(claims["admin"], true);
}

#[tokio::test]
async fn bad_logins_get_401() {
    let app = TestApp::spawn().await;
    app.add_user("carol@example.com", false);
    let login = |user: &'static str, password: &'static str| {
        app.client.post(app.url("/login")).basic_auth(user, Some(password)).send()
    };

    assert_error(login("carol@example.com", "wrong password").await.unwrap(), 401, "invalid_credentials").await;
    assert_error(login("nobody@example.com", PASSWORD).await.unwrap(), 401, "invalid_credentials").await;
    assert_error(login("' OR 1=1 --", PASSWORD).await.unwrap(), 401, "invalid_credentials").await;
    assert_error(login("carol@example.com' --", "x").await.unwrap(), 401, "invalid_credentials").await;
    let response = app.client.post(app.url("/login")).send().await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"mp3converter\"");
    assert_error(response, 401, "missing_credentials").await;
    let garbled = app.client.post(app.url("/login")).header("authorization", "Basic %%%").send().await.unwrap();
    assert_error(garbled, 401, "missing_credentials").await;
    // And the real user still gets in.
    app.login("carol@example.com", PASSWORD).await;
}

#[tokio::test]
async fn bad_tokens_get_401_everywhere() {
    let app = TestApp::spawn().await;
    let good = app.user_token("dave@example.com", false).await;
    let fresh = json!({ "username": "dave@example.com", "iat": now(), "exp": now() + 3600, "admin": true });
    let expired = forge(
        &json!({ "username": "dave@example.com", "iat": now() - 7200, "exp": now() - 3600, "admin": false }),
        JWT_SECRET,
    );
    let wrong_key = forge(&fresh, "some other secret");
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(fresh.to_string()), parts[2]);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(fresh.to_string())
    );

    let cases = [
        (None, "missing_token"),
        (Some("not-a-jwt".to_owned()), "invalid_token"),
        (Some(expired), "token_expired"),
        (Some(wrong_key), "invalid_token"),
        (Some(tampered), "invalid_token"),
        (Some(unsigned), "invalid_token"),
    ];
    for (token, code) in cases {
        for (method, path) in [
            ("POST", "/validate"),
            ("POST", "/upload"),
            ("GET", "/download?fid=0123456789abcdef01234567"),
            ("GET", "/jobs"),
        ] {
            let mut request = app.client.request(method.parse().unwrap(), app.url(path));
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {code}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"mp3converter\"");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn user_add_refuses_duplicates_short_passwords_and_non_addresses() {
    let app = TestApp::spawn().await;
    app.add_user("erin@example.com", false);
    let run = |email: &str, password: &str| {
        let output = app.user_command(&["add", email, "--password-stdin"], &format!("{password}\n"));
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (ok, stderr) = run("erin@example.com", PASSWORD);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");
    let (ok, stderr) = run("frank@example.com", "short");
    assert!(!ok && stderr.contains("at least 8"), "{stderr}");
    let (ok, stderr) = run("'; DROP TABLE user; --", PASSWORD);
    assert!(!ok && stderr.contains("not an email address"), "{stderr}");
    // The table survived and the first user still logs in.
    app.login("erin@example.com", PASSWORD).await;

    // Only an argon2id hash is stored, never the password.
    let mut stored = Vec::new();
    for file in ["mp3converter.db", "mp3converter.db-wal"] {
        stored.extend(std::fs::read(app.data_dir.join(file)).unwrap_or_default());
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(!stored.contains(PASSWORD));
}

/// The status and error code of `POST /validate` with `token`.
async fn validate(app: &TestApp, token: &str) -> (u16, String) {
    let response = app.client.post(app.url("/validate")).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
}

async fn logout(app: &TestApp, token: &str, path: &str) -> u16 {
    app.client.post(app.url(path)).bearer_auth(token).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn logout_ends_this_session_or_every_session_of_the_user() {
    let app = TestApp::spawn().await;
    app.add_user("lou@example.com", false);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.login("lou@example.com", PASSWORD).await);
    }
    // A token of the seed's shape (its auth service's claims, no session): honoured until the
    // user's sessions all end.
    let seeds =
        forge(&json!({ "username": "lou@example.com", "exp": now() + 600, "iat": now(), "admin": false }), JWT_SECRET);
    assert_eq!(validate(&app, &seeds).await, (200, String::new()));

    assert_eq!(logout(&app, &sessions[0], "/logout").await, 204);
    assert_eq!(validate(&app, &sessions[0]).await, (401, "session_ended".to_owned()));
    assert_eq!(logout(&app, &sessions[0], "/logout").await, 401, "an ended session cannot log out again");
    assert_eq!(validate(&app, &sessions[1]).await, (200, String::new()), "only that session ended");

    assert_eq!(logout(&app, &sessions[1], "/logout?all=true").await, 204);
    for token in [&sessions[1], &sessions[2], &seeds] {
        assert_eq!(validate(&app, token).await, (401, "session_ended".to_owned()));
    }
    // A new login is a new session.
    let fresh = app.login("lou@example.com", PASSWORD).await;
    assert_eq!(validate(&app, &fresh).await, (200, String::new()));
    let listed = app.client.get(app.url("/jobs")).bearer_auth(&fresh).send().await.unwrap();
    assert_eq!(listed.status(), 200);
}
