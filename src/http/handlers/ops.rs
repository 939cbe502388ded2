//! Operations routes: `/healthz` (the process is alive), `/readyz` (its backends answer),
//! `/metrics` (Prometheus), and the test-only `/debug/crash`.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::query_param;
use crate::actors::worker::WorkerMsg;
use crate::actors::{GATEWAY, NodeContext};
use crate::http::credentials;
use crate::http::error::ApiError;
use crate::http::response::{Response, json, text};
use crate::storage::Queue;

pub fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

pub async fn readyz(ctx: &NodeContext) -> Result<Response, ApiError> {
    let backends = &ctx.backends;
    let checks = [
        ("users", backends.users.ping().await),
        ("blobs", backends.blobs.ping().await),
        ("mailbox", backends.mailbox.ping().await),
    ];
    let failing: Vec<String> =
        checks.into_iter().filter_map(|(name, result)| result.err().map(|e| format!("{name}: {e}"))).collect();
    if failing.is_empty() {
        Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ready" })))
    } else {
        Err(ApiError::unavailable(format!("not ready: {}", failing.join("; "))))
    }
}

/// Refreshes the gauges that are read from the stores, then renders every metric.
pub async fn metrics(ctx: &NodeContext) -> Result<Response, ApiError> {
    if let Ok(counts) = ctx.backends.jobs.count_by_state().await {
        counts.into_iter().for_each(|(state, count)| ctx.metrics.set_jobs(state, count));
    }
    for queue in Queue::WORK.into_iter().chain(Queue::WORK.into_iter().filter_map(Queue::dead_letters)) {
        if let Ok(depth) = ctx.backends.mailbox.depth(queue).await {
            ctx.metrics.set_queue_depth(queue, depth);
        }
    }
    Ok(text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", ctx.metrics.render()))
}

/// Test-only: makes the named worker actor panic, so supervision can be observed, or with
/// `actor=gateway` panics in this very handler. Admins only, and the route exists only when the
/// process runs with `--fault-hooks`.
pub fn crash(ctx: &NodeContext, request: Request<Incoming>) -> Result<Response, ApiError> {
    let claims = credentials::bearer(ctx, request.headers())?;
    if !claims.admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "admins only"));
    }
    let actor = query_param(request.uri(), "actor")
        .ok_or_else(|| ApiError::bad_request("missing_actor", "actor is required"))?;
    if actor == GATEWAY {
        panic!("fault injection: a request handler panicked");
    }
    let cell = ractor::registry::where_is(actor.clone()).ok_or_else(|| ApiError::not_found("no such actor"))?;
    cell.send_message(WorkerMsg::Crash)
        .map_err(|_| ApiError::bad_request("not_a_worker", "that actor takes no crash order"))?;
    Ok(json(StatusCode::ACCEPTED, &serde_json::json!({ "crashed": actor })))
}
