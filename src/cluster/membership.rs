//! Membership: which nodes this one is connected to, and keeping it a full mesh.
//!
//! The library connects sessions but neither redials a lost peer nor notices a peer that stops
//! answering while TCP stays open (a paused process, a dropped network). This actor does both:
//! - it dials every address it knows (the seeds, resolved again every 10 s so that new pods
//!   behind a headless Service are found, and every node a peer told it of) and redials a lost
//!   one with backoff (1 s doubling to 30 s);
//! - once a session is ready it greets the peer's node agent (`Hello`: name, version, protocol,
//!   advertised address, its own peers); a peer of another protocol version is refused;
//! - it pings every peer's node agent every 2 s, and a peer that has not answered for
//!   [`HEARTBEAT_TIMEOUT`] is cut off: its session is stopped, so its actors leave every group
//!   at once, and it is redialled until it answers again;
//! - a session that closes before it authenticated is a refused cookie (or certificate): it is
//!   logged as such and counted (`auth_failed`), judged [`ELECTION_GRACE`] later, so that the
//!   session the library closes of two simultaneous dials is not taken for one.
//!
//! It also keeps what `/cluster` shows of each peer: connected, or unreachable since when.
//!
//! Why one file of 700 lines: it is one actor's state over one set of peers, where a dial, a
//! session's greeting and its heartbeat each change what the others do next (a greeted session
//! names the target's node, a cut-off one makes it due for a redial); split, each transition
//! would be read across files.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServerMessage, RactorMessage};
use serde::{Deserialize, Serialize};

use super::dial::Dialer;
use super::members::agent_on;
use super::protocol::{AgentMsg, Hello, decode, encode};
use crate::backoff::Backoff;
use crate::metrics::Metrics;

/// How often the membership looks at its peers (dials, pings, seeds).
const TICK: Duration = Duration::from_secs(1);
/// How often each peer is pinged.
const PING_EVERY: Duration = Duration::from_secs(2);
/// A peer that has not answered a ping for this long is cut off.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(6);
/// How often the seeds are resolved again.
const RESOLVE_EVERY: Duration = Duration::from_secs(10);
/// The wait before redialling a peer: 1 s doubling to 30 s.
const REDIAL: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
/// How long a call to a peer's agent may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// A session not authenticated, ready and greeted this long after it opened is closed (the
/// library's handshake has no time limit of its own).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long resolving a name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Peers' addresses taken from one greeting, at most.
const MAX_LEARNT: usize = 256;
/// How long a node stays in the view (and its address on the dial list) after it became
/// unreachable: long enough for a paused or restarting node to come back as itself. After that
/// it is taken for gone (a scaled-down or replaced pod), so that `/cluster` and the peer gauges
/// stop counting it; it is welcome again if it ever comes back.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// How long a session that closed before it authenticated waits for its judgement: when two
/// nodes dial each other at once the library keeps one session and closes the other, and on a
/// loaded machine the loser may close before the winner's authentication reaches this actor.
const ELECTION_GRACE: Duration = Duration::from_secs(5);

/// What `/cluster` shows of one peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerView {
    pub node: String,
    pub advertise: String,
    /// `connected` or `unreachable`.
    pub state: String,
    /// Since when it is unreachable (RFC 3339).
    pub since: Option<String>,
    pub version: String,
    pub protocol: u32,
    pub roles: Vec<String>,
}

pub struct Membership;

#[derive(RactorMessage)]
pub enum MembershipMsg {
    /// Dial what is due, resolve the seeds, ping the peers.
    Tick,
    /// From the node server's event subscription.
    Session(SessionEvent, NodeServerSessionInformation),
    /// A dial ended.
    Dialed(SocketAddr, Result<(), String>),
    /// A peer's greeting came back (or did not).
    Greeted(u64, Result<Hello, String>),
    /// A peer answered a ping (true) or did not in time (false).
    Pong(u64, bool),
    /// Names resolved to these addresses (each with the name it was resolved from); `seeds`
    /// tells a round of the seeds from names a peer told of.
    Resolved { addresses: Vec<(SocketAddr, String)>, seeds: bool },
    /// What `/cluster` shows.
    Peers(RpcReplyPort<Vec<PeerView>>),
    /// This node's own greeting, as its node agent answers it.
    OwnHello(RpcReplyPort<Hello>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    Opened,
    Authenticated,
    Ready,
    Disconnected,
}

impl SessionEvent {
    fn label(self) -> &'static str {
        match self {
            SessionEvent::Opened => "opened",
            SessionEvent::Authenticated => "authenticated",
            SessionEvent::Ready => "ready",
            SessionEvent::Disconnected => "disconnected",
        }
    }
}

