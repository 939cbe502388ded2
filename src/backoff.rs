//! Doubling backoff, the one rule every retry of the service waits by: a delivery retried
//! through an outage, a backend call tried again, a restarted actor, a redialled peer, a
//! client waiting for a server that is briefly away.

use std::time::Duration;

/// Waits that start at `first` and double with each try, up to `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { first, cap }
    }

    /// The wait before try number `attempt` (from 1): `first`, doubling each try, at most `cap`.
    pub fn wait(&self, attempt: u32) -> Duration {
        self.first.saturating_mul(1 << attempt.saturating_sub(1).min(20)).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_doubles_from_its_first_wait_to_its_cap() {
        let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
        let millis: Vec<u128> = (1..=7).map(|try_number| backoff.wait(try_number).as_millis()).collect();
        assert_eq!(millis, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        assert_eq!(backoff.wait(0), backoff.first, "a try before the first waits as the first");
        assert_eq!(backoff.wait(u32::MAX), backoff.cap, "no overflow, however long it lasts");
    }
}
