//! Accounts: the login name (an email address, as in the legacy design) and an argon2id hash of the
//! password, never the password itself; and what ends their sessions early (a generation that
//! every password or role change moves on, and sessions ended one by one).

use async_trait::async_trait;

use super::StorageResult;

#[derive(Clone, Debug)]
pub struct User {
    /// The login name; the legacy design calls it `email` and mails notifications to it.
    pub email: String,
    /// A PHC-format argon2id hash; never the password.
    pub password_hash: String,
    pub admin: bool,
    /// Moves on with every change that must end the user's sessions (a new password, another
    /// role, "log out everywhere"); a token carries the generation it was issued in.
    pub session_generation: u64,
}

/// What a token of one user must match to be honoured: the user's generation, and not one of
/// the sessions the user ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    pub generation: u64,
    /// Ids of the user's sessions ended by themselves, whose tokens have not expired yet.
    pub ended: Vec<String>,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; `Conflict` if the email is taken.
    async fn add(&self, user: &User) -> StorageResult<()>;
    async fn find(&self, email: &str) -> StorageResult<Option<User>>;
    /// Every user, by email.
    async fn list(&self) -> StorageResult<Vec<User>>;
    /// Removes a user; false if there was none.
    async fn delete(&self, email: &str) -> StorageResult<bool>;
    /// Replaces a user's password hash and ends every session of theirs; false if there is no
    /// such user.
    async fn set_password(&self, email: &str, password_hash: &str) -> StorageResult<bool>;
    /// Makes a user an admin or not and ends every session of theirs (whose tokens carry the
    /// old role); false if there is no such user.
    async fn set_admin(&self, email: &str, admin: bool) -> StorageResult<bool>;
    /// Ends every session of a user; false if there is no such user.
    async fn end_all_sessions(&self, email: &str) -> StorageResult<bool>;
    /// Ends one session, remembered until `expires_at` (Unix seconds, its token's expiry); the
    /// ended sessions whose tokens have expired are forgotten on the way.
    async fn end_session(&self, email: &str, session_id: &str, expires_at: u64) -> StorageResult<()>;
    /// What a token of the user must match; None if there is no such user.
    async fn session_state(&self, email: &str) -> StorageResult<Option<SessionState>>;
    async fn ping(&self) -> StorageResult<()>;
}
