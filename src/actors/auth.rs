//! The auth actor: checks logins against the user store and issues session tokens.
//!
//! Password verification is deliberately slow (argon2id), so each login runs in its own task
//! and verifies on the actor's bounded pool of check threads ([`PasswordChecks`]): the actor
//! keeps taking logins while earlier ones verify, and past the pool's queue a login is refused
//! as busy before its user is even looked up. Tokens are validated by the gateway itself with
//! the shared key, without a round trip per request.
//!
//! The actor joins the `auth` process group, so gateways on other nodes find it: requests and
//! replies cross nodes as JSON ([`LoginRequest`], [`LoginReply`]).

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};

use super::NodeContext;
use crate::cluster::protocol::{AuthMsg, decode, encode, groups};
use crate::metrics::ActorMetrics;
use crate::security::password_checks::{CheckError, PasswordChecks};
use crate::security::token::IssuedToken;

pub struct AuthActor;

/// A login, as it crosses nodes.
#[derive(Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// The verdict on a login, as it crosses nodes.
pub type LoginReply = Result<IssuedToken, LoginError>;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Every password check place is taken: try again shortly.
    #[error("too many logins are being checked")]
    Busy,
    #[error("the user store is unavailable: {0}")]
    Unavailable(String),
}

pub struct AuthState {
    ctx: Arc<NodeContext>,
    metrics: ActorMetrics,
    /// Shared with the login tasks in flight, which keep it alive across a restart.
    checks: Arc<PasswordChecks>,
}

impl Actor for AuthActor {
    type Msg = AuthMsg;
    type State = AuthState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<AuthMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<AuthState, ActorProcessingErr> {
        let metrics = ctx.metrics.actor(super::AUTH);
        let threads = ctx.config.login_concurrency as usize;
        let checks = Arc::new(PasswordChecks::start(threads, ctx.config.login_queue as usize)?);
        ractor::pg::join(groups::AUTH.to_owned(), vec![myself.get_cell()]);
        Ok(AuthState { ctx, metrics, checks })
    }

    async fn handle(
        &self,
        _myself: ActorRef<AuthMsg>,
        message: AuthMsg,
        state: &mut AuthState,
    ) -> Result<(), ActorProcessingErr> {
        let AuthMsg::Login(request, reply) = message;
        let handling = state.metrics.begin();
        let metrics = state.metrics.clone();
        let ctx = state.ctx.clone();
        let checks = state.checks.clone();
        tokio::spawn(async move {
            let result: LoginReply = match decode::<LoginRequest>(&request) {
                Ok(request) => login(&ctx, &checks, request.email, request.password).await,
                Err(error) => Err(LoginError::Unavailable(format!("a malformed login request: {error}"))),
            };
            if matches!(result, Err(LoginError::Unavailable(_))) {
                metrics.failed();
            }
            drop(handling);
            let _ = reply.send(encode(&result));
        });
        Ok(())
    }
}

async fn login(
    ctx: &NodeContext,
    checks: &PasswordChecks,
    email: String,
    password: String,
) -> Result<IssuedToken, LoginError> {
    let admitted = checks.admit().map_err(check_error)?;
    let user = ctx.backends.users.find(&email).await.map_err(|e| LoginError::Unavailable(e.to_string()))?;
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let verified = admitted.verify(password, stored).await.map_err(check_error)?;
    let user = user.filter(|_| verified).ok_or(LoginError::InvalidCredentials)?;
    ctx.tokens
        .issue(&user.email, user.admin, user.session_generation)
        .map_err(|e| LoginError::Unavailable(e.to_string()))
}

fn check_error(error: CheckError) -> LoginError {
    match error {
        CheckError::Busy => LoginError::Busy,
        CheckError::Stopped => LoginError::Unavailable(error.to_string()),
    }
}