/// Forwards the node server's (synchronous) session callbacks to the membership actor.
pub struct Forward(pub ActorRef<MembershipMsg>);

impl NodeEventSubscription for Forward {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(MembershipMsg::Session(SessionEvent::Opened, ses));
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(MembershipMsg::Session(SessionEvent::Disconnected, ses));
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(MembershipMsg::Session(SessionEvent::Authenticated, ses));
    }
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.send_message(MembershipMsg::Session(SessionEvent::Ready, ses));
    }
}

pub struct MembershipArgs {
    pub server: ActorRef<NodeServerMessage>,
    pub dialer: Dialer,
    /// This node's greeting (its `peers` are filled in when it is sent).
    pub hello: Hello,
    pub seeds: Vec<String>,
    pub metrics: Arc<Metrics>,
}

/// An address this node keeps a session with.
struct Target {
    /// The name to verify a TLS certificate against (a seed's name, or the advertised host).
    host: String,
    /// The node found there, once a session dialled to it was greeted.
    node: Option<String>,
    next_dial: Instant,
    /// Dials since the peer was last connected: each waits longer ([`REDIAL`]).
    dials_in_a_row: u32,
    dialing: bool,
}

/// A session the node server reported.
struct Session {
    info: NodeServerSessionInformation,
    opened_at: Instant,
    authenticated: bool,
    /// The peer's greeting, once exchanged.
    hello: Option<Hello>,
    last_pong: Instant,
    last_ping: Option<Instant>,
    pinging: bool,
    /// Set once the session is ready (actor lists and groups exchanged).
    ready: bool,
    greeting: bool,
}

/// A session that closed before it authenticated, to be judged once [`ELECTION_GRACE`] has
/// passed: a refusal, unless a session with the same peer authenticated meanwhile.
struct Unauthenticated {
    peer: Option<String>,
    address: String,
    incoming: bool,
    judged_at: Instant,
}

/// A peer as `/cluster` remembers it, by node name.
struct Known {
    hello: Hello,
    /// None while connected.
    unreachable_since: Option<SystemTime>,
}

