//! The OpenAPI document (`GET /openapi.json`) stays true: it validates as OpenAPI 3.1 (PyPI's
//! `openapi-spec-validator`), lists exactly the router's routes, and real responses (every
//! error code the other tests provoke, and the successes) are documented statuses whose bodies
//! validate against its schemas (`tests/support/openapi_check.py`). Error codes that only other
//! tests can provoke (outages, limits, timing) are checked where they are provoked, with
//! [`assert_documented_error`].

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use mp3converter::http::routes::{ROUTES, Route, Scope};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, fixture};

/// The routes of a gateway without test-only hooks, as `(method, template)`.
fn router_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .filter(|entry| entry.scope != Scope::FaultHooks)
        .map(|entry| (entry.method.as_str().to_lowercase(), entry.template.to_owned()))
        .collect()
}

fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
    let paths = document["paths"].as_object().unwrap();
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().unwrap();
            methods.iter().filter(|m| item.contains_key(**m)).map(move |m| (m.to_string(), path.clone()))
        })
        .collect()
}

/// Asserts that the document names `code` among the error codes of `method path`'s `status`
/// answer (`path` as sent, e.g. `/jobs/6b0…`; its query is ignored).
pub fn assert_documented_error(method: &str, path: &str, status: u16, code: &str) {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| serde_json::from_str(mp3converter::http::handlers::web::OPENAPI).unwrap());
    let method: Method = method.parse().unwrap();
    let route = Route::of(&method, path.split('?').next().unwrap(), true, false);
    let entry = ROUTES.iter().find(|entry| entry.route == route).unwrap_or_else(|| panic!("no route {method} {path}"));
    let operation = &document["paths"][entry.template][method.as_str().to_lowercase()];
    let mut response = &operation["responses"][status.to_string()];
    if let Some(reference) = response["$ref"].as_str() {
        response = document.pointer(reference.trim_start_matches('#')).unwrap();
    }
    let codes = response.pointer("/content/application~1json/schema/allOf/1/properties/error/properties/code/enum");
    let listed = codes.and_then(Value::as_array).is_some_and(|codes| codes.iter().any(|c| c == code));
    assert!(listed, "the OpenAPI document does not list {code} for {status} of {method} {}", entry.template);
}

#[test]
fn an_undocumented_error_code_is_noticed() {
    assert_documented_error("POST", "/upload", 429, "too_many_jobs");
    assert_documented_error("DELETE", "/jobs/0123456789abcdef01234567", 409, "job_in_progress");
    let undocumented = std::panic::catch_unwind(|| assert_documented_error("POST", "/upload", 429, "too_many_logins"));
    assert!(undocumented.is_err(), "a code the route does not give");
    let unknown_status = std::panic::catch_unwind(|| assert_documented_error("POST", "/login", 418, "teapot"));
    assert!(unknown_status.is_err(), "a status the route does not give");
}

/// Sends requests and records their responses, as the checker reads them.
struct Recorder<'a> {
    app: &'a TestApp,
    records: Vec<Value>,
}

impl Recorder<'_> {
    /// Sends `method path` (with `extra` applied to the request) and records the response under
    /// the operation the router takes it for (a wrong method: one its path has).
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        extra: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Value {
        let route = Route::of(&method, path.split('?').next().unwrap(), true, false);
        let entry = match route {
            Route::WrongMethod(template) => ROUTES.iter().find(|entry| entry.template == template),
            _ => ROUTES.iter().find(|entry| entry.route == route),
        };
        let response = extra(self.app.client.request(method, self.app.url(path))).send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = match &content_type {
            _ if text.is_empty() => Value::Null,
            Some(json) if json.starts_with("application/json") => serde_json::from_str(&text).unwrap(),
            _ => Value::String(text),
        };
        self.records.push(json!({
            "method": entry.map(|entry| entry.method.as_str()),
            "template": entry.map(|entry| entry.template),
            "status": status,
            "content_type": content_type,
            "body": body,
        }));
        body
    }

    /// The status of the last response recorded.
    fn status(&self) -> u64 {
        self.records.last().unwrap()["status"].as_u64().unwrap()
    }

    /// The error codes recorded.
    fn codes(&self) -> BTreeSet<String> {
        self.records.iter().filter_map(|r| r["body"]["error"]["code"].as_str().map(str::to_owned)).collect()
    }
}

fn file(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()))
}

