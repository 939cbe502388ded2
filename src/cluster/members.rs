//! Finding the actors of a process group on any node: this node's own first (no network hop),
//! then the other nodes' in turn (round-robin, so that work spreads over them); and the node
//! agents of other nodes.

use std::sync::atomic::{AtomicUsize, Ordering};

use ractor::{ActorCell, ActorRef};

use super::protocol::{AgentMsg, groups};

/// The members of `group`, local ones first, then remote ones starting from the next in turn.
pub fn in_order(group: &str) -> Vec<ActorCell> {
    static TURN: AtomicUsize = AtomicUsize::new(0);
    let (local, mut remote): (Vec<ActorCell>, Vec<ActorCell>) =
        ractor::pg::get_members(&group.to_owned()).into_iter().partition(|cell| cell.get_id().is_local());
    if !remote.is_empty() {
        let turn = TURN.fetch_add(1, Ordering::Relaxed) % remote.len();
        remote.rotate_left(turn);
    }
    local.into_iter().chain(remote).collect()
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