pub struct MembershipState {
    args: MembershipArgs,
    own: HashSet<SocketAddr>,
    targets: HashMap<SocketAddr, Target>,
    sessions: HashMap<u64, Session>,
    known: HashMap<String, Known>,
    /// What the seed names resolved to last time: addresses kept on the dial list even when the
    /// node found there is forgotten.
    seed_addresses: HashSet<SocketAddr>,
    last_resolved: Option<Instant>,
    /// Set while a resolution of the seeds runs, so that a stuck DNS does not pile them up.
    resolving: bool,
    /// This node's full name as the library gives it to peers (`name@host`): a session with
    /// that name is this node dialling itself.
    own_name: String,
    /// Sessions that closed before they authenticated, not yet judged.
    unauthenticated: Vec<Unauthenticated>,
    timer: JoinHandle<()>,
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<MembershipMsg>,
        args: MembershipArgs,
    ) -> Result<MembershipState, ActorProcessingErr> {
        let own = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(args.hello.advertise.as_str()))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|addresses| addresses.collect())
            .unwrap_or_default();
        let host = args.hello.advertise.rsplit_once(':').map_or(args.hello.advertise.as_str(), |(host, _)| host);
        let own_name = format!("{}@{host}", args.hello.node);
        args.metrics.cluster.started();
        // Replaces the subscription of an earlier membership actor (a restart).
        args.server.cast(NodeServerMessage::SubscribeToEvents {
            id: "membership".to_owned(),
            subscription: Box::new(Forward(myself.clone())),
        })?;
        let timer = myself.send_interval(TICK, || MembershipMsg::Tick);
        let mut state = MembershipState {
            args,
            own,
            targets: HashMap::new(),
            sessions: HashMap::new(),
            known: HashMap::new(),
            seed_addresses: HashSet::new(),
            last_resolved: None,
            resolving: false,
            own_name,
            unauthenticated: Vec::new(),
            timer,
        };
        state.adopt_open_sessions().await;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<MembershipMsg>,
        message: MembershipMsg,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MembershipMsg::Tick => state.tick(&myself),
            MembershipMsg::Session(event, info) => state.session_event(&myself, event, info),
            MembershipMsg::Dialed(address, result) => state.dialed(address, result),
            MembershipMsg::Greeted(node_id, hello) => state.greeted(&myself, node_id, hello),
            MembershipMsg::Pong(node_id, ok) => state.pong(node_id, ok),
            MembershipMsg::Resolved { addresses, seeds } => {
                if seeds {
                    state.resolving = false;
                    state.seed_addresses = addresses.iter().map(|(address, _)| *address).collect();
                }
                for (address, host) in addresses {
                    state.learn(address, Some(host));
                }
            }
            MembershipMsg::Peers(reply) => {
                let _ = reply.send(state.views());
            }
            MembershipMsg::OwnHello(reply) => {
                let _ = reply.send(state.own_hello());
            }
        }
        state.publish_gauges();
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<MembershipMsg>,
        state: &mut MembershipState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        Ok(())
    }
}

impl MembershipState {
    /// Takes in the sessions the node server opened before this actor subscribed (at start, or
    /// after a restart of this actor).
    async fn adopt_open_sessions(&mut self) {
        let Ok(open) = ractor::call_t!(self.args.server, NodeServerMessage::GetSessions, 2_000) else { return };
        for info in open.into_values() {
            let ready =
                ractor::call_t!(info.actor, ractor_cluster::NodeSessionMessage::GetReadyState, 1_000).unwrap_or(false);
            let node_id = info.node_id;
            let mut session = Session::opened(info);
            session.authenticated = ready;
            session.ready = ready;
            self.sessions.insert(node_id, session);
        }
    }

    fn tick(&mut self, myself: &ActorRef<MembershipMsg>) {
        if !self.resolving && self.last_resolved.is_none_or(|at| at.elapsed() >= RESOLVE_EVERY) {
            self.last_resolved = Some(Instant::now());
            self.resolving = true;
            resolve(myself.clone(), self.args.seeds.clone(), true);
        }
        self.forget_departed();
        self.judge_unauthenticated();
        self.dial_due(myself);
        self.heartbeat(myself);
    }

    /// Forgets the nodes unreachable for longer than [`FORGET_AFTER`], and the addresses they
    /// were dialled at unless a seed name still resolves there.
    fn forget_departed(&mut self) {
        let gone = departed(&self.known, SystemTime::now(), FORGET_AFTER);
        if gone.is_empty() {
            return;
        }
        for node in &gone {
            self.known.remove(node);
            tracing::info!(node, after_seconds = FORGET_AFTER.as_secs(), "forgetting a node that stayed unreachable");
        }
        let seeds = &self.seed_addresses;
        self.targets.retain(|address, target| {
            seeds.contains(address) || !target.node.as_ref().is_some_and(|node| gone.contains(node))
        });
    }

    /// Adds an address to keep a session with (not this node's own).
    fn learn(&mut self, address: SocketAddr, host: Option<String>) {
        if self.own.contains(&address) {
            return;
        }
        let host = host.unwrap_or_else(|| address.ip().to_string());
        self.targets.entry(address).or_insert(Target {
            host,
            node: None,
            next_dial: Instant::now(),
            dials_in_a_row: 0,
            dialing: false,
        });
    }

