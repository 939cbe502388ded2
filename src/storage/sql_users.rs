//! The user store on any SQL database sqlx speaks: the legacy design's `user` table, the same queries on
//! SQLite (embedded) and MySQL/MariaDB (cluster). A macro writes the one implementation for each
//! pool type, since sqlx's generic executor bounds would say far more than the queries do.
//! Every query has a time limit, so a stalled server fails a login with 503 instead of hanging.

/// Implements [`UserStore`](super::UserStore) for `$store`, a struct with a `pool: $pool` field
/// whose queries return `$row`s.
macro_rules! sql_user_store {
    ($store:ident, $pool:ty, $row:ty) => {
        pub struct $store {
            pool: $pool,
        }

        impl $store {
            /// Whether an update matched a user (sqlx asks MySQL for matched rows, not changed).
            async fn changed(
                &self,
                what: &str,
                rows: impl std::future::Future<Output = Result<u64, sqlx::Error>>,
            ) -> $crate::storage::StorageResult<bool> {
                let rows = $crate::storage::timed(what, async {
                    rows.await.map_err($crate::storage::StorageError::unavailable)
                })
                .await?;
                Ok(rows > 0)
            }
        }

        fn user_of_row(row: &$row) -> $crate::storage::User {
            use sqlx::Row;
            let generation: i64 = row.get("session_generation");
            $crate::storage::User {
                email: row.get("email"),
                password_hash: row.get("password"),
                admin: row.get("is_admin"),
                session_generation: generation as u64,
            }
        }

        #[async_trait::async_trait]
        impl $crate::storage::UserStore for $store {
            async fn add(&self, user: &$crate::storage::User) -> $crate::storage::StorageResult<()> {
                let insert =
                    sqlx::query("INSERT INTO user (email, password, is_admin, created_at) VALUES (?, ?, ?, ?)")
                        .bind(&user.email)
                        .bind(&user.password_hash)
                        .bind(user.admin)
                        .bind($crate::storage::now_millis())
                        .execute(&self.pool);
                let result = $crate::storage::timed("adding a user", async { Ok(insert.await) }).await?;
                match result {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err($crate::storage::StorageError::Conflict)
                    }
                    Err(e) => Err($crate::storage::StorageError::unavailable(e)),
                }
            }

            async fn find(&self, email: &str) -> $crate::storage::StorageResult<Option<$crate::storage::User>> {
                let select =
                    sqlx::query("SELECT email, password, is_admin, session_generation FROM user WHERE email = ?")
                        .bind(email)
                        .fetch_optional(&self.pool);
                let row = $crate::storage::timed("finding a user", async {
                    select.await.map_err($crate::storage::StorageError::unavailable)
                })
                .await?;
                Ok(row.as_ref().map(user_of_row))
            }

            async fn list(&self) -> $crate::storage::StorageResult<Vec<$crate::storage::User>> {
                let select =
                    sqlx::query("SELECT email, password, is_admin, session_generation FROM user ORDER BY email")
                        .fetch_all(&self.pool);
                let rows = $crate::storage::timed("listing users", async {
                    select.await.map_err($crate::storage::StorageError::unavailable)
                })
                .await?;
                Ok(rows.iter().map(user_of_row).collect())
            }

            async fn delete(&self, email: &str) -> $crate::storage::StorageResult<bool> {
                let delete = sqlx::query("DELETE FROM user WHERE email = ?").bind(email).execute(&self.pool);
                self.changed("deleting a user", async { Ok(delete.await?.rows_affected()) }).await
            }

            async fn set_password(&self, email: &str, password_hash: &str) -> $crate::storage::StorageResult<bool> {
                let update = sqlx::query(
                    "UPDATE user SET password = ?, session_generation = session_generation + 1 WHERE email = ?",
                )
                .bind(password_hash)
                .bind(email)
                .execute(&self.pool);
                self.changed("changing a password", async { Ok(update.await?.rows_affected()) }).await
            }

            async fn set_admin(&self, email: &str, admin: bool) -> $crate::storage::StorageResult<bool> {
                let update = sqlx::query(
                    "UPDATE user SET is_admin = ?, session_generation = session_generation + 1 WHERE email = ?",
                )
                .bind(admin)
                .bind(email)
                .execute(&self.pool);
                self.changed("changing a user's role", async { Ok(update.await?.rows_affected()) }).await
            }

            async fn end_all_sessions(&self, email: &str) -> $crate::storage::StorageResult<bool> {
                let update = sqlx::query("UPDATE user SET session_generation = session_generation + 1 WHERE email = ?")
                    .bind(email)
                    .execute(&self.pool);
                self.changed("ending a user's sessions", async { Ok(update.await?.rows_affected()) }).await
            }

            async fn end_session(
                &self,
                email: &str,
                session_id: &str,
                expires_at: u64,
            ) -> $crate::storage::StorageResult<()> {
                let now = $crate::storage::now_millis() / 1000;
                let forget =
                    sqlx::query("DELETE FROM ended_session WHERE expires_at < ?").bind(now).execute(&self.pool);
                self.changed("forgetting expired sessions", async { Ok(forget.await?.rows_affected()) }).await?;
                let insert = sqlx::query("INSERT INTO ended_session (session_id, email, expires_at) VALUES (?, ?, ?)")
                    .bind(session_id)
                    .bind(email)
                    .bind(expires_at as i64)
                    .execute(&self.pool);
                match $crate::storage::timed("ending a session", async { Ok(insert.await) }).await? {
                    // Ended already (a second logout with the same token).
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(()),
                    Err(e) => Err($crate::storage::StorageError::unavailable(e)),
                    Ok(_) => Ok(()),
                }
            }

            async fn session_state(
                &self,
                email: &str,
            ) -> $crate::storage::StorageResult<Option<$crate::storage::SessionState>> {
                use sqlx::Row;
                let user = sqlx::query("SELECT session_generation FROM user WHERE email = ?")
                    .bind(email)
                    .fetch_optional(&self.pool);
                let Some(user) = $crate::storage::timed("reading a user's sessions", async {
                    user.await.map_err($crate::storage::StorageError::unavailable)
                })
                .await?
                else {
                    return Ok(None);
                };
                let now = $crate::storage::now_millis() / 1000;
                let ended = sqlx::query("SELECT session_id FROM ended_session WHERE email = ? AND expires_at >= ?")
                    .bind(email)
                    .bind(now)
                    .fetch_all(&self.pool);
                let ended = $crate::storage::timed("reading a user's ended sessions", async {
                    ended.await.map_err($crate::storage::StorageError::unavailable)
                })
                .await?;
                let generation: i64 = user.get("session_generation");
                Ok(Some($crate::storage::SessionState {
                    generation: generation as u64,
                    ended: ended.iter().map(|row| row.get("session_id")).collect(),
                }))
            }

            async fn ping(&self) -> $crate::storage::StorageResult<()> {
                let select = sqlx::query("SELECT 1").execute(&self.pool);
                $crate::storage::timed("pinging the user database", async {
                    select.await.map_err($crate::storage::StorageError::unavailable)
                })
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use sql_user_store;
