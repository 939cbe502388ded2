//! The supervisor's restart policy, as OTP has it: restart a failed child after a backoff that
//! grows with recent restarts, but at most `limit` restarts within `window`; past that the
//! failure is escalated and the node stops, rather than thrashing forever.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;

#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    pub limit: u32,
    pub window: Duration,
    /// The wait before a restart: its first for the first restart in a window, doubling for
    /// each further one.
    pub backoff: Backoff,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    RestartAfter(Duration),
    Escalate,
}

/// Restarts within the current window.
#[derive(Debug, Default)]
pub struct RestartHistory {
    recent: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a failure at `now` and decides what to do about it.
    pub fn on_failure(&mut self, policy: &RestartPolicy, now: Instant) -> Decision {
        while self.recent.front().is_some_and(|&at| now.duration_since(at) >= policy.window) {
            self.recent.pop_front();
        }
        if self.recent.len() as u32 >= policy.limit {
            return Decision::Escalate;
        }
        self.recent.push_back(now);
        Decision::RestartAfter(policy.backoff.wait(self.recent.len() as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            limit: 3,
            window: Duration::from_secs(10),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_millis(250)),
        }
    }

    #[test]
    fn backs_off_then_escalates_past_the_limit() {
        let mut history = RestartHistory::default();
        let start = Instant::now();
        assert_eq!(history.on_failure(&policy(), start), Decision::RestartAfter(Duration::from_millis(100)));
        assert_eq!(history.on_failure(&policy(), start), Decision::RestartAfter(Duration::from_millis(200)));
        assert_eq!(history.on_failure(&policy(), start), Decision::RestartAfter(Duration::from_millis(250)));
        assert_eq!(history.on_failure(&policy(), start), Decision::Escalate);
    }

    #[test]
    fn failures_older_than_the_window_are_forgiven() {
        let mut history = RestartHistory::default();
        let start = Instant::now();
        for _ in 0..3 {
            history.on_failure(&policy(), start);
        }
        let later = start + Duration::from_secs(11);
        assert_eq!(history.on_failure(&policy(), later), Decision::RestartAfter(Duration::from_millis(100)));
    }
}
