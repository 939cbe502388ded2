//! This node's clients following jobs (`GET /jobs/{id}/events`), and handing them the events
//! the node's hub receives.
//!
//! Each followed job has a small broadcast channel, made by its first subscriber and removed
//! with its last, so memory follows the subscribers, never the jobs or the events; at most
//! [`MAX_SUBSCRIBERS`] subscribe at once on a node. Handing over never waits: a channel keeps a
//! job's last [`BACKLOG`] events, and a subscriber that falls further behind is told it missed
//! some (it reads the job record again) rather than holding up the others or the hub.
//!
//! The subscribers belong to the node, not to the hub actor, so that a restarted hub finds the
//! clients still there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus::IntGauge;
use tokio::sync::broadcast;

use super::event::JobEvent;
use crate::ids::Id;

/// Subscriptions a node holds at once, all jobs together; past it a new one is refused.
pub const MAX_SUBSCRIBERS: usize = 10_000;
/// Events of one job a subscriber may fall behind by before it misses some.
pub const BACKLOG: usize = 16;

/// Every subscription of this node, by job.
pub struct JobSubscribers {
    jobs: Mutex<HashMap<Id, Followed>>,
    /// `mp3c_job_event_subscribers`: the subscriptions now, kept with the map.
    gauge: IntGauge,
}

/// One followed job.
struct Followed {
    sender: broadcast::Sender<Arc<JobEvent>>,
    /// Its subscriptions: the entry goes with the last (counted here rather than read from the
    /// channel, whose count lags behind a receiver being dropped).
    subscribers: usize,
}

/// Refused: the node has [`MAX_SUBSCRIBERS`] already.
#[derive(Debug, thiserror::Error)]
#[error("this node already has {MAX_SUBSCRIBERS} clients following jobs")]
pub struct TooManySubscribers;

impl JobSubscribers {
    pub fn new(gauge: IntGauge) -> JobSubscribers {
        JobSubscribers { jobs: Mutex::new(HashMap::new()), gauge }
    }

    /// Starts following `job_id`: every event of it from now on (within the backlog).
    pub fn subscribe(self: &Arc<Self>, job_id: Id) -> Result<Subscription, TooManySubscribers> {
        let mut jobs = self.lock();
        if self.gauge.get() as usize >= MAX_SUBSCRIBERS {
            return Err(TooManySubscribers);
        }
        let followed =
            jobs.entry(job_id).or_insert_with(|| Followed { sender: broadcast::channel(BACKLOG).0, subscribers: 0 });
        followed.subscribers += 1;
        self.gauge.inc();
        let receiver = followed.sender.subscribe();
        Ok(Subscription { job_id, receiver, subscribers: self.clone() })
    }

    /// Hands `event` to its job's subscribers on this node, if it has any; never waits.
    pub fn deliver(&self, event: JobEvent) {
        if let Some(followed) = self.lock().get(&event.job_id) {
            // An error only means that no receiver is left, which the count rules out.
            let _ = followed.sender.send(Arc::new(event));
        }
    }

    fn unsubscribe(&self, job_id: Id) {
        let mut jobs = self.lock();
        if let Some(followed) = jobs.get_mut(&job_id) {
            followed.subscribers -= 1;
            if followed.subscribers == 0 {
                jobs.remove(&job_id);
            }
        }
        self.gauge.dec();
    }

    /// The map; a panic elsewhere while it was held left it consistent (no step can panic
    /// half-way), so a poisoned lock is taken as is.
    fn lock(&self) -> MutexGuard<'_, HashMap<Id, Followed>> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One client following one job; dropping it unsubscribes.
pub struct Subscription {
    job_id: Id,
    receiver: broadcast::Receiver<Arc<JobEvent>>,
    subscribers: Arc<JobSubscribers>,
}

/// What a subscription receives.
#[derive(Debug, PartialEq)]
pub enum Received {
    Event(Arc<JobEvent>),
    /// The subscriber fell more than [`BACKLOG`] events behind, and missed some.
    Missed,
}

impl Subscription {
    /// The next event of the job, waiting for it.
    pub async fn recv(&mut self) -> Received {
        match self.receiver.recv().await {
            Ok(event) => Received::Event(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Received::Missed,
            // Cannot happen: this subscription's count keeps the sender in the map.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.subscribers.unsubscribe(self.job_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Job, JobState};

    fn subscribers() -> Arc<JobSubscribers> {
        Arc::new(JobSubscribers::new(IntGauge::new("subscribers", "test").unwrap()))
    }

    fn event(job_id: Id, version: u64) -> JobEvent {
        let mut job = Job::queued(job_id, "a@b.c", Id::generate(), "clip.mp4", 1);
        (job.state, job.version) = (JobState::Converting, version);
        JobEvent::of(&job)
    }

    fn version(received: Received) -> u64 {
        match received {
            Received::Event(event) => event.version,
            Received::Missed => panic!("missed events"),
        }
    }

    #[tokio::test]
    async fn each_subscriber_gets_the_events_of_its_own_job() {
        let subscribers = subscribers();
        let (a, b) = (Id::generate(), Id::generate());
        let (mut first, mut second, mut other) =
            (subscribers.subscribe(a).unwrap(), subscribers.subscribe(a).unwrap(), subscribers.subscribe(b).unwrap());
        subscribers.deliver(event(a, 1));
        subscribers.deliver(event(b, 7));
        subscribers.deliver(event(Id::generate(), 9));
        assert_eq!(version(first.recv().await), 1);
        assert_eq!(version(second.recv().await), 1);
        assert_eq!(version(other.recv().await), 7);
    }

    #[tokio::test]
    async fn a_slow_subscriber_misses_events_without_holding_up_the_others() {
        let subscribers = subscribers();
        let job = Id::generate();
        let (mut slow, mut quick) = (subscribers.subscribe(job).unwrap(), subscribers.subscribe(job).unwrap());
        for n in 0..(BACKLOG as u64 * 2) {
            subscribers.deliver(event(job, n));
            assert_eq!(version(quick.recv().await), n);
        }
        assert_eq!(slow.recv().await, Received::Missed);
        assert_eq!(version(slow.recv().await), BACKLOG as u64, "then the backlog kept");
    }

    #[test]
    fn subscriptions_are_counted_bounded_and_forgotten_with_the_last_one() {
        let subscribers = subscribers();
        let job = Id::generate();
        let first = subscribers.subscribe(job).unwrap();
        let second = subscribers.subscribe(job).unwrap();
        assert_eq!((subscribers.gauge.get(), subscribers.lock().len()), (2, 1));
        drop(first);
        assert_eq!((subscribers.gauge.get(), subscribers.lock().len()), (1, 1));
        drop(second);
        assert_eq!((subscribers.gauge.get(), subscribers.lock().len()), (0, 0));

        let held: Vec<Subscription> =
            (0..MAX_SUBSCRIBERS).map(|_| subscribers.subscribe(Id::generate()).unwrap()).collect();
        assert!(subscribers.subscribe(job).is_err(), "one past the limit");
        drop(held);
        assert_eq!((subscribers.gauge.get(), subscribers.lock().len()), (0, 0));
        assert!(subscribers.subscribe(job).is_ok());
    }
}
