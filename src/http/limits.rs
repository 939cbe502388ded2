//! What the gateway admits, so that the work clients can cause stays bounded: logins are
//! rate-limited per client address and per account ([`LoginLimits`]); uploads in progress are
//! capped per user and overall ([`UploadSlots`]), job event streams per user and per client
//! address ([`StreamSlots`]), connections per client address ([`ConnectionSlots`]).
//!
//! Password checks themselves are bounded where they run, in the auth actor's pool
//! ([`crate::security::password_checks`]); an upload's minimum transfer rate is
//! [`super::stall`]'s.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::ApiError;
use crate::config::Config;
use crate::security::rate_limit::{Limited, Rate, RateLimiter};

/// Most keys each login limiter remembers (a few dozen bytes each, so under a MiB): more than
/// the addresses and accounts that are busy within a few minutes on a service of this size.
const REMEMBERED_KEYS: usize = 16_384;

/// What a client over its upload cap is asked to wait: about the time a small upload takes.
const UPLOAD_RETRY_AFTER: Duration = Duration::from_secs(5);
/// What a client over its stream cap is asked to wait: streams end as their jobs do.
const STREAM_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The gateway's admission limits, shared by every connection of the node.
pub struct GatewayLimits {
    pub logins: LoginLimits,
    pub uploads: UploadSlots,
    pub streams: StreamSlots,
    pub connections: ConnectionSlots,
}

impl GatewayLimits {
    pub fn new(config: &Config) -> Self {
        let per_address =
            Rate { per_minute: config.limits.address_logins_per_minute, burst: config.limits.address_login_burst };
        let per_client_account = Rate {
            per_minute: config.limits.client_failed_logins_per_minute,
            burst: config.limits.client_failed_login_burst,
        };
        let per_account = Rate {
            per_minute: config.limits.account_failed_logins_per_minute,
            burst: config.limits.account_failed_login_burst,
        };
        GatewayLimits {
            logins: LoginLimits {
                per_address: RateLimiter::new(per_address, REMEMBERED_KEYS),
                per_client_account: RateLimiter::new(per_client_account, REMEMBERED_KEYS),
                per_account: RateLimiter::new(per_account, REMEMBERED_KEYS),
            },
            uploads: UploadSlots::new(
                config.limits.max_uploads_per_user as usize,
                config.limits.max_concurrent_uploads as usize,
            ),
            streams: StreamSlots::new(
                config.limits.max_event_streams_per_user as usize,
                config.limits.max_event_streams_per_address as usize,
            ),
            connections: ConnectionSlots::new(config.limits.max_connections_per_address as usize),
        }
    }
}

/// Login rate limits, which slow an attacker without locking the owner out (the policy, with
/// its numbers, is in the README's "Limits" section):
///
/// - every attempt counts against its client address (`per_address`): an address that floods
///   is slowed however it fares, whichever accounts it tries;
/// - failed guesses count against the account *and* the client address together
///   (`per_client_account`): a guesser runs out of tries on that account, and the owner,
///   from any other address, does not;
/// - failed guesses from all addresses together count against the account (`per_account`), a
///   ceiling for guessing from many addresses: over it, an address that has already failed
///   on the account waits, and a fresh one gets a single guess (the owner's right password
///   still goes through).
///
/// A correct password gives its tokens back, so logging in often never counts. Checks happen
/// before the password is verified, so a refused attempt costs no argon2 work, and a refusal
/// says the same whether the account exists or not.
pub struct LoginLimits {
    per_address: RateLimiter,
    per_client_account: RateLimiter,
    per_account: RateLimiter,
}

impl LoginLimits {
    /// Admits one attempt from `client` on `account`, or refuses it with 429 `too_many_logins`.
    pub fn admit(&self, client: IpAddr, account: &str) -> Result<LoginAttempt<'_>, ApiError> {
        let now = Instant::now();
        let client = address_key(client);
        self.per_address.try_take(&client, now).map_err(too_many_logins)?;
        let account = account.trim().to_lowercase();
        let pair = (account.clone(), client);
        let fresh_client = self.per_client_account.take_noting_untouched(&pair, now).map_err(too_many_logins)?;
        let over_ceiling = match self.per_account.try_take(&account, now) {
            Ok(()) => false,
            Err(limited) if !fresh_client => {
                self.per_client_account.give_back(&pair, now);
                return Err(too_many_logins(limited));
            }
            Err(_) => true,
        };
        Ok(LoginAttempt { limits: self, account, client, over_ceiling, failed_guess: false })
    }
}

/// An admitted attempt, holding its tokens until its outcome is known: kept for a wrong
/// password ([`LoginAttempt::failed_guess`]), given back on drop otherwise (a success, a login
/// that never reached the password check, or a client that hung up before it could learn the
/// answer).
pub struct LoginAttempt<'a> {
    limits: &'a LoginLimits,
    /// The account's key (its name, trimmed and lower-cased).
    account: String,
    /// The client address's key.
    client: IpAddr,
    /// Admitted past the account's ceiling, as a fresh client's single guess (it took no
    /// account token).
    over_ceiling: bool,
    failed_guess: bool,
}