    /// The addresses that have a session (dialed by us, or greeted from the peer's side).
    fn connected_addresses(&self) -> HashSet<SocketAddr> {
        let mut connected = HashSet::new();
        for session in self.sessions.values() {
            if let Ok(address) = session.info.peer_addr.parse::<SocketAddr>()
                && !session.info.is_server
            {
                connected.insert(address);
            }
            if let Some(hello) = &session.hello
                && let Ok(address) = hello.advertise.parse::<SocketAddr>()
            {
                connected.insert(address);
            }
        }
        connected
    }

    /// The nodes with a greeted session.
    fn connected_nodes(&self) -> HashSet<String> {
        self.sessions.values().filter_map(|s| s.hello.as_ref().map(|h| h.node.clone())).collect()
    }

    fn dial_due(&mut self, myself: &ActorRef<MembershipMsg>) {
        let (connected, nodes) = (self.connected_addresses(), self.connected_nodes());
        let now = Instant::now();
        for (address, target) in &mut self.targets {
            let known_connected = target.node.as_ref().is_some_and(|node| nodes.contains(node));
            if target.dialing || connected.contains(address) || known_connected || target.next_dial > now {
                continue;
            }
            target.dialing = true;
            let (dialer, server, me, host, address) =
                (self.args.dialer.clone(), self.args.server.clone(), myself.clone(), target.host.clone(), *address);
            tokio::spawn(async move {
                let result = dialer.dial(&server, address, &host).await.map_err(|e| e.to_string());
                let _ = me.send_message(MembershipMsg::Dialed(address, result));
            });
        }
    }

    fn dialed(&mut self, address: SocketAddr, result: Result<(), String>) {
        let Some(target) = self.targets.get_mut(&address) else { return };
        target.dialing = false;
        // Whether it works shows in the session events; until then, the next try waits (with a
        // little spread, so that two nodes do not keep dialling each other at the same moment).
        target.dials_in_a_row = target.dials_in_a_row.saturating_add(1);
        target.next_dial = Instant::now() + REDIAL.wait(target.dials_in_a_row) + spread();
        if let Err(error) = result {
            self.args.metrics.cluster.session_event("dial_failed");
            tracing::debug!(%address, error, "could not reach a peer; trying again later");
        }
    }

    fn session_event(
        &mut self,
        myself: &ActorRef<MembershipMsg>,
        event: SessionEvent,
        info: NodeServerSessionInformation,
    ) {
        self.args.metrics.cluster.session_event(event.label());
        let node_id = info.node_id;
        match event {
            SessionEvent::Opened => {
                self.sessions.insert(node_id, Session::opened(info));
            }
            SessionEvent::Authenticated => {
                if let Some(session) = self.sessions.get_mut(&node_id) {
                    session.authenticated = true;
                    session.info = info;
                }
            }
            SessionEvent::Ready => {
                if let Some(session) = self.sessions.get_mut(&node_id) {
                    session.authenticated = true;
                    session.ready = true;
                    session.last_pong = Instant::now();
                    session.info = info;
                }
                self.greet(myself, node_id);
            }
            SessionEvent::Disconnected => self.disconnected(node_id, &info),
        }
    }

    fn disconnected(&mut self, node_id: u64, info: &NodeServerSessionInformation) {
        let Some(session) = self.sessions.remove(&node_id) else { return };
        let peer = info.peer_name.as_ref().map(|name| name.name.clone());
        if peer.as_deref() == Some(self.own_name.as_str()) {
            // This node dialled itself (a seed list that includes it): never again.
            if let Ok(address) = info.peer_addr.parse::<SocketAddr>() {
                self.own.insert(address);
                self.targets.remove(&address);
            }
        } else if !session.authenticated {
            self.unauthenticated.push(Unauthenticated {
                peer,
                address: info.peer_addr.clone(),
                incoming: info.is_server,
                judged_at: Instant::now() + ELECTION_GRACE,
            });
        }
        if let Some(hello) = &session.hello {
            tracing::warn!(node = %hello.node, "lost the session with a peer; redialling it");
            if let Some(known) = self.known.get_mut(&hello.node) {
                known.unreachable_since.get_or_insert_with(SystemTime::now);
            }
            if let Ok(address) = hello.advertise.parse::<SocketAddr>()
                && let Some(target) = self.targets.get_mut(&address)
            {
                target.next_dial = Instant::now() + REDIAL.first;
                target.dials_in_a_row = 0;
            }
        }
    }

