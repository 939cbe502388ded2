//! Users in SQLite.

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};

use super::{db_error, ping};
use crate::storage::{StorageError, StorageResult, User, UserStore, now_millis};

pub struct SqliteUsers {
    pool: SqlitePool,
}

impl SqliteUsers {
    pub fn new(pool: SqlitePool) -> Self {
        SqliteUsers { pool }
    }
}

#[async_trait]
impl UserStore for SqliteUsers {
    async fn add(&self, user: &User) -> StorageResult<()> {
        let result = sqlx::query("INSERT INTO user (email, password, is_admin, created_at) VALUES (?, ?, ?, ?)")
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.admin)
            .bind(now_millis())
            .execute(&self.pool)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StorageError::Conflict),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn find(&self, email: &str) -> StorageResult<Option<User>> {
        let row = sqlx::query("SELECT email, password, is_admin FROM user WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(row.map(|row| User {
            email: row.get("email"),
            password_hash: row.get("password"),
            admin: row.get("is_admin"),
        }))
    }

    async fn ping(&self) -> StorageResult<()> {
        ping(&self.pool).await
    }
}
