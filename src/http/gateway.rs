//! The gateway: the actor that owns this node's HTTP server (the legacy design's API gateway), and the
//! state it serves with besides the node's own ([`Gateway`]), which reaches it through its
//! spawn arguments.
//!
//! The listening sockets are bound once by the application and shared, so a restarted gateway
//! serves on the same addresses, and its state is the node's (made once), so a restarted
//! gateway does not forget who was being held back. Stopping the actor stops accepting and
//! lets the requests in flight finish within the shutdown grace period. If the server stops on
//! its own the actor fails, and its supervisor restarts it.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorMessage;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::client_address::TrustedProxies;
use super::credentials::Identity;
use super::limits::GatewayLimits;
use super::{Listeners, serve_all};
use crate::config::Secret;
use crate::job_events::JobSubscribers;
use crate::metrics::ActorMetrics;
use crate::node::Node;

/// What the gateway serves with, besides the node.
pub struct Gateway {
    /// Who a request's bearer is: the token keys and the session check.
    pub identity: Identity,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<Secret>,
    /// What the gateway admits (login rates, uploads and streams in progress, connections).
    pub limits: GatewayLimits,
    /// Who a request's client is, behind the configured reverse proxies.
    pub proxies: TrustedProxies,
    /// The clients following jobs on this node (`GET /jobs/{id}/events`), which outlive a
    /// restart of the hub that feeds them.
    pub subscribers: Arc<JobSubscribers>,
}

pub struct GatewayActor;

pub struct GatewayArgs {
    pub node: Arc<Node>,
    pub gateway: Arc<Gateway>,
    pub listeners: Listeners,
    /// The gateway actor's metric handles: every request counts as one of its messages.
    pub metrics: ActorMetrics,
}

#[derive(RactorMessage)]
pub enum GatewayMsg {
    /// The server task ended without being asked to.
    ServerStopped(String),
}

pub struct GatewayState {
    stop: CancellationToken,
    server: Option<JoinHandle<()>>,
    node: Arc<Node>,
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
        let stop = args.node.lifecycle.shutdown.child_token();
        let server = tokio::spawn({
            let stop = stop.clone();
            let (node, gateway, metrics) = (args.node.clone(), args.gateway, args.metrics);
            async move {
                let outcome = serve_all(args.listeners, node, gateway, metrics, stop.clone()).await;
                if !stop.is_cancelled() {
                    let reason = match outcome {
                        Ok(()) => "the HTTP server stopped".to_owned(),
                        Err(error) => format!("the HTTP server failed: {error:#}"),
                    };
                    let _ = myself.send_message(GatewayMsg::ServerStopped(reason));
                }
            }
        });
        Ok(GatewayState { stop, server: Some(server), node: args.node })
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
            let limit = state.node.config.server.shutdown_grace() + std::time::Duration::from_secs(1);
            if tokio::time::timeout(limit, server).await.is_err() {
                tracing::warn!("HTTP connections still open after the grace period; closing them");
            }
        }
        Ok(())
    }
}