    /// Judges the sessions that closed unauthenticated and have waited [`ELECTION_GRACE`]: one
    /// whose peer has an authenticated session by now lost the library's election between two
    /// simultaneous connections; any other was refused (or its handshake stalled).
    fn judge_unauthenticated(&mut self) {
        let now = Instant::now();
        let (due, waiting) = std::mem::take(&mut self.unauthenticated).into_iter().partition(|s| s.judged_at <= now);
        self.unauthenticated = waiting;
        // Every address an authenticated session reaches a peer at: the one it was dialled at,
        // and the one the peer advertises (a name such as `localhost:4697` resolves to a target).
        let nodes: HashSet<&str> =
            self.sessions.values().filter_map(|s| Some(s.hello.as_ref()?.node.as_str())).collect();
        let dialled = self.sessions.values().filter(|s| s.authenticated && !s.info.is_server);
        let reached: HashSet<SocketAddr> = dialled
            .filter_map(|session| session.info.peer_addr.parse().ok())
            .chain(
                self.targets
                    .iter()
                    .filter(|(_, t)| t.node.as_deref().is_some_and(|n| nodes.contains(n)))
                    .map(|(a, _)| *a),
            )
            .collect();
        for closed in due {
            // A dial to an address this node now has an authenticated session with was a
            // duplicate (or a handshake a loaded peer was slow to finish), not a refusal.
            let redundant = !closed.incoming && closed.address.parse().is_ok_and(|address| reached.contains(&address));
            if redundant || self.has_authenticated(closed.peer.as_deref()) {
                continue;
            }
            self.args.metrics.cluster.session_event("auth_failed");
            tracing::error!(
                peer = %closed.address,
                incoming = closed.incoming,
                "a cluster session closed before it authenticated: the cookie (or the TLS certificate) \
                 differs on one side, or the handshake stalled; the node was not let in"
            );
        }
    }

    /// Whether another session with the peer called `name` is authenticated (a session that lost
    /// the library's election between two simultaneous connections is no refusal).
    fn has_authenticated(&self, name: Option<&str>) -> bool {
        let Some(name) = name else { return false };
        self.sessions.values().any(|s| s.authenticated && s.info.peer_name.as_ref().is_some_and(|n| n.name == name))
    }

    /// Greets the peer of a ready session through its node agent.
    fn greet(&mut self, myself: &ActorRef<MembershipMsg>, node_id: u64) {
        let Some(session) = self.sessions.get_mut(&node_id) else { return };
        if session.greeting {
            return;
        }
        session.greeting = true;
        let hello = encode(&self.own_hello());
        let me = myself.clone();
        tokio::spawn(async move {
            let answer = match agent_on(node_id) {
                None => Err("its node agent is not in the `nodes` group".to_owned()),
                Some(agent) => match agent.call(|reply| AgentMsg::Hello(hello, reply), Some(CALL_TIMEOUT)).await {
                    Ok(CallResult::Success(bytes)) => decode::<Hello>(&bytes).map_err(|e| e.to_string()),
                    other => Err(format!("no answer ({:?})", other.map(|_| ()))),
                },
            };
            let _ = me.send_message(MembershipMsg::Greeted(node_id, answer));
        });
    }

