//! `POST /login` (HTTP Basic to a JWT, through the auth actor) and `POST /validate`.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::ACCEPT;
use hyper::{Request, StatusCode};
use ractor::ActorRef;

use crate::actors::auth::{AuthMsg, LoginError};
use crate::actors::{AUTH, NodeContext};
use crate::http::credentials;
use crate::http::error::ApiError;
use crate::http::response::{Response, json, text};

/// How long a login may wait for the auth actor.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn login(_ctx: &NodeContext, request: Request<Incoming>) -> Result<Response, ApiError> {
    let (email, password) = credentials::basic(request.headers())?;
    let auth: ActorRef<AuthMsg> = ractor::registry::where_is(AUTH)
        .map(Into::into)
        .ok_or_else(|| ApiError::unavailable("authentication is restarting; try again shortly"))?;
    let outcome = auth
        .call(|reply| AuthMsg::Login { email, password, reply }, Some(LOGIN_TIMEOUT))
        .await
        .map_err(|e| ApiError::unavailable(format!("authentication did not answer: {e}")))?;
    let issued = match outcome {
        ractor::rpc::CallResult::Success(result) => result,
        _ => {
            return Err(ApiError::unavailable("authentication did not answer in time"));
        }
    };
    let issued = issued.map_err(|error| match error {
        LoginError::InvalidCredentials => ApiError::unauthorized("Basic", "invalid_credentials", "invalid credentials"),
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

pub fn validate(ctx: &NodeContext, request: Request<Incoming>) -> Result<Response, ApiError> {
    let claims = credentials::bearer(ctx, request.headers())?;
    Ok(json(StatusCode::OK, &serde_json::to_value(claims).map_err(ApiError::internal)?))
}
