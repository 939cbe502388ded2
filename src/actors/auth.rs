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

use crate::cluster::protocol::{AuthMsg, LoginError, LoginGranted, LoginReply, LoginRequest, decode, encode, groups};
use crate::metrics::ActorMetrics;
use crate::security::password_checks::{CheckError, PasswordChecks};
use crate::security::token::TokenKeys;
use crate::storage::UserStore;

pub struct AuthActor;

/// What the auth actor works with.
#[derive(Clone)]
pub struct AuthArgs {
    pub users: Arc<dyn UserStore>,
    pub tokens: TokenKeys,
    /// Password checks running at once, and logins that may wait for one.
    pub check_threads: usize,
    pub check_queue: usize,
    pub metrics: ActorMetrics,
}

pub struct AuthState {
    args: AuthArgs,
    /// Shared with the login tasks in flight, which keep it alive across a restart.
    checks: Arc<PasswordChecks>,
}

impl Actor for AuthActor {
    type Msg = AuthMsg;
    type State = AuthState;
    type Arguments = AuthArgs;

    async fn pre_start(&self, myself: ActorRef<AuthMsg>, args: AuthArgs) -> Result<AuthState, ActorProcessingErr> {
        let checks = Arc::new(PasswordChecks::start(args.check_threads, args.check_queue)?);
        ractor::pg::join(groups::AUTH.to_owned(), vec![myself.get_cell()]);
        Ok(AuthState { args, checks })
    }

    async fn handle(
        &self,
        _myself: ActorRef<AuthMsg>,
        message: AuthMsg,
        state: &mut AuthState,
    ) -> Result<(), ActorProcessingErr> {
        let AuthMsg::Login(request, reply) = message;
        let handling = state.args.metrics.begin();
        let (args, checks) = (state.args.clone(), state.checks.clone());
        tokio::spawn(async move {
            let result: LoginReply = match decode::<LoginRequest>(&request) {
                Ok(request) => login(&args, &checks, request).await,
                Err(error) => Err(LoginError::Unavailable(format!("a malformed login request: {error}"))),
            };
            if matches!(result, Err(LoginError::Unavailable(_))) {
                args.metrics.failed();
            }
            drop(handling);
            let _ = reply.send(encode(&result));
        });
        Ok(())
    }
}

async fn login(args: &AuthArgs, checks: &PasswordChecks, request: LoginRequest) -> LoginReply {
    let unavailable = |error: &dyn std::fmt::Display| LoginError::Unavailable(error.to_string());
    let admitted = checks.admit().map_err(check_error)?;
    let user = args.users.find(&request.email).await.map_err(|e| unavailable(&e))?;
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let verified = admitted.verify(request.password, stored).await.map_err(check_error)?;
    let user = user.filter(|_| verified).ok_or(LoginError::InvalidCredentials)?;
    let issued = args.tokens.issue(&user.email, user.admin, user.session_generation).map_err(|e| unavailable(&e))?;
    Ok(LoginGranted { token: issued.token, expires_in: issued.expires_in })
}

fn check_error(error: CheckError) -> LoginError {
    match error {
        CheckError::Busy => LoginError::Busy,
        CheckError::Stopped => LoginError::Unavailable(error.to_string()),
    }
}
