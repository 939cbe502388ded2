//! The actor cluster: peers by state, session events, calls to actors on other nodes, and the
//! members of each process group. The session and call series exist at zero on the nodes that
//! run a cluster ([`ClusterMetrics::started`]).

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{at_zero, register, seconds};

pub const SESSION_EVENTS: [&str; 7] =
    ["opened", "authenticated", "ready", "disconnected", "auth_failed", "heartbeat_timeout", "dial_failed"];
/// The groups whose actors are called across nodes (`mp3c_cluster_rpc_duration_seconds{target}`).
pub const RPC_TARGETS: [&str; 2] = ["auth", "nodes"];

pub struct ClusterMetrics {
    peers: IntGaugeVec,
    session_events: IntCounterVec,
    /// Calls to actors on other nodes, by target group ([`RPC_TARGETS`]).
    pub rpc_seconds: HistogramVec,
    group_members: IntGaugeVec,
}

impl ClusterMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        ClusterMetrics {
            peers: register(
                r,
                IntGaugeVec::new(Opts::new("mp3c_cluster_peers", "Peers of this node by state."), &["state"]).unwrap(),
            ),
            session_events: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "mp3c_cluster_session_events_total",
                        "Cluster session events (opened, authenticated, ready, disconnected, auth_failed, heartbeat_timeout, dial_failed).",
                    ),
                    &["event"],
                )
                .unwrap(),
            ),
            rpc_seconds: register(
                r,
                HistogramVec::new(
                    seconds("mp3c_cluster_rpc_duration_seconds", "Calls to actors on other nodes, by target group."),
                    &["target"],
                )
                .unwrap(),
            ),
            group_members: register(
                r,
                IntGaugeVec::new(
                    Opts::new("mp3c_cluster_group_members", "Members of each process group, on every node."),
                    &["group"],
                )
                .unwrap(),
            ),
        }
    }

    /// Creates the actor cluster's series at zero, on the nodes that run one.
    pub fn started(&self) {
        at_zero(&self.session_events, &SESSION_EVENTS);
        at_zero(&self.rpc_seconds, &RPC_TARGETS);
        ["connected", "unreachable"].iter().for_each(|state| self.set_peers(state, 0));
    }

    pub fn set_peers(&self, state: &str, count: u64) {
        self.peers.with_label_values(&[state]).set(count as i64);
    }

    pub fn session_event(&self, event: &str) {
        self.session_events.with_label_values(&[event]).inc();
    }

    pub fn set_group_members(&self, group: &str, count: usize) {
        self.group_members.with_label_values(&[group]).set(count as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::super::tests::series;
    use super::*;

    #[test]
    fn a_cluster_node_has_every_session_event_and_rpc_target_at_zero() {
        let metrics = Metrics::new("n1");
        assert!(series(&metrics.render(), "mp3c_cluster_session_events_total{").is_empty(), "only on cluster nodes");
        metrics.cluster.started();
        let text = metrics.render();
        assert!(text.contains("event=\"heartbeat_timeout\",node=\"n1\"} 0"), "{text}");
        assert_eq!(series(&text, "mp3c_cluster_session_events_total{").len(), SESSION_EVENTS.len());
        assert_eq!(series(&text, "mp3c_cluster_rpc_duration_seconds_count{").len(), RPC_TARGETS.len());
        assert_eq!(series(&text, "mp3c_cluster_peers{").len(), 2);
    }
}
