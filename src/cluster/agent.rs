//! The node agent: one per node, in the `nodes` group. It answers peers' greetings (refusing
//! another protocol version, with a log line on this side too), their heartbeat pings, status
//! calls, and the drain command.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};

use super::membership::{Hello, MembershipMsg};
use super::protocol::{AgentMsg, decode, encode, groups};
use crate::actors::NodeContext;
use crate::actors::activity::Holding;

/// What a node tells of itself (`/cluster`, `mp3converter cluster status`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    pub version: String,
    pub protocol: u32,
    pub roles: Vec<String>,
    pub uptime_seconds: u64,
    /// The actors registered on the node.
    pub actors: Vec<String>,
    /// The job each converter holds.
    pub converting: Vec<Holding>,
    /// Conversions finished since the node started.
    pub jobs_done: u64,
    pub jobs_failed: u64,
}

/// This node's status.
pub fn local_status(ctx: &NodeContext) -> NodeStatus {
    let mut actors: Vec<String> = ractor::registry::registered();
    actors.sort();
    NodeStatus {
        node: ctx.config.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: ctx.config.protocol_version(),
        roles: ctx.config.role_names(),
        uptime_seconds: ctx.started.elapsed().as_secs(),
        actors,
        converting: ctx.activity.held(),
        jobs_done: ctx.metrics.conversions_counted("done"),
        jobs_failed: ctx.metrics.conversions_counted("failed"),
    }
}

/// The node agent of the node behind session `node_id`, if that node has one in the group.
pub fn agent_on(node_id: u64) -> Option<ActorRef<AgentMsg>> {
    let agents = ractor::pg::get_members(&groups::NODES.to_owned());
    agents.into_iter().find(|cell| !cell.get_id().is_local() && cell.get_id().node() == node_id).map(ActorRef::from)
}

/// The node agents of every other node.
pub fn remote_agents() -> Vec<ActorRef<AgentMsg>> {
    let agents = ractor::pg::get_members(&groups::NODES.to_owned());
    agents.into_iter().filter(|cell| !cell.get_id().is_local()).map(ActorRef::from).collect()
}

pub struct NodeAgent;

/// Registered name of the membership actor, through which the agent finds it.
pub const MEMBERSHIP: &str = "membership";

impl Actor for NodeAgent {
    type Msg = AgentMsg;
    type State = Arc<NodeContext>;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<AgentMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<Arc<NodeContext>, ActorProcessingErr> {
        ractor::pg::join(groups::NODES.to_owned(), vec![myself.get_cell()]);
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<AgentMsg>,
        message: AgentMsg,
        ctx: &mut Arc<NodeContext>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AgentMsg::Hello(theirs, reply) => {
                let ours = ctx.config.protocol_version();
                match decode::<Hello>(&theirs) {
                    Ok(hello) if hello.protocol != ours => tracing::error!(
                        node = %hello.node,
                        their_protocol = hello.protocol,
                        our_protocol = ours,
                        "a peer of another protocol version greeted this node; it is refused"
                    ),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "a malformed greeting"),
                }
                // A greeting this node cannot answer now goes unanswered (the peer greets again);
                // it is no failure of the agent's.
                let membership: Option<ActorRef<MembershipMsg>> =
                    ractor::registry::where_is(MEMBERSHIP).map(Into::into);
                match membership.map(|m| async move { ractor::call_t!(m, MembershipMsg::OwnHello, 2_000) }) {
                    Some(asked) => match asked.await {
                        Ok(ours) => {
                            let _ = reply.send(encode(&ours));
                        }
                        Err(error) => tracing::warn!(%error, "could not answer a greeting"),
                    },
                    None => tracing::warn!("could not answer a greeting: the membership is restarting"),
                }
            }
            AgentMsg::Ping(_, reply) => {
                let _ = reply.send(Vec::new());
            }
            AgentMsg::Status(_, reply) => {
                let _ = reply.send(encode(&local_status(ctx)));
            }
            AgentMsg::Drain(_) => {
                tracing::warn!("asked to drain: stopping as on SIGTERM");
                ctx.drain.cancel();
            }
        }
        Ok(())
    }
}
