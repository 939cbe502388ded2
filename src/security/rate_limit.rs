//! Rate limits with bounded memory: one token bucket per key (a client address, an account).
//!
//! A key may spend `burst` tokens at once and earns `per_minute` tokens back per minute, never
//! holding more than `burst`. Keys are kept only as keyed 64-bit hashes (a long key costs no
//! more than a short one, and the random hash key stops anyone from aiming collisions), and at
//! most `capacity` of them: when the table is full, buckets that have refilled are forgotten
//! (they are the same as a new key), and failing that the fullest one, which forgets the least.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How fast a key may act: `per_minute` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

impl Rate {
    fn tokens_per_second(self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }
}

/// A refusal: the key has no token left, and earns its next one after `retry_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl Bucket {
    /// Adds what was earned since the last update, up to the burst.
    fn refill(&mut self, rate: Rate, now: Instant) {
        let earned = now.saturating_duration_since(self.updated).as_secs_f64() * rate.tokens_per_second();
        self.tokens = (self.tokens + earned).min(f64::from(rate.burst));
        self.updated = now;
    }

    fn is_full(&self, rate: Rate) -> bool {
        self.tokens >= f64::from(rate.burst)
    }
}

/// Token buckets for many keys under one rate.
pub struct RateLimiter {
    rate: Rate,
    /// Most keys remembered at once, which bounds the memory to a few dozen bytes each.
    capacity: usize,
    /// Hashes keys with a key chosen at random per process.
    hasher: RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

impl RateLimiter {
    pub fn new(rate: Rate, capacity: usize) -> Self {
        RateLimiter { rate, capacity: capacity.max(1), hasher: RandomState::new(), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one of `key`'s tokens, or says how long until it has one.
    pub fn try_take(&self, key: &impl Hash, now: Instant) -> Result<(), Limited> {
        self.take_noting_untouched(key, now).map(drop)
    }

    /// As [`RateLimiter::try_take`], saying whether `key` had every token of its burst before
    /// (as a key never seen has): one step, so that two acts at once cannot both be first.
    pub fn take_noting_untouched(&self, key: &impl Hash, now: Instant) -> Result<bool, Limited> {
        let digest = self.hasher.hash_one(key);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(&digest) && buckets.len() >= self.capacity {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(digest).or_insert(Bucket { tokens: f64::from(self.rate.burst), updated: now });
        bucket.refill(self.rate, now);
        if bucket.tokens >= 1.0 {
            let untouched = bucket.is_full(self.rate);
            bucket.tokens -= 1.0;
            Ok(untouched)
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate.tokens_per_second();
            Err(Limited { retry_after: Duration::from_secs_f64(wait) })
        }
    }

    /// Returns a token taken for an act that, after all, does not count.
    pub fn give_back(&self, key: &impl Hash, now: Instant) {
        let digest = self.hasher.hash_one(key);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(&digest) {
            bucket.refill(self.rate, now);
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.rate.burst));
        }
    }

    /// Spends every token `key` has left: its next act waits for its rate.
    pub fn exhaust(&self, key: &impl Hash, now: Instant) {
        let digest = self.hasher.hash_one(key);
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(&digest) {
            bucket.tokens = 0.0;
            bucket.updated = now;
        }
    }

    /// Forgets the buckets that have refilled; if none has, the fullest eighth of them. A
    /// whole eighth at once: the scan, under the lock every login takes, is then paid once per
    /// many new keys, not for each of a flood of made-up ones.
    fn make_room(&self, buckets: &mut HashMap<u64, Bucket>, now: Instant) {
        buckets.values_mut().for_each(|bucket| bucket.refill(self.rate, now));
        buckets.retain(|_, bucket| !bucket.is_full(self.rate));
        if buckets.len() >= self.capacity {
            let mut by_tokens: Vec<(f64, u64)> = buckets.iter().map(|(digest, b)| (b.tokens, *digest)).collect();
            let evicted = (self.capacity / 8).max(1);
            by_tokens.select_nth_unstable_by(evicted - 1, |a, b| b.0.total_cmp(&a.0));
            for (_, digest) in &by_tokens[..evicted] {
                buckets.remove(digest);
            }
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate { per_minute: 60, burst: 3 };

    #[test]
    fn a_key_spends_its_burst_then_waits_for_its_rate() {
        let limiter = RateLimiter::new(RATE, 100);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.try_take(&"alice", start), Ok(()));
        }
        let refused = limiter.try_take(&"alice", start).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // Other keys are untouched.
        assert_eq!(limiter.try_take(&"bob", start), Ok(()));
        // One token a second comes back, never more than the burst.
        assert_eq!(limiter.try_take(&"alice", start + Duration::from_secs(1)), Ok(()));
        assert!(limiter.try_take(&"alice", start + Duration::from_secs(1)).is_err());
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.try_take(&"alice", much_later), Ok(()));
        }
        assert!(limiter.try_take(&"alice", much_later).is_err());
    }

    #[test]
    fn a_token_given_back_can_be_spent_again() {
        let limiter = RateLimiter::new(RATE, 100);
        let now = Instant::now();
        for _ in 0..3 {
            limiter.try_take(&"alice", now).unwrap();
        }
        limiter.give_back(&"alice", now);
        assert_eq!(limiter.try_take(&"alice", now), Ok(()));
        assert!(limiter.try_take(&"alice", now).is_err());
    }

    #[test]
    fn a_key_is_untouched_until_it_spends_and_exhausted_it_waits_for_its_rate() {
        let limiter = RateLimiter::new(RATE, 100);
        let now = Instant::now();
        assert_eq!(limiter.take_noting_untouched(&"alice", now), Ok(true));
        assert_eq!(limiter.take_noting_untouched(&"alice", now), Ok(false));
        let refilled = now + Duration::from_secs(2);
        assert_eq!(limiter.take_noting_untouched(&"alice", refilled), Ok(true));
        limiter.exhaust(&"alice", now);
        assert_eq!(limiter.try_take(&"alice", now).unwrap_err().retry_after, Duration::from_secs(1));
    }

    #[test]
    fn memory_stays_bounded_and_busy_keys_are_kept_longest() {
        let limiter = RateLimiter::new(RATE, 10);
        let now = Instant::now();
        // A busy key: its burst spent.
        for _ in 0..3 {
            limiter.try_take(&"flooder", now).unwrap();
        }
        for n in 0..1000 {
            limiter.try_take(&n, now).unwrap();
        }
        assert_eq!(limiter.remembered(), 10);
        assert!(limiter.try_take(&"flooder", now).is_err(), "the busy key was forgotten");
        // Once every bucket has refilled, room is made by forgetting them.
        let later = now + Duration::from_secs(60);
        limiter.try_take(&"newcomer", later).unwrap();
        assert_eq!(limiter.remembered(), 1);
    }

    #[test]
    fn a_full_table_forgets_an_eighth_at_once_keeping_busy_keys() {
        let limiter = RateLimiter::new(RATE, 64);
        let now = Instant::now();
        for _ in 0..3 {
            limiter.try_take(&"flooder", now).unwrap();
        }
        for n in 0..63 {
            limiter.try_take(&n, now).unwrap();
        }
        assert_eq!(limiter.remembered(), 64);
        // The next new key makes room for the next seven as well.
        limiter.try_take(&"one more", now).unwrap();
        assert_eq!(limiter.remembered(), 64 - 8 + 1);
        assert!(limiter.try_take(&"flooder", now).is_err(), "the busy key was forgotten");
    }
}