    fn greeted(&mut self, myself: &ActorRef<MembershipMsg>, node_id: u64, hello: Result<Hello, String>) {
        let Some(session) = self.sessions.get_mut(&node_id) else { return };
        session.greeting = false;
        let hello = match hello {
            Ok(hello) => hello,
            Err(error) => {
                tracing::warn!(peer = %session.info.peer_addr, error, "a peer did not answer its greeting");
                return;
            }
        };
        if hello.protocol != self.args.hello.protocol {
            tracing::error!(
                node = %hello.node,
                their_protocol = hello.protocol,
                our_protocol = self.args.hello.protocol,
                their_version = %hello.version,
                "refusing a peer of another protocol version"
            );
            session.info.actor.stop(Some("another protocol version".into()));
            return;
        }
        tracing::info!(node = %hello.node, version = %hello.version, roles = ?hello.roles, "a peer joined");
        session.hello = Some(hello.clone());
        let dialled = (!session.info.is_server).then(|| session.info.peer_addr.parse::<SocketAddr>().ok()).flatten();
        if let Some(target) = dialled.and_then(|address| self.targets.get_mut(&address)) {
            target.node = Some(hello.node.clone());
        }
        self.known.insert(hello.node.clone(), Known { hello: hello.clone(), unreachable_since: None });
        // The peer and the peers it knows, by address or by name (resolved like the seeds).
        let learnt = std::iter::once(hello.advertise.clone()).chain(hello.peers.iter().take(MAX_LEARNT).cloned());
        let (addresses, names): (Vec<String>, Vec<String>) = learnt.partition(|a| a.parse::<SocketAddr>().is_ok());
        for address in addresses.iter().filter_map(|a| a.parse::<SocketAddr>().ok()) {
            self.learn(address, None);
        }
        if !names.is_empty() {
            resolve(myself.clone(), names, false);
        }
    }

    /// Pings every greeted peer that is due, cuts off those that stopped answering, and greets
    /// again a ready peer whose greeting failed.
    fn heartbeat(&mut self, myself: &ActorRef<MembershipMsg>) {
        let now = Instant::now();
        let ungreeted: Vec<u64> =
            self.sessions.iter().filter(|(_, s)| s.ready && s.hello.is_none()).map(|(id, _)| *id).collect();
        for node_id in ungreeted {
            self.greet(myself, node_id);
        }
        let mut dead = Vec::new();
        for (node_id, session) in &mut self.sessions {
            if session.hello.is_none() {
                // A handshake or greeting that does not finish: a stalled or paused peer, or a
                // connection that only occupies a place.
                if now.duration_since(session.opened_at) > HANDSHAKE_TIMEOUT {
                    tracing::warn!(peer = %session.info.peer_addr, "a cluster session did not finish its handshake; closing it");
                    session.opened_at = now;
                    session.info.actor.stop(Some("handshake timeout".into()));
                }
                continue;
            }
            if now.duration_since(session.last_pong) > HEARTBEAT_TIMEOUT {
                dead.push(*node_id);
                continue;
            }
            if session.pinging || session.last_ping.is_some_and(|at| now.duration_since(at) < PING_EVERY) {
                continue;
            }
            session.pinging = true;
            session.last_ping = Some(now);
            let (me, node_id) = (myself.clone(), *node_id);
            tokio::spawn(async move {
                let answered = match agent_on(node_id) {
                    Some(agent) => matches!(
                        agent.call(|reply| AgentMsg::Ping(Vec::new(), reply), Some(CALL_TIMEOUT)).await,
                        Ok(CallResult::Success(_))
                    ),
                    None => false,
                };
                let _ = me.send_message(MembershipMsg::Pong(node_id, answered));
            });
        }
        for node_id in dead {
            self.cut_off(node_id);
        }
    }

    fn pong(&mut self, node_id: u64, answered: bool) {
        if let Some(session) = self.sessions.get_mut(&node_id) {
            session.pinging = false;
            if answered {
                session.last_pong = Instant::now();
            }
        }
    }

    /// Stops the session of a peer that stopped answering: its actors leave every group.
    fn cut_off(&mut self, node_id: u64) {
        let Some(session) = self.sessions.get_mut(&node_id) else { return };
        let name = session.hello.as_ref().map_or_else(|| session.info.peer_addr.clone(), |h| h.node.clone());
        tracing::warn!(node = %name, "a peer stopped answering; cutting it off");
        self.args.metrics.cluster.session_event("heartbeat_timeout");
        session.last_pong = Instant::now();
        session.info.actor.stop(Some("heartbeat timeout".into()));
        if let Some(known) = self.known.get_mut(&name) {
            known.unreachable_since.get_or_insert_with(SystemTime::now);
        }
    }

    fn own_hello(&self) -> Hello {
        let peers = self.sessions.values().filter_map(|s| s.hello.as_ref().map(|h| h.advertise.clone())).collect();
        Hello { peers, ..self.args.hello.clone() }
    }

