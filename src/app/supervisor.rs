//! The node supervisor: starts every actor of the node linked to itself, restarts a child that
//! fails (or stops when nobody asked it to) after a backoff, and escalates by stopping the node
//! when restarts exceed the intensity limit. Stopping the supervisor stops its children in
//! order: the gateway and the job-event hub first (no new work or events come in), then the
//! workers (they finish or release what they hold), then auth.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;

use super::restart::{Decision, RestartHistory, RestartPolicy};
use crate::actors::auth::{AuthActor, AuthArgs};
use crate::actors::converter::Converter;
use crate::actors::dead_letters::{DeadNotices, DeadVideos};
use crate::actors::gauges::Gauges;
use crate::actors::notifier::Notifier;
use crate::actors::periodic::{Periodic, PeriodicActor};
use crate::actors::sweeper::Sweeper;
use crate::actors::worker::{Worker, WorkerActor, WorkerArgs};
use crate::backoff::Backoff;
use crate::cluster::agent::NodeAgent;
use crate::cluster::membership::{Membership, MembershipArgs};
use crate::cluster::node::ClusterLink;
use crate::config::Role;
use crate::http::gateway::{GatewayActor, GatewayArgs};
use crate::http::{Gateway, Listeners};
use crate::job_events::hub::{EventHub, EventHubArgs};
use crate::metrics::ActorMetrics;
use crate::node::{Node, names};
use crate::security::token::TokenKeys;
use crate::storage::Queue;

/// One kind of child, enough to start it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Child {
    Gateway,
    Auth,
    Converter(u32),
    /// The notifier of one queue (`mp3` or `failures`).
    Notifier(Queue),
    /// The worker of one dead-letter queue.
    DeadLetters(Queue),
    Sweeper,
    Gauges,
    /// The actor cluster's membership (with `--cluster-listen`).
    Membership,
    /// The node agent (with `--cluster-listen`).
    Agent,
    /// The job-event hub of a gateway node.
    EventHub,
}

impl Child {
    /// The name it is registered and measured under ([`names`]).
    pub fn name(self) -> String {
        match self {
            Child::Gateway => names::GATEWAY.to_owned(),
            Child::Auth => names::AUTH.to_owned(),
            Child::Converter(n) => names::converter(n),
            Child::Notifier(Queue::Mp3) => names::NOTIFIER.to_owned(),
            Child::Notifier(queue) => names::notifier_of(queue.name()),
            Child::DeadLetters(queue) => names::dead_letters_of(queue.work().name()),
            Child::Sweeper => names::SWEEPER.to_owned(),
            Child::Gauges => names::GAUGES.to_owned(),
            Child::Membership => names::MEMBERSHIP.to_owned(),
            Child::Agent => names::NODE_AGENT.to_owned(),
            Child::EventHub => names::EVENT_HUB.to_owned(),
        }
    }

    /// Children that take work from the mailbox: stopped after the gateway, before auth.
    fn is_worker(self) -> bool {
        matches!(self, Child::Converter(_) | Child::Notifier(_) | Child::DeadLetters(_) | Child::Sweeper)
    }
}

pub struct NodeSupervisor;

/// What the supervisor starts its children with: the node, and what only some of them hold.
pub struct SupervisorArgs {
    pub node: Arc<Node>,
    /// The gateway's own state.
    pub gateway: Arc<Gateway>,
    /// The addresses the gateway serves on, bound once.
    pub listeners: Listeners,
    /// The keys the auth actor issues tokens with.
    pub tokens: TokenKeys,
    /// The actor cluster, when `--cluster-listen` turned it on.
    pub cluster: Option<ClusterLink>,
}

#[derive(RactorMessage)]
pub enum SupervisorMsg {
    /// Start a child again after its backoff.
    Restart(Child),
}

pub struct SupervisorState {
    args: SupervisorArgs,
    running: HashMap<ActorId, (Child, ActorCell)>,
    history: RestartHistory,
    policy: RestartPolicy,
}

impl NodeSupervisor {
    async fn start(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        let node = state.args.node.clone();
        let name = Some(child.name());
        let supervisor = myself.get_cell();
        // Every child's series, its restarts included, exist from its first start: this is the
        // one place actor metrics are registered, and the children that measure their messages
        // are handed theirs.
        let measured = node.services.metrics.actors.of(&child.name());
        let cell = match child {
            Child::Gateway => {
                let (gateway, listeners) = (state.args.gateway.clone(), state.args.listeners.clone());
                let args = GatewayArgs { node, gateway, listeners, metrics: measured };
                Actor::spawn_linked(name, GatewayActor, args, supervisor).await?.0.get_cell()
            }
            Child::Auth => {
                let args = AuthArgs {
                    users: node.stores.users.clone(),
                    tokens: state.args.tokens.clone(),
                    check_threads: node.config.limits.login_concurrency as usize,
                    check_queue: node.config.limits.login_queue as usize,
                    metrics: measured,
                };
                Actor::spawn_linked(name, AuthActor, args, supervisor).await?.0.get_cell()
            }
            Child::Converter(_) => spawn_worker::<Converter>(child, Queue::Video, node, measured, supervisor).await?,
            Child::Notifier(queue) => spawn_worker::<Notifier>(child, queue, node, measured, supervisor).await?,
            Child::DeadLetters(Queue::VideoDead) => {
                spawn_worker::<DeadVideos>(child, Queue::VideoDead, node, measured, supervisor).await?
            }
            Child::DeadLetters(queue) => spawn_worker::<DeadNotices>(child, queue, node, measured, supervisor).await?,
            Child::Sweeper => spawn_periodic::<Sweeper>(child, node, supervisor).await?,
            Child::Gauges => spawn_periodic::<Gauges>(child, node, supervisor).await?,
            Child::Membership => {
                let link = state.args.cluster.clone().ok_or("the membership needs the actor cluster")?;
                let args = MembershipArgs {
                    server: link.server,
                    dialer: link.dialer,
                    hello: link.hello,
                    seeds: link.seeds,
                    metrics: node.services.metrics.clone(),
                };
                Actor::spawn_linked(name, Membership, args, supervisor).await?.0.get_cell()
            }
            Child::Agent => Actor::spawn_linked(name, NodeAgent, node, supervisor).await?.0.get_cell(),
            Child::EventHub => {
                let args = EventHubArgs { subscribers: state.args.gateway.subscribers.clone(), metrics: measured };
                Actor::spawn_linked(name, EventHub, args, supervisor).await?.0.get_cell()
            }
        };
        state.running.insert(cell.get_id(), (child, cell));
        Ok(())
    }

