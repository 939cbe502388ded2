//! Users in SQLite.

use sqlx::SqlitePool;

use crate::storage::sql_users::sql_user_store;

sql_user_store!(SqliteUsers, SqlitePool, sqlx::sqlite::SqliteRow);

impl SqliteUsers {
    pub fn new(pool: SqlitePool) -> Self {
        SqliteUsers { pool }
    }
}
