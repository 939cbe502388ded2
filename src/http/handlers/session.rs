//! `POST /login` (HTTP Basic to a JWT, through an auth actor on this node or another),
//! `POST /logout` and `POST /validate`.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::ACCEPT;
use hyper::{Request, StatusCode};
use ractor::ActorRef;
use ractor::rpc::CallResult;

use crate::cluster::members;
use crate::cluster::protocol::{AuthMsg, LoginError, LoginReply, LoginRequest, decode, encode, groups};
use crate::http::Gateway;
use crate::http::client_address::ClientAddress;
use crate::http::credentials::{self, Identity};
use crate::http::error::ApiError;
use crate::http::response::{Response, json, no_content, text};
use crate::metrics::Metrics;

/// How long a login may wait for this node's auth actor (which may queue it behind others).
const LOCAL_LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a login may wait for another node's auth actor before trying the next.
const REMOTE_LOGIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Auth actors a login tries: the first, and one to fail over to.
const LOGIN_TRIES: usize = 2;

/// Logs in with HTTP Basic: rate limits first (per client address and per account, 429),
/// then the auth actor, whose bounded password checks may answer busy (503).
pub async fn login(gateway: &Gateway, metrics: &Metrics, request: Request<Incoming>) -> Result<Response, ApiError> {
    let (email, password) = credentials::basic(request.headers())?;
    let ClientAddress(client) =
        *request.extensions().get::<ClientAddress>().ok_or_else(|| ApiError::internal("no client address"))?;
    let attempt = gateway.limits.logins.admit(client, &email).inspect_err(|_| {
        tracing::info!("a login was refused by the rate limits");
    })?;
    let outcome = check_credentials(metrics, email, password).await?;
    if matches!(outcome, Err(LoginError::InvalidCredentials)) {
        attempt.failed_guess();
    }
    let issued = outcome.map_err(|error| match error {
        LoginError::InvalidCredentials => ApiError::unauthorized("Basic", "invalid_credentials", "invalid credentials"),
        LoginError::Busy => ApiError::busy("too many logins are being checked; try again shortly"),
        LoginError::Unavailable(why) => {
            tracing::warn!(%why, "login failed on the user store");
            ApiError::unavailable("the user store is unavailable; try again shortly")
        }
    })?;
    let wants_json = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    Ok(if wants_json {
        json(
            StatusCode::OK,
            &serde_json::json!({ "token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in }),
        )
    } else {
        // The legacy design's contract: the token itself as the body.
        text(StatusCode::OK, "text/plain; charset=utf-8", issued.token)
    })
}

/// An auth actor's verdict on the credentials: this node's, else another node's in turn, with
/// one failover; 503 `auth_unavailable` when none answers.
async fn check_credentials(metrics: &Metrics, email: String, password: String) -> Result<LoginReply, ApiError> {
    let request = encode(&LoginRequest { email, password });
    for cell in members::in_order(groups::AUTH).into_iter().take(LOGIN_TRIES) {
        let local = cell.get_id().is_local();
        let timeout = if local { LOCAL_LOGIN_TIMEOUT } else { REMOTE_LOGIN_TIMEOUT };
        let auth: ActorRef<AuthMsg> = cell.into();
        let started = std::time::Instant::now();
        let asked = auth.call(|reply| AuthMsg::Login(request.clone(), reply), Some(timeout)).await;
        if !local {
            metrics.cluster.rpc_seconds.with_label_values(&["auth"]).observe(started.elapsed().as_secs_f64());
        }
        match asked.map(|answer| answer.map(|bytes| decode::<LoginReply>(&bytes))) {
            Ok(CallResult::Success(Ok(reply))) => return Ok(reply),
            other => tracing::warn!(local, answer = ?other.map(|_| ()), "an auth actor did not answer; trying another"),
        }
    }
    Err(ApiError::unavailable("no authentication service answers; try again shortly").with_code("auth_unavailable"))
}

pub async fn validate(identity: &Identity, request: Request<Incoming>) -> Result<Response, ApiError> {
    let claims = identity.bearer(request.headers()).await?;
    Ok(json(StatusCode::OK, &serde_json::to_value(claims).map_err(ApiError::internal)?))
}

/// Ends the caller's session (`?all=true`: every session of the user, on every node). 204; the
/// token is refused from then on, here at once and on other nodes within seconds
/// ([`crate::http::sessions`]).
pub async fn logout(identity: &Identity, request: Request<Incoming>) -> Result<Response, ApiError> {
    let claims = identity.bearer(request.headers()).await?;
    let everywhere = match request.uri().query().unwrap_or_default() {
        "" | "all=false" => false,
        "all=true" => true,
        _ => return Err(ApiError::bad_request("bad_query", "the only parameter is all=true or all=false")),
    };
    identity.sessions.end(&claims, everywhere).await?;
    tracing::info!(everywhere, "a session was ended by its user");
    Ok(no_content())
}
