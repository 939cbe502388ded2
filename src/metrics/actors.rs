//! Every actor's series (`actor` label): messages handled and their time, messages whose
//! handling failed, messages in hand, and restarts by the supervisor. An actor that crashes
//! shows as a restart; `mp3c_actor_failures_total` counts messages only.

use std::time::Instant;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::{register, seconds};

pub struct ActorFamily {
    messages: IntCounterVec,
    message_seconds: HistogramVec,
    failures: IntCounterVec,
    restarts: IntCounterVec,
    inflight: IntGaugeVec,
}

impl ActorFamily {
    pub(super) fn new(r: &Registry) -> Self {
        let counter =
            |name: &str, help: &str| register(r, IntCounterVec::new(Opts::new(name, help), &["actor"]).unwrap());
        ActorFamily {
            messages: counter("mp3c_actor_messages_total", "Messages an actor handled."),
            message_seconds: register(
                r,
                HistogramVec::new(
                    seconds("mp3c_actor_message_duration_seconds", "Time an actor spent handling one message."),
                    &["actor"],
                )
                .unwrap(),
            ),
            failures: counter("mp3c_actor_failures_total", "Messages whose handling failed."),
            restarts: counter("mp3c_actor_restarts_total", "Times the supervisor restarted an actor."),
            inflight: register(
                r,
                IntGaugeVec::new(
                    Opts::new("mp3c_actor_inflight", "Messages an actor is handling right now."),
                    &["actor"],
                )
                .unwrap(),
            ),
        }
    }

    /// The handles of the actor called `actor`; every series of it exists (at zero) from then
    /// on, its restarts included. The supervisor asks for each child it starts.
    pub fn of(&self, actor: &str) -> ActorMetrics {
        self.restarts.with_label_values(&[actor]);
        ActorMetrics {
            messages: self.messages.with_label_values(&[actor]),
            seconds: self.message_seconds.with_label_values(&[actor]),
            failures: self.failures.with_label_values(&[actor]),
            inflight: self.inflight.with_label_values(&[actor]),
        }
    }

    pub fn restarted(&self, actor: &str) {
        self.restarts.with_label_values(&[actor]).inc();
    }
}

/// One actor's handles; cheap to clone.
#[derive(Clone)]
pub struct ActorMetrics {
    messages: IntCounter,
    seconds: Histogram,
    failures: IntCounter,
    inflight: IntGauge,
}

impl ActorMetrics {
    /// Starts timing one message; the guard records it when dropped.
    pub fn begin(&self) -> Handling {
        self.inflight.inc();
        Handling { metrics: self.clone(), started: Instant::now() }
    }

    /// A message whose handling failed.
    pub fn failed(&self) {
        self.failures.inc();
    }
}

/// One message being handled; it may move into a task that finishes the work.
pub struct Handling {
    metrics: ActorMetrics,
    started: Instant,
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.metrics.inflight.dec();
        self.metrics.messages.inc();
        self.metrics.seconds.observe(self.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;

    #[test]
    fn an_actor_has_every_series_from_the_start_its_restarts_included() {
        let metrics = Metrics::new("n1");
        let _handles = metrics.actors.of("sweeper");
        let text = metrics.render();
        for family in ["mp3c_actor_restarts_total", "mp3c_actor_messages_total", "mp3c_actor_failures_total"] {
            assert!(text.contains(&format!("{family}{{actor=\"sweeper\",node=\"n1\"}} 0")), "{family}: {text}");
        }
    }
}
