//! Users in MySQL or MariaDB (the cluster profile), in the legacy design's `user` table.

use anyhow::Context;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};

use super::sql_users::sql_user_store;

sql_user_store!(MysqlUsers, MySqlPool, sqlx::mysql::MySqlRow);

impl MysqlUsers {
    /// Connects and migrates; the pool reconnects as the server comes and goes.
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
