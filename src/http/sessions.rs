//! Whether a validly signed token's session still stands: its user exists, is in the session
//! generation the token was issued in, and has not ended that session by itself.
//!
//! Every request with a token asks, so the answer comes from a short cache per user
//! ([`FRESH_FOR`]): a session ended on any node (or by the `user` commands, straight in the
//! database) is refused everywhere once the cached entries have aged out, within a few seconds,
//! with no message between nodes; the node that ended it forgets its entry at once. The cache
//! holds at most [`REMEMBERED_USERS`] users, so a flood of made-up names cannot grow it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::security::token::Claims;
use crate::storage::{SessionState, StorageError, UserStore};

/// How long a user's session state is taken as read: the longest a session ended elsewhere
/// stays usable here.
pub const FRESH_FOR: Duration = Duration::from_secs(2);
/// Most users whose state is cached at once (a few hundred bytes each).
const REMEMBERED_USERS: usize = 65_536;

/// Why a signed token is not honoured.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session was ended, or its user changed or is gone.
    #[error("the session has ended")]
    Ended,
    #[error(transparent)]
    Unavailable(#[from] StorageError),
}

/// The cached session states of the users seen lately.
pub struct Sessions {
    users: Arc<dyn UserStore>,
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    /// None: there is no such user.
    state: Option<SessionState>,
    read: Instant,
}

impl Sessions {
    pub fn new(users: Arc<dyn UserStore>) -> Self {
        Sessions { users, cache: Mutex::new(HashMap::new()) }
    }

    /// Ok if the session of `claims` still stands.
    pub async fn check(&self, claims: &Claims) -> Result<(), SessionError> {
        let state = match self.cached(&claims.username) {
            Some(state) => state,
            None => {
                let state = self.users.session_state(&claims.username).await?;
                self.remember(&claims.username, state.clone());
                state
            }
        };
        let stands = state.is_some_and(|state| {
            state.generation == claims.session_generation && !state.ended.contains(&claims.session_id)
        });
        if stands { Ok(()) } else { Err(SessionError::Ended) }
    }

    /// Ends the session of `claims` (`everywhere`: every session of its user), at once on this
    /// node.
    pub async fn end(&self, claims: &Claims, everywhere: bool) -> Result<(), StorageError> {
        // A token without a session id (another issuer's) can only end with its generation.
        if everywhere || claims.session_id.is_empty() {
            self.users.end_all_sessions(&claims.username).await?;
        } else {
            self.users.end_session(&claims.username, &claims.session_id, claims.exp).await?;
        }
        self.lock().remove(&claims.username);
        Ok(())
    }

    fn cached(&self, username: &str) -> Option<Option<SessionState>> {
        let cache = self.lock();
        let cached = cache.get(username)?;
        (cached.read.elapsed() < FRESH_FOR).then(|| cached.state.clone())
    }

    fn remember(&self, username: &str, state: Option<SessionState>) {
        let mut cache = self.lock();
        if cache.len() >= REMEMBERED_USERS {
            cache.retain(|_, cached| cached.read.elapsed() < FRESH_FOR);
            if cache.len() >= REMEMBERED_USERS {
                cache.clear();
            }
        }
        cache.insert(username.to_owned(), Cached { state, read: Instant::now() });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::User;
    use crate::storage::sqlite::{self, SqliteUsers};

    async fn store() -> (tempfile::TempDir, Arc<dyn UserStore>) {
        let dir = tempfile::tempdir().unwrap();
        let pool = sqlite::open(&dir.path().join("db")).await.unwrap();
        let users: Arc<dyn UserStore> = Arc::new(SqliteUsers::new(pool));
        let user =
            User { email: "ann@example.com".into(), password_hash: "x".into(), admin: false, session_generation: 0 };
        users.add(&user).await.unwrap();
        (dir, users)
    }

    fn claims(session_id: &str, generation: u64) -> Claims {
        Claims {
            username: "ann@example.com".into(),
            exp: u64::MAX / 2,
            iat: 0,
            admin: false,
            session_id: session_id.into(),
            session_generation: generation,
        }
    }

    #[tokio::test]
    async fn a_session_stands_until_it_or_its_generation_ends_here_at_once() {
        let (_dir, users) = store().await;
        let sessions = Sessions::new(users.clone());
        let (first, second) = (claims("first", 0), claims("second", 0));
        sessions.check(&first).await.unwrap();
        sessions.check(&second).await.unwrap();
        assert!(matches!(sessions.check(&claims("third", 1)).await, Err(SessionError::Ended)));

        sessions.end(&first, false).await.unwrap();
        assert!(matches!(sessions.check(&first).await, Err(SessionError::Ended)));
        sessions.check(&second).await.unwrap();
        sessions.end(&second, true).await.unwrap();
        assert!(matches!(sessions.check(&second).await, Err(SessionError::Ended)));
        sessions.check(&claims("new", 1)).await.unwrap();
        let stranger = Claims { username: "nobody@example.com".into(), ..claims("x", 0) };
        assert!(matches!(sessions.check(&stranger).await, Err(SessionError::Ended)));
    }

    #[tokio::test]
    async fn a_session_ended_elsewhere_is_refused_once_the_cache_ages() {
        let (_dir, users) = store().await;
        let (here, elsewhere) = (Sessions::new(users.clone()), Sessions::new(users));
        let session = claims("roaming", 0);
        here.check(&session).await.unwrap();
        elsewhere.end(&session, false).await.unwrap();
        let deadline = Instant::now() + FRESH_FOR + Duration::from_secs(2);
        while here.check(&session).await.is_ok() {
            assert!(Instant::now() < deadline, "still honoured after the cache's {FRESH_FOR:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
