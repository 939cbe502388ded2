//! The auth actor: checks logins against the user store and issues session tokens.
//!
//! Password verification is deliberately slow (argon2id), so each login runs on a blocking
//! thread in its own task: the actor keeps taking logins while earlier ones verify. Tokens are
//! validated by the gateway itself with the shared key, without a round trip per request.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::NodeContext;
use crate::metrics::ActorMetrics;
use crate::security::password;
use crate::security::token::IssuedToken;

pub struct AuthActor;

pub enum AuthMsg {
    Login { email: String, password: String, reply: RpcReplyPort<Result<IssuedToken, LoginError>> },
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the user store is unavailable: {0}")]
    Unavailable(String),
}

pub struct AuthState {
    ctx: Arc<NodeContext>,
    metrics: ActorMetrics,
}

impl Actor for AuthActor {
    type Msg = AuthMsg;
    type State = AuthState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        _myself: ActorRef<AuthMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<AuthState, ActorProcessingErr> {
        let metrics = ctx.metrics.actor(super::AUTH);
        Ok(AuthState { ctx, metrics })
    }

    async fn handle(
        &self,
        _myself: ActorRef<AuthMsg>,
        message: AuthMsg,
        state: &mut AuthState,
    ) -> Result<(), ActorProcessingErr> {
        let AuthMsg::Login { email, password, reply } = message;
        let handling = state.metrics.begin();
        let metrics = state.metrics.clone();
        let ctx = state.ctx.clone();
        tokio::spawn(async move {
            let result = login(&ctx, email, password).await;
            if matches!(result, Err(LoginError::Unavailable(_))) {
                metrics.failed();
            }
            drop(handling);
            let _ = reply.send(result);
        });
        Ok(())
    }
}

async fn login(ctx: &NodeContext, email: String, password: String) -> Result<IssuedToken, LoginError> {
    let user = ctx.backends.users.find(&email).await.map_err(|e| LoginError::Unavailable(e.to_string()))?;
    let verified = tokio::task::spawn_blocking(move || match &user {
        Some(user) => password::verify(&password, &user.password_hash).then(|| user.clone()),
        None => {
            password::verify_nothing(&password);
            None
        }
    })
    .await
    .map_err(|e| LoginError::Unavailable(e.to_string()))?;
    let user = verified.ok_or(LoginError::InvalidCredentials)?;
    ctx.tokens.issue(&user.email, user.admin).map_err(|e| LoginError::Unavailable(e.to_string()))
}
