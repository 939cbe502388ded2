//! `GET /cluster` (every node as this gateway sees it) and `POST /cluster/nodes/{name}/drain`
//! (that node stops taking work, finishes or releases what it holds, and exits, as on SIGTERM).
//! Admins only.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use ractor::ActorRef;
use ractor::rpc::CallResult;
use serde_json::json;

use crate::cluster::agent::local_status;
use crate::cluster::members::remote_agents;
use crate::cluster::membership::{MembershipMsg, PeerView};
use crate::cluster::protocol::{AgentMsg, NodeStatus, decode};
use crate::http::credentials::Identity;
use crate::http::error::ApiError;
use crate::http::response::{Response, json as json_response};
use crate::metrics::Metrics;
use crate::node::{Node, names};

/// How long a node may take to tell its status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn show(node: &Node, identity: &Identity, request: Request<Incoming>) -> Result<Response, ApiError> {
    identity.admin(request.headers()).await?;
    let statuses = remote_statuses(&node.services.metrics).await;
    let mut nodes =
        vec![json!({ "node": node.config.server.node_name, "state": "self", "status": local_status(node) })];
    for peer in peers().await {
        let status = statuses.iter().find(|(_, status)| status.node == peer.node).map(|(_, status)| status);
        let mut entry = serde_json::to_value(&peer).map_err(ApiError::internal)?;
        entry["status"] = serde_json::to_value(status).map_err(ApiError::internal)?;
        nodes.push(entry);
    }
    Ok(json_response(StatusCode::OK, &json!({ "node": node.config.server.node_name, "nodes": nodes })))
}

pub async fn drain(node: &Node, identity: &Identity, request: Request<Incoming>) -> Result<Response, ApiError> {
    identity.admin(request.headers()).await?;
    let path = request.uri().path();
    let name = path.strip_prefix("/cluster/nodes/").and_then(|rest| rest.strip_suffix("/drain")).unwrap_or("");
    if name == node.config.server.node_name {
        tracing::warn!("asked to drain through the API: stopping as on SIGTERM");
        node.lifecycle.drain.cancel();
    } else {
        let statuses = remote_statuses(&node.services.metrics).await;
        let (agent, _) = statuses
            .into_iter()
            .find(|(_, status)| status.node == name)
            .ok_or_else(|| ApiError::not_found("no such node in the cluster"))?;
        agent.cast(AgentMsg::Drain(Vec::new())).map_err(|_| ApiError::unavailable("the node went away"))?;
    }
    Ok(json_response(StatusCode::ACCEPTED, &json!({ "draining": name })))
}

/// The status of every other node that answers in time, with its agent.
async fn remote_statuses(metrics: &Metrics) -> Vec<(ActorRef<AgentMsg>, NodeStatus)> {
    let asked = remote_agents().into_iter().map(|agent| async move {
        let started = Instant::now();
        let answer = agent.call(|reply| AgentMsg::Status(Vec::new(), reply), Some(STATUS_TIMEOUT)).await;
        metrics.cluster.rpc_seconds.with_label_values(&["nodes"]).observe(started.elapsed().as_secs_f64());
        match answer {
            Ok(CallResult::Success(bytes)) => decode::<NodeStatus>(&bytes).ok().map(|status| (agent, status)),
            _ => None,
        }
    });
    join_all(asked).await.into_iter().flatten().collect()
}

/// The peers as this node's membership sees them (none outside an actor cluster).
async fn peers() -> Vec<PeerView> {
    let Some(cell) = ractor::registry::where_is(names::MEMBERSHIP) else { return Vec::new() };
    let membership: ActorRef<MembershipMsg> = cell.into();
    ractor::call_t!(membership, MembershipMsg::Peers, 2_000).unwrap_or_default()
}