impl LoginAttempt<'_> {
    /// The password was wrong: the tokens stay spent, and past the account's ceiling the
    /// client has had its one guess.
    pub fn failed_guess(mut self) {
        self.failed_guess = true;
        if self.over_ceiling {
            self.limits.per_client_account.exhaust(&(self.account.clone(), self.client), Instant::now());
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if self.failed_guess {
            return;
        }
        let now = Instant::now();
        if !self.over_ceiling {
            self.limits.per_account.give_back(&self.account, now);
        }
        self.limits.per_client_account.give_back(&(std::mem::take(&mut self.account), self.client), now);
    }
}

fn too_many_logins(limited: Limited) -> ApiError {
    ApiError::too_many("too_many_logins", "too many login attempts; try again later", limited.retry_after)
}

/// The key of a client address: IPv4 as it is, IPv6 by its /64 prefix (one subscriber's
/// network, whose other addresses cost its owner nothing), an IPv4-mapped IPv6 as its IPv4.
fn address_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

/// Things in progress (uploads, event streams, connections), counted per key (a user, a client
/// address), at most `limit` a key. Keys with nothing in progress are forgotten, so memory
/// follows what is in progress.
pub struct KeyedSlots<K> {
    limit: usize,
    held: Mutex<HashMap<K, usize>>,
}

/// One thing in progress; its slot is freed on drop.
pub struct KeyedSlot<K: Hash + Eq> {
    slots: Arc<KeyedSlots<K>>,
    key: Option<K>,
}

impl<K: Hash + Eq + Clone> KeyedSlots<K> {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(KeyedSlots { limit, held: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more under `key`, unless it has `limit` already.
    pub fn take(self: &Arc<Self>, key: &K) -> Option<KeyedSlot<K>> {
        let mut held = self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = held.entry(key.clone()).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(KeyedSlot { slots: self.clone(), key: Some(key.clone()) })
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.held.lock().unwrap().values().filter(|count| **count > 0).count()
    }
}

impl<K: Hash + Eq> Drop for KeyedSlot<K> {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(key) = self.key.take()
            && let Some(count) = held.get_mut(&key)
        {
            *count -= 1;
            if *count == 0 {
                held.remove(&key);
            }
        }
    }
}

/// Caps on uploads in progress: per user (429 `too_many_uploads`) and on the node (503
/// `busy`). A slot is taken before the body is read and freed when the upload ends, however.
pub struct UploadSlots {
    per_user: Arc<KeyedSlots<String>>,
    /// The node's, under one key.
    overall: Arc<KeyedSlots<()>>,
}

/// One upload in progress; its slots are freed on drop.
pub struct UploadSlot {
    _user: KeyedSlot<String>,
    _node: KeyedSlot<()>,
}

impl UploadSlots {
    pub fn new(per_user: usize, overall: usize) -> Self {
        UploadSlots { per_user: KeyedSlots::new(per_user), overall: KeyedSlots::new(overall) }
    }

    /// A slot for one more upload by `user`, or the refusal.
    pub fn take(&self, user: &str) -> Result<UploadSlot, ApiError> {
        let Some(user_slot) = self.per_user.take(&user.to_owned()) else {
            let message = format!("at most {} uploads per user may be in progress at once", self.per_user.limit);
            return Err(ApiError::too_many("too_many_uploads", message, UPLOAD_RETRY_AFTER));
        };
        let node_slot = self.overall.take(&()).ok_or_else(|| {
            ApiError::busy("the server has as many uploads in progress as it takes; try again shortly")
        })?;
        Ok(UploadSlot { _user: user_slot, _node: node_slot })
    }
}

/// Caps on the job event streams one user and one client address may hold open (429
/// `too_many_streams`), so that nobody takes the node's whole share.
pub struct StreamSlots {
    per_user: Arc<KeyedSlots<String>>,
    per_address: Arc<KeyedSlots<IpAddr>>,
}

/// One event stream open; its slots are freed on drop (when the stream ends).
pub struct StreamSlot {
    _user: KeyedSlot<String>,
    _address: KeyedSlot<IpAddr>,
}

impl StreamSlots {
    pub fn new(per_user: usize, per_address: usize) -> Self {
        StreamSlots { per_user: KeyedSlots::new(per_user), per_address: KeyedSlots::new(per_address) }
    }

    /// A slot for one more stream of `user` from `client`, or the refusal.
    pub fn take(&self, user: &str, client: IpAddr) -> Result<StreamSlot, ApiError> {
        let refused = |limit: usize, whose: &str| {
            let message = format!("at most {limit} job event streams may be open at once per {whose}");
            ApiError::too_many("too_many_streams", message, STREAM_RETRY_AFTER)
        };
        let user_slot = self.per_user.take(&user.to_owned()).ok_or_else(|| refused(self.per_user.limit, "user"))?;
        let address = address_key(client);
        let address_slot =
            self.per_address.take(&address).ok_or_else(|| refused(self.per_address.limit, "client address"))?;
        Ok(StreamSlot { _user: user_slot, _address: address_slot })
    }
}

/// Open connections per client address (its TCP peer, trusted proxies aside); past the cap a
/// new connection is answered 429 `too_many_connections` and closed.
pub struct ConnectionSlots(Arc<KeyedSlots<IpAddr>>);

impl ConnectionSlots {
    pub fn new(per_address: usize) -> Self {
        ConnectionSlots(KeyedSlots::new(per_address))
    }