/// Provokes every response the document should describe that a single embedded node gives.
async fn provoke(calls: &mut Recorder<'_>, admin: &str, user: &str) {
    let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
    let bearer = |token: &str| {
        let token = token.to_owned();
        move |request: RequestBuilder| request.bearer_auth(token)
    };
    let none = |request: RequestBuilder| request;

    // The web page, the document, operations.
    let page = calls.call(get.clone(), "/", none).await;
    calls.call(get.clone(), "/api", none).await;
    let asset = page.as_str().unwrap().split('"').find(|part| part.starts_with("/assets/")).unwrap().to_owned();
    calls.call(get.clone(), &asset, none).await;
    calls.call(get.clone(), "/assets/app.0000000000000000.css", none).await;
    calls.call(get.clone(), "/assets/other.0000000000000000.css", none).await;
    let etag = calls.app.client.get(calls.app.url("/openapi.json")).send().await.unwrap().headers()["etag"].clone();
    calls.call(get.clone(), "/openapi.json", move |r| r.header("if-none-match", etag)).await;
    assert_eq!(calls.status(), 304);
    for path in ["/healthz", "/readyz", "/metrics", "/nope"] {
        calls.call(get.clone(), path, none).await;
    }
    calls.call(Method::PUT, "/login", none).await;
    calls.call(get.clone(), "/jobs", |r| r.header("x-padding", "a".repeat(100_000))).await;

    // Sessions (one logged in first, before a wrong guess uses up the account's ceiling).
    let session = calls.app.login("user@example.com", PASSWORD).await;
    calls.call(post.clone(), "/login", none).await;
    calls.call(post.clone(), "/login", |r| r.basic_auth("user@example.com", Some("wrong"))).await;
    calls.call(post.clone(), "/login", |r| r.basic_auth("user@example.com", Some(PASSWORD))).await;
    calls
        .call(post.clone(), "/login", |r| {
            r.basic_auth("user@example.com", Some(PASSWORD)).header("accept", "application/json")
        })
        .await;
    calls.call(post.clone(), "/validate", none).await;
    calls.call(post.clone(), "/validate", bearer("not.a.token")).await;
    let claims = json!({ "username": "user@example.com", "iat": 1, "exp": 2, "admin": false });
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let expired = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap();
    calls.call(post.clone(), "/validate", bearer(&expired)).await;
    calls.call(post.clone(), "/validate", bearer(user)).await;
    // A session of its own ends: a malformed query first, then the logout, then its token again.
    calls.call(post.clone(), "/logout?all=maybe", bearer(&session)).await;
    calls.call(post.clone(), "/logout", bearer(&session)).await;
    assert_eq!(calls.status(), 204);
    calls.call(post.clone(), "/validate", bearer(&session)).await;
    assert_eq!(calls.status(), 401);

    // The account's burst of failed guesses is 1 here: the second wrong guess is refused.
    for _ in 0..2 {
        calls.call(post.clone(), "/login", |r| r.basic_auth("admin@example.com", Some("guess"))).await;
    }
    assert_eq!(calls.status(), 429);

    // Uploads.
    calls
        .call(post.clone(), "/upload", |r| bearer(user)(r).header("content-type", "application/json").body("{}"))
        .await;
    calls
        .call(post.clone(), "/upload", |r| bearer(user)(r).header("content-type", "multipart/form-data").body("x"))
        .await;
    calls.call(post.clone(), "/upload", |r| bearer(user)(r).multipart(file("empty.mp4", Vec::new()))).await;
    calls.call(post.clone(), "/upload", |r| bearer(user)(r).multipart(Form::new().text("comment", "no file"))).await;
    calls.call(post.clone(), "/upload", |r| bearer(user)(r).multipart(file("big.mp4", vec![7; 2_000_000]))).await;
    let clip = std::fs::read(fixture("clip.mp4")).unwrap();
    let accepted = calls.call(post.clone(), "/upload", |r| bearer(user)(r).multipart(file("clip.mp4", clip))).await;
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();

    // Jobs: the events stream runs until the job is done.
    calls.call(get.clone(), &format!("/jobs/{job_id}/events"), bearer(user)).await;
    let job = calls.call(get.clone(), &format!("/jobs/{job_id}"), bearer(user)).await;
    assert_eq!(job["state"], "done", "{job}");
    calls.call(get.clone(), "/jobs", bearer(user)).await;
    calls.call(get.clone(), "/jobs?limit=1", bearer(user)).await;
    calls.call(get.clone(), "/jobs?limit=0", bearer(user)).await;
    calls.call(get.clone(), "/jobs?cursor=zz", bearer(user)).await;
    calls.call(get.clone(), "/jobs/nope", bearer(user)).await;
    calls.call(get.clone(), "/jobs/0123456789abcdef01234567", bearer(user)).await;
    calls.call(get.clone(), "/jobs/0123456789abcdef01234567/events", bearer(user)).await;

    // Downloads.
    let fid = job["mp3_fid"].as_str().unwrap().to_owned();
    calls.call(get.clone(), &format!("/download?fid={fid}"), bearer(user)).await;
    calls.call(get.clone(), &format!("/download?fid={fid}"), |r| bearer(user)(r).header("range", "bytes=0-9")).await;
    calls
        .call(get.clone(), &format!("/download?fid={fid}"), |r| bearer(user)(r).header("range", "bytes=99999999-"))
        .await;
    calls.call(get.clone(), "/download", bearer(user)).await;
    calls.call(get.clone(), "/download?fid=zz", bearer(user)).await;
    calls.call(get.clone(), "/download?fid=0123456789abcdef01234567", bearer(user)).await;

    // Deleting, then the job is gone.
    calls.call(delete.clone(), &format!("/jobs/{job_id}"), bearer(user)).await;
    assert_eq!(calls.status(), 204);
    calls.call(delete.clone(), &format!("/jobs/{job_id}"), bearer(user)).await;

    // Admin routes.
    calls.call(get.clone(), "/cluster", bearer(user)).await;
    calls.call(get.clone(), "/cluster", bearer(admin)).await;
    calls.call(post.clone(), "/cluster/nodes/elsewhere/drain", bearer(user)).await;
    calls.call(post.clone(), "/cluster/nodes/elsewhere/drain", bearer(admin)).await;
    // A panic in a handler (the test-only route, which the document leaves out).
    calls.call(post.clone(), "/debug/crash?actor=gateway", bearer(admin)).await;
    assert_eq!(calls.status(), 500);
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_and_matches_real_responses() {
    let app = TestApp::spawn_with(&[
        "--max-upload-bytes",
        "1500000",
        "--account-failed-login-burst",
        "1",
        "--address-login-burst",
        "100",
        "--fault-hooks",
        "true",
    ])
    .await;
    let admin = app.user_token("admin@example.com", true).await;
    let user = app.user_token("user@example.com", false).await;
    let document: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(documented_routes(&document), router_routes());

    let mut calls = Recorder { app: &app, records: Vec::new() };
    provoke(&mut calls, &admin, &user).await;
    let expected_codes = [
        "bad_limit",
        "bad_query",
        "bad_range",
        "empty_file",
        "exactly_one_file",
        "forbidden",
        "headers_too_large",
        "internal",
        "invalid_credentials",
        "invalid_token",
        "malformed_id",
        "malformed_multipart",
        "method_not_allowed",
        "missing_credentials",
        "missing_fid",
        "missing_token",
        "not_found",
        "not_multipart",
        "session_ended",
        "too_large",
        "too_many_logins",
        "token_expired",
    ];
    assert_eq!(calls.codes(), expected_codes.iter().map(|c| c.to_string()).collect());

    let (passed, report) = run_checker(&document, &calls.records);
    assert!(passed, "{report}");
    assert!(report.contains(" 0 problems"), "{report}");

    // And the checker notices a status the document does not give and a body off its schema.
    let wrong = [
        json!({"method": "GET", "template": "/healthz", "status": 418, "content_type": null, "body": null}),
        json!({"method": "POST", "template": "/login", "status": 401, "content_type": "application/json",
               "body": {"error": {}}}),
    ];
    let (passed, report) = run_checker(&document, &wrong);
    assert!(!passed, "{report}");
    assert!(report.contains("GET /healthz 418: status not documented"), "{report}");
    assert!(report.contains("POST /login 401"), "{report}");
}

/// Runs `tests/support/openapi_check.py` on the document and the records: whether it passed,
/// and what it printed.
fn run_checker(document: &Value, records: &[Value]) -> (bool, String) {
    let work = tempfile::tempdir().unwrap();
    let (document_path, records_path) = (work.path().join("openapi.json"), work.path().join("records.json"));
    std::fs::write(&document_path, document.to_string()).unwrap();
    std::fs::write(&records_path, Value::from(records.to_vec()).to_string()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join(".tools/venv-web/bin/python"))
        .arg(root.join("tests/support/openapi_check.py"))
        .args([&document_path, &records_path])
        .output()
        .expect("the checker runs (scripts/install-deps --test installs openapi-spec-validator)");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), report)
}
