//! The gateway actor: owns this node's HTTP server (the seed's API gateway).
//!
//! The listening sockets are bound once by the application and shared, so a restarted gateway
//! serves on the same addresses. Stopping the actor stops accepting and lets the requests in
//! flight finish within the shutdown grace period. If the server stops on its own the actor
//! fails, and its supervisor restarts it.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::NodeContext;
use crate::http;

pub struct GatewayActor;

pub struct GatewayArgs {
    pub ctx: Arc<NodeContext>,
    pub listeners: http::Listeners,
}

#[derive(RactorMessage)]
pub enum GatewayMsg {
    /// The server task ended without being asked to.
    ServerStopped(String),
}

pub struct GatewayState {
    stop: CancellationToken,
    server: Option<JoinHandle<()>>,
    ctx: Arc<NodeContext>,
}

impl Actor for GatewayActor {
    type Msg = GatewayMsg;
    type State = GatewayState;
    type Arguments = GatewayArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<GatewayMsg>,
        args: GatewayArgs,
    ) -> Result<GatewayState, ActorProcessingErr> {
        let stop = args.ctx.shutdown.child_token();
        let server = tokio::spawn({
            let stop = stop.clone();
            let ctx = args.ctx.clone();
            async move {
                let outcome = http::serve_all(args.listeners, ctx, stop.clone()).await;
                if !stop.is_cancelled() {
                    let reason = match outcome {
                        Ok(()) => "the HTTP server stopped".to_owned(),
                        Err(error) => format!("the HTTP server failed: {error:#}"),
                    };
                    let _ = myself.send_message(GatewayMsg::ServerStopped(reason));
                }
            }
        });
        Ok(GatewayState { stop, server: Some(server), ctx: args.ctx })
    }

    async fn handle(
        &self,
        _myself: ActorRef<GatewayMsg>,
        message: GatewayMsg,
        _state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        let GatewayMsg::ServerStopped(reason) = message;
        Err(reason.into())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<GatewayMsg>,
        state: &mut GatewayState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop.cancel();
        if let Some(server) = state.server.take() {
            let limit = state.ctx.config.shutdown_grace() + std::time::Duration::from_secs(1);
            if tokio::time::timeout(limit, server).await.is_err() {
                tracing::warn!("HTTP connections still open after the grace period; closing them");
            }
        }
        Ok(())
    }
}