    /// A slot for one more connection from `peer`, unless it has the most already.
    pub fn take(&self, peer: IpAddr) -> Option<KeyedSlot<IpAddr>> {
        self.0.take(&address_key(peer))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    #[test]
    fn uploads_are_capped_per_user_then_overall_and_freed_when_they_end() {
        let slots = UploadSlots::new(2, 3);
        let first = slots.take("ann").unwrap();
        let _second = slots.take("ann").unwrap();
        let refused = slots.take("ann").err().unwrap();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "too_many_uploads"));
        let _bob = slots.take("bob").unwrap();
        let refused = slots.take("cid").err().unwrap();
        assert_eq!((refused.status, refused.code), (StatusCode::SERVICE_UNAVAILABLE, "busy"));
        drop(first);
        assert!(slots.take("cid").is_ok());
        assert_eq!(slots.per_user.keys(), 2, "cid's slot went with its drop");
    }

    #[test]
    fn streams_are_capped_per_user_and_per_address_and_freed_when_they_end() {
        let slots = StreamSlots::new(2, 3);
        let (here, there): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = slots.take("ann", here).unwrap();
        let _second = slots.take("ann", here).unwrap();
        let refused = slots.take("ann", there).err().unwrap();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"));
        let _bob = slots.take("bob", here).unwrap();
        assert!(slots.take("cid", here).is_err(), "the address has 3");
        let _cid = slots.take("cid", there).unwrap();
        drop(first);
        let _ann_there = slots.take("ann", there).unwrap();
        assert_eq!((slots.per_user.keys(), slots.per_address.keys()), (3, 2));
    }

    fn limits(address_burst: u32, client_account_burst: u32, account_burst: u32) -> LoginLimits {
        let rate = |burst| RateLimiter::new(Rate { per_minute: 1, burst }, 100);
        LoginLimits {
            per_address: rate(address_burst),
            per_client_account: rate(client_account_burst),
            per_account: rate(account_burst),
        }
    }

    fn is_refused(admitted: Result<LoginAttempt<'_>, ApiError>) -> bool {
        match admitted {
            Ok(_) => false,
            Err(refused) => (refused.status, refused.code) == (StatusCode::TOO_MANY_REQUESTS, "too_many_logins"),
        }
    }

    #[test]
    fn failed_guesses_count_against_the_account_from_that_client_only() {
        let limits = limits(100, 2, 100);
        let (guesser, owner): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "198.51.100.7".parse().unwrap());
        for _ in 0..10 {
            drop(limits.admit(guesser, "ann@example.com").unwrap());
        }
        limits.admit(guesser, "ann@example.com").unwrap().failed_guess();
        limits.admit(guesser, " Ann@Example.com").unwrap().failed_guess();
        assert!(is_refused(limits.admit(guesser, "ann@example.com")));
        assert!(limits.admit(guesser, "bob@example.com").is_ok());
        assert!(limits.admit(owner, "ann@example.com").is_ok(), "the owner was locked out");
    }

    #[test]
    fn past_the_accounts_ceiling_a_fresh_client_gets_one_guess_and_the_others_wait() {
        let limits = limits(100, 5, 3);
        let address = |n: u8| IpAddr::from([203, 0, 113, n]);
        // Three guessers use up the account's ceiling, one guess each.
        for n in 1..=3 {
            limits.admit(address(n), "ann@example.com").unwrap().failed_guess();
        }
        // Each of them waits now, though under its own limit of 5.
        assert!(is_refused(limits.admit(address(1), "ann@example.com")));
        // A fresh address has a single guess...
        limits.admit(address(4), "ann@example.com").unwrap().failed_guess();
        assert!(is_refused(limits.admit(address(4), "ann@example.com")));
        // ...which, right, is the owner's: it logs in, and gives nothing away.
        drop(limits.admit(address(5), "ann@example.com").unwrap());
        drop(limits.admit(address(5), "ann@example.com").unwrap());
        // Other accounts are untouched.
        assert!(limits.admit(address(1), "bob@example.com").is_ok());
    }

    #[test]
    fn every_attempt_counts_against_an_address_and_ipv6_by_its_64_bit_prefix() {
        let limits = limits(2, 100, 100);
        let first: IpAddr = "2001:db8::1".parse().unwrap();
        let same_network: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        drop(limits.admit(first, "a@example.com").unwrap());
        drop(limits.admit(same_network, "b@example.com").unwrap());
        assert!(limits.admit(first, "c@example.com").is_err());
        assert!(limits.admit("2001:db8:0:1::1".parse().unwrap(), "c@example.com").is_ok());
    }
}