    fn views(&self) -> Vec<PeerView> {
        let mut views: Vec<PeerView> = self
            .known
            .values()
            .map(|known| {
                let hello = &known.hello;
                PeerView {
                    node: hello.node.clone(),
                    advertise: hello.advertise.clone(),
                    state: if known.unreachable_since.is_some() { "unreachable" } else { "connected" }.to_owned(),
                    since: known.unreachable_since.map(|at| humantime::format_rfc3339_seconds(at).to_string()),
                    version: hello.version.clone(),
                    protocol: hello.protocol,
                    roles: hello.roles.clone(),
                }
            })
            .collect();
        views.sort_by(|a, b| a.node.cmp(&b.node));
        views
    }

    fn publish_gauges(&self) {
        let connected = self.known.values().filter(|k| k.unreachable_since.is_none()).count();
        self.args.metrics.cluster.set_peers("connected", connected as u64);
        self.args.metrics.cluster.set_peers("unreachable", (self.known.len() - connected) as u64);
    }
}

/// Resolves every name (`host:port`; a name may stand for several addresses) and reports the
/// addresses, each with the name it came from; `seeds` marks the round of the seeds, of which
/// only one runs at a time.
fn resolve(me: ActorRef<MembershipMsg>, names: Vec<String>, seeds: bool) {
    tokio::spawn(async move {
        let mut found = Vec::new();
        for name in &names {
            let host = name.rsplit_once(':').map_or(name.as_str(), |(host, _)| host).trim_matches(['[', ']']);
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name.as_str())).await {
                Ok(Ok(addresses)) => found.extend(addresses.map(|address| (address, host.to_owned()))),
                Ok(Err(error)) => tracing::warn!(name, %error, "a peer's name does not resolve (yet)"),
                Err(_) => tracing::warn!(name, "resolving a peer's name timed out"),
            }
        }
        let _ = me.send_message(MembershipMsg::Resolved { addresses: found, seeds });
    });
}

/// The nodes that have been unreachable for at least `after` at `now`.
fn departed(known: &HashMap<String, Known>, now: SystemTime, after: Duration) -> Vec<String> {
    known
        .iter()
        .filter(|(_, peer)| {
            peer.unreachable_since.is_some_and(|since| now.duration_since(since).unwrap_or_default() >= after)
        })
        .map(|(node, _)| node.clone())
        .collect()
}

/// Up to half a second, so that redials of two nodes drift apart.
fn spread() -> Duration {
    let mut byte = [0u8; 2];
    let _ = getrandom::fill(&mut byte);
    Duration::from_millis(u64::from(u16::from_le_bytes(byte)) % 500)
}

impl Session {
    fn opened(info: NodeServerSessionInformation) -> Session {
        Session {
            info,
            opened_at: Instant::now(),
            authenticated: false,
            hello: None,
            last_pong: Instant::now(),
            last_ping: None,
            pinging: false,
            ready: false,
            greeting: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(unreachable_since: Option<SystemTime>) -> Known {
        let hello = Hello {
            node: String::new(),
            version: String::new(),
            protocol: 1,
            advertise: String::new(),
            roles: Vec::new(),
            peers: Vec::new(),
        };
        Known { hello, unreachable_since }
    }

    #[test]
    fn only_nodes_unreachable_for_the_whole_window_are_forgotten() {
        let now = SystemTime::now();
        let window = Duration::from_secs(600);
        let known = HashMap::from([
            ("connected".to_owned(), peer(None)),
            ("paused-a-minute".to_owned(), peer(Some(now - Duration::from_secs(60)))),
            ("scaled-down".to_owned(), peer(Some(now - Duration::from_secs(601)))),
            ("just-at-the-limit".to_owned(), peer(Some(now - window))),
            // A clock that went back does not make a node look gone.
            ("from-the-future".to_owned(), peer(Some(now + Duration::from_secs(5)))),
        ]);
        let mut gone = departed(&known, now, window);
        gone.sort();
        assert_eq!(gone, ["just-at-the-limit", "scaled-down"]);
    }
}
