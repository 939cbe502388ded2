//! `POST /login` (HTTP Basic to a JWT, through the auth actor) and `POST /validate`.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::ACCEPT;
use hyper::{Request, StatusCode};
use ractor::ActorRef;

use crate::actors::auth::{AuthMsg, LoginError};
use crate::actors::{AUTH, NodeContext};
use crate::http::error::ApiError;
use crate::http::response::{Response, json, text};
use crate::http::{PeerAddress, credentials};
use crate::security::token::IssuedToken;

/// How long a login may wait for the auth actor.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs in with HTTP Basic: rate limits first (per client address and per account, 429),
/// then the auth actor, whose bounded password checks may answer busy (503).
pub async fn login(ctx: &NodeContext, request: Request<Incoming>) -> Result<Response, ApiError> {
    let (email, password) = credentials::basic(request.headers())?;
    let PeerAddress(peer) =
        *request.extensions().get::<PeerAddress>().ok_or_else(|| ApiError::internal("no peer address"))?;
    let attempt = ctx.limits.logins.admit(peer.ip(), &email)?;
    let outcome = check_credentials(email, password).await?;
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
        // The seed's contract: the token itself as the body.
        text(StatusCode::OK, "text/plain; charset=utf-8", issued.token)
    })
}

/// The auth actor's verdict on the credentials; an error when the actor cannot be asked.
async fn check_credentials(email: String, password: String) -> Result<Result<IssuedToken, LoginError>, ApiError> {
    let auth: ActorRef<AuthMsg> = ractor::registry::where_is(AUTH)
        .map(Into::into)
        .ok_or_else(|| ApiError::unavailable("authentication is restarting; try again shortly"))?;
    let outcome = auth
        .call(|reply| AuthMsg::Login { email, password, reply }, Some(LOGIN_TIMEOUT))
        .await
        .map_err(|e| ApiError::unavailable(format!("authentication did not answer: {e}")))?;
    match outcome {
        ractor::rpc::CallResult::Success(result) => Ok(result),
        _ => Err(ApiError::unavailable("authentication did not answer in time")),
    }
}

pub fn validate(ctx: &NodeContext, request: Request<Incoming>) -> Result<Response, ApiError> {
    let claims = credentials::bearer(ctx, request.headers())?;
    Ok(json(StatusCode::OK, &serde_json::to_value(claims).map_err(ApiError::internal)?))
}
