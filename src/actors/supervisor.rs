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

use super::auth::AuthActor;
use super::converter::Converter;
use super::dead_letters::{DeadNotices, DeadVideos};
use super::event_hub::EventHub;
use super::gateway::{GatewayActor, GatewayArgs};
use super::gauges::Gauges;
use super::notifier::Notifier;
use super::periodic::{Periodic, PeriodicActor};
use super::restart::{Decision, RestartHistory, RestartPolicy};
use super::sweeper::Sweeper;
use super::worker::{Worker, WorkerActor};
use super::{AUTH, EVENT_HUB, GATEWAY, GAUGES, NodeContext, SWEEPER, converter_name};
use crate::cluster::agent::{MEMBERSHIP, NodeAgent};
use crate::cluster::membership::{Membership, MembershipArgs};
use crate::config::Role;
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
    pub fn name(self) -> String {
        match self {
            Child::Gateway => GATEWAY.to_owned(),
            Child::Auth => AUTH.to_owned(),
            Child::Converter(n) => converter_name(n),
            Child::Notifier(Queue::Mp3) => "notifier".to_owned(),
            Child::Notifier(queue) => format!("notifier-{}", queue.name()),
            Child::DeadLetters(queue) => format!("dead-letters-{}", queue.work().name()),
            Child::Sweeper => SWEEPER.to_owned(),
            Child::Gauges => GAUGES.to_owned(),
            Child::Membership => MEMBERSHIP.to_owned(),
            Child::Agent => "node-agent".to_owned(),
            Child::EventHub => EVENT_HUB.to_owned(),
        }
    }

    /// Children that take work from the mailbox: stopped after the gateway, before auth.
    fn is_worker(self) -> bool {
        matches!(self, Child::Converter(_) | Child::Notifier(_) | Child::DeadLetters(_) | Child::Sweeper)
    }
}

pub struct NodeSupervisor;

pub struct SupervisorArgs {
    pub ctx: Arc<NodeContext>,
    pub listeners: crate::http::Listeners,
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
        let ctx = state.args.ctx.clone();
        let name = Some(child.name());
        let supervisor = myself.get_cell();
        let cell = match child {
            Child::Gateway => {
                let args = GatewayArgs { ctx, listeners: state.args.listeners.clone() };
                Actor::spawn_linked(name, GatewayActor, args, supervisor).await?.0.get_cell()
            }
            Child::Auth => Actor::spawn_linked(name, AuthActor, ctx, supervisor).await?.0.get_cell(),
            Child::Converter(_) => spawn_worker::<Converter>(child, Queue::Video, ctx, supervisor).await?,
            Child::Notifier(queue) => spawn_worker::<Notifier>(child, queue, ctx, supervisor).await?,
            Child::DeadLetters(Queue::VideoDead) => {
                spawn_worker::<DeadVideos>(child, Queue::VideoDead, ctx, supervisor).await?
            }
            Child::DeadLetters(queue) => spawn_worker::<DeadNotices>(child, queue, ctx, supervisor).await?,
            Child::Sweeper => spawn_periodic::<Sweeper>(child, ctx, supervisor).await?,
            Child::Gauges => spawn_periodic::<Gauges>(child, ctx, supervisor).await?,
            Child::Membership => {
                let link = ctx.cluster.clone().ok_or("the membership needs the actor cluster")?;
                let args = MembershipArgs {
                    server: link.server,
                    dialer: link.dialer,
                    hello: link.hello,
                    seeds: link.seeds,
                    metrics: ctx.metrics.clone(),
                };
                Actor::spawn_linked(name, Membership, args, supervisor).await?.0.get_cell()
            }
            Child::Agent => Actor::spawn_linked(name, NodeAgent, ctx, supervisor).await?.0.get_cell(),
            Child::EventHub => Actor::spawn_linked(name, EventHub, ctx, supervisor).await?.0.get_cell(),
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
        if state.args.ctx.shutdown.is_cancelled() {
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
        let limit = state.args.ctx.config.shutdown_grace() + Duration::from_secs(5);
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
    ctx: Arc<NodeContext>,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let name = child.name();
    let args = (ctx, name.clone(), queue);
    let (actor, _) = Actor::spawn_linked(Some(name), WorkerActor::<W>::default(), args, supervisor).await?;
    Ok(actor.get_cell())
}

/// Starts a periodic actor named for `child`, linked to `supervisor`.
async fn spawn_periodic<P: Periodic>(
    child: Child,
    ctx: Arc<NodeContext>,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let (actor, _) = Actor::spawn_linked(Some(child.name()), PeriodicActor::<P>::default(), ctx, supervisor).await?;
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
        let config = &args.ctx.config;
        let policy = RestartPolicy {
            limit: config.restart_limit,
            window: config.restart_window(),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        };
        let converters = config.converters;
        let mut state = SupervisorState { args, running: HashMap::new(), history: RestartHistory::default(), policy };
        // The gateway last: the API opens only once everything behind it runs. It runs on
        // every node, serving health and metrics, and the API only with the gateway role.
        let has = |role| state.args.ctx.config.has_role(role);
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
        if state.args.ctx.cluster.is_some() {
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
        if state.args.ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        state.args.ctx.metrics.actor_restarted(&child.name());
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
            SupervisionEvent::ActorFailed(cell, error) => {
                state.args.ctx.metrics.actor(&cell.get_name().unwrap_or_default()).failed();
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
        state.args.ctx.shutdown.cancel();
        self.stop_children(state, |child| matches!(child, Child::Gateway | Child::EventHub)).await;
        self.stop_children(state, Child::is_worker).await;
        self.stop_children(state, |child| {
            matches!(child, Child::Auth | Child::Gauges | Child::Agent | Child::Membership)
        })
        .await;
        Ok(())
    }
}
