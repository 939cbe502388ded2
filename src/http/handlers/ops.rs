//! Operations routes: `/healthz` (the process is alive), `/readyz` (its backends answer),
//! `/metrics` (Prometheus), and the test-only `/debug/crash`.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::query_param;
use crate::cluster::protocol::WorkerMsg;
use crate::config::Secret;
use crate::http::credentials::{self, Identity};
use crate::http::error::ApiError;
use crate::http::response::{Response, json, text};
use crate::metrics::Metrics;
use crate::node::names;
use crate::storage::Stores;

pub fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

/// Pings every backend (each under its time limit) and names the ones that do not answer;
/// their errors go to the log, not to the caller.
pub async fn readyz(stores: &Stores) -> Result<Response, ApiError> {
    let down: Vec<&str> = stores.health().await.into_iter().filter(|(_, up)| !up).map(|(backend, _)| backend).collect();
    if down.is_empty() {
        Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ready" })))
    } else {
        Err(ApiError::unavailable(format!("unavailable: {}", down.join(", "))).with_code("not_ready"))
    }
}

/// Renders every metric, to a scraper with the metrics token when one is set; the gauges read
/// from the stores are refreshed on a timer ([`crate::actors::gauges`]), not by the scrape.
pub fn metrics(token: Option<&Secret>, metrics: &Metrics, request: &Request<Incoming>) -> Result<Response, ApiError> {
    if let Some(expected) = token {
        let given = credentials::bearer_value(request.headers())
            .ok_or_else(|| ApiError::unauthorized("Bearer", "missing_token", "the metrics token is required"))?;
        if !constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::unauthorized("Bearer", "invalid_token", "the metrics token is not valid"));
        }
    }
    Ok(text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", metrics.render()))
}

/// Whether `a` and `b` are equal, in a time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

/// Test-only: makes the named worker actor panic, so supervision can be observed, or with
/// `actor=gateway` panics in this very handler. Admins only, and the route exists only when the
/// process runs with `--fault-hooks`.
pub async fn crash(identity: &Identity, request: Request<Incoming>) -> Result<Response, ApiError> {
    identity.admin(request.headers()).await?;
    let actor = query_param(request.uri(), "actor")
        .ok_or_else(|| ApiError::bad_request("missing_actor", "actor is required"))?;
    if actor == names::GATEWAY {
        panic!("fault injection: a request handler panicked");
    }
    let cell = ractor::registry::where_is(actor.clone()).ok_or_else(|| ApiError::not_found("no such actor"))?;
    cell.send_message(WorkerMsg::Crash)
        .map_err(|_| ApiError::bad_request("not_a_worker", "that actor takes no crash order"))?;
    Ok(json(StatusCode::ACCEPTED, &serde_json::json!({ "crashed": actor })))
}
