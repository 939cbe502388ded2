//! Accounts: the login name (an email address, as in the seed) and an argon2id hash of the
//! password, never the password itself.

use async_trait::async_trait;

use super::StorageResult;

#[derive(Clone, Debug)]
pub struct User {
    /// The login name; the seed calls it `email` and mails notifications to it.
    pub email: String,
    /// A PHC-format argon2id hash; never the password.
    pub password_hash: String,
    pub admin: bool,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a user; `Conflict` if the email is taken.
    async fn add(&self, user: &User) -> StorageResult<()>;
    async fn find(&self, email: &str) -> StorageResult<Option<User>>;
    async fn ping(&self) -> StorageResult<()>;
}
