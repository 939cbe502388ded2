//! Users in MySQL or MariaDB (the cluster profile), in the seed's `user` table.

use anyhow::Context;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

use super::{StorageError, StorageResult, User, UserStore, now_millis};

pub struct MysqlUsers {
    pool: MySqlPool,
}

fn db_error(error: sqlx::Error) -> StorageError {
    StorageError::unavailable(error)
}

impl MysqlUsers {
    /// Connects (lazily: the pool reconnects as the server comes and goes) and migrates.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .context("connecting to MySQL")?;
        sqlx::migrate!("./migrations/mysql").run(&pool).await.context("migrating the MySQL database")?;
        Ok(MysqlUsers { pool })
    }
}

#[async_trait]
impl UserStore for MysqlUsers {
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
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_error)?;
        Ok(())
    }
}
