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
    /// Every user, by email.
    async fn list(&self) -> StorageResult<Vec<User>>;
    /// Removes a user; false if there was none.
    async fn delete(&self, email: &str) -> StorageResult<bool>;
    /// Replaces a user's password hash; false if there is no such user.
    async fn set_password(&self, email: &str, password_hash: &str) -> StorageResult<bool>;
    /// Makes a user an admin or not; false if there is no such user.
    async fn set_admin(&self, email: &str, admin: bool) -> StorageResult<bool>;
    async fn ping(&self) -> StorageResult<()>;
}