    /// The child with actor id `id` went down.
    fn child_down(&self, myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, id: ActorId, why: &str) {
        if let Some((child, _)) = state.running.remove(&id) {
            self.restart_later(myself, state, child, why);
        }
    }

    /// Schedules a restart of `child` after its backoff, or escalates.
    fn restart_later(&self, myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, child: Child, why: &str) {
        if state.args.node.lifecycle.stopping() {
            return;
        }
        match state.history.on_failure(&state.policy, Instant::now()) {
            Decision::RestartAfter(backoff) => {
                tracing::warn!(actor = %child.name(), why, ?backoff, "restarting actor");
                myself.send_after(backoff, move || SupervisorMsg::Restart(child));
            }
            Decision::Escalate => {
                let policy = &state.policy;
                tracing::error!(
                    actor = %child.name(), why,
                    "more than {} restarts in {:?}: restart intensity exceeded, stopping the node",
                    policy.limit, policy.window
                );
                myself.stop(Some(format!("restart intensity exceeded by {}", child.name())));
            }
        }
    }

    async fn stop_children(&self, state: &mut SupervisorState, which: impl Fn(Child) -> bool) {
        let limit = state.args.node.config.server.shutdown_grace() + Duration::from_secs(5);
        let cells: Vec<ActorCell> =
            state.running.values().filter(|(child, _)| which(*child)).map(|(_, cell)| cell.clone()).collect();
        let stops = cells.iter().map(|cell| cell.stop_and_wait(Some("node shutting down".into()), Some(limit)));
        futures_util::future::join_all(stops).await;
    }
}

/// Starts a worker of `queue` named for `child`, linked to `supervisor`.
async fn spawn_worker<W: Worker>(
    child: Child,
    queue: Queue,
    node: Arc<Node>,
    metrics: ActorMetrics,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let args = WorkerArgs { node, name: child.name(), queue, metrics };
    let (actor, _) = Actor::spawn_linked(Some(child.name()), WorkerActor::<W>::default(), args, supervisor).await?;
    Ok(actor.get_cell())
}

/// Starts a periodic actor named for `child`, linked to `supervisor`.
async fn spawn_periodic<P: Periodic>(
    child: Child,
    node: Arc<Node>,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let (actor, _) = Actor::spawn_linked(Some(child.name()), PeriodicActor::<P>::default(), node, supervisor).await?;
    Ok(actor.get_cell())
}

impl Actor for NodeSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let config = &args.node.config;
        let policy = RestartPolicy {
            limit: config.server.restart_limit,
            window: config.server.restart_window(),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
        };
        let converters = config.server.converters;
        let mut state = SupervisorState { args, running: HashMap::new(), history: RestartHistory::default(), policy };
        // The gateway last: the API opens only once everything behind it runs. It runs on
        // every node, serving health and metrics, and the API only with the gateway role.
        let has = |role| state.args.node.config.server.has_role(role);
        let mut children = Vec::new();
        if has(Role::Auth) {
            children.push(Child::Auth);
        }
        if has(Role::Notifier) {
            children.extend([Queue::Mp3, Queue::Failures].map(Child::Notifier));
            children.extend([Queue::Mp3Dead, Queue::FailuresDead].map(Child::DeadLetters));
        }
        if has(Role::Converter) {
            children.extend((1..=converters).map(Child::Converter));
            children.extend([Child::DeadLetters(Queue::VideoDead), Child::Sweeper]);
        }
        if state.args.cluster.is_some() {
            children.extend([Child::Membership, Child::Agent]);
        }
        if has(Role::Gateway) {
            children.push(Child::EventHub);
        }
        children.extend([Child::Gauges, Child::Gateway]);
        for child in children {
            self.start(&myself, &mut state, child).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Restart(child) = message;
        if state.args.node.lifecycle.stopping() {
            return Ok(());
        }
        state.args.node.services.metrics.actors.restarted(&child.name());
        if let Err(error) = self.start(&myself, state, child).await {
            tracing::error!(actor = %child.name(), %error, "restart failed");
            self.restart_later(&myself, state, child, "its restart failed");
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            // A crash shows as a restart (`mp3c_actor_restarts_total`), not as a failed message.
            SupervisionEvent::ActorFailed(cell, error) => {
                self.child_down(&myself, state, cell.get_id(), &format!("failed: {error}"));
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = format!("stopped: {}", reason.unwrap_or_else(|| "no reason given".into()));
                self.child_down(&myself, state, cell.get_id(), &why);
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.node.lifecycle.shutdown.cancel();
        self.stop_children(state, |child| matches!(child, Child::Gateway | Child::EventHub)).await;
        self.stop_children(state, Child::is_worker).await;
        self.stop_children(state, |child| {
            matches!(child, Child::Auth | Child::Gauges | Child::Agent | Child::Membership)
        })
        .await;
        Ok(())
    }
}
