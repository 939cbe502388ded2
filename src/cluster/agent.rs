//! The node agent: one per node, in the `nodes` group. It answers peers' greetings (refusing
//! another protocol version, with a log line on this side too), their heartbeat pings, status
//! calls, and the drain command.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::membership::MembershipMsg;
use super::protocol::{AgentMsg, Hello, Holding, NodeStatus, decode, encode, groups};
use crate::node::{Node, names};

/// This node's status.
pub fn local_status(node: &Node) -> NodeStatus {
    let mut actors: Vec<String> = ractor::registry::registered();
    actors.sort();
    let metrics = &node.services.metrics;
    NodeStatus {
        node: node.config.server.node_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: super::protocol_version(&node.config),
        roles: node.config.server.role_names(),
        uptime_seconds: node.lifecycle.started.elapsed().as_secs(),
        actors,
        converting: node.activity.held().into_iter().map(|(actor, job_id)| Holding { actor, job_id }).collect(),
        jobs_done: metrics.jobs.conversions_counted("done"),
        jobs_failed: metrics.jobs.conversions_counted("failed"),
    }
}

pub struct NodeAgent;

impl Actor for NodeAgent {
    type Msg = AgentMsg;
    type State = Arc<Node>;
    type Arguments = Arc<Node>;

    async fn pre_start(&self, myself: ActorRef<AgentMsg>, node: Arc<Node>) -> Result<Arc<Node>, ActorProcessingErr> {
        ractor::pg::join(groups::NODES.to_owned(), vec![myself.get_cell()]);
        Ok(node)
    }

    async fn handle(
        &self,
        _myself: ActorRef<AgentMsg>,
        message: AgentMsg,
        node: &mut Arc<Node>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AgentMsg::Hello(theirs, reply) => {
                let ours = super::protocol_version(&node.config);
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
                    ractor::registry::where_is(names::MEMBERSHIP).map(Into::into);
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
                let _ = reply.send(encode(&local_status(node)));
            }
            AgentMsg::Drain(_) => {
                tracing::warn!("asked to drain: stopping as on SIGTERM");
                node.lifecycle.drain.cancel();
            }
        }
        Ok(())
    }
}
