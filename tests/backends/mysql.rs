//! Users in MariaDB.

use mp3converter::storage::mysql::MysqlUsers;
use mp3converter::storage::{StorageError, User, UserStore};

use crate::servers::mysql_url;

#[tokio::test]
async fn users_are_added_found_and_unique() {
    let users = MysqlUsers::connect(&mysql_url().await).await.unwrap();
    let alice = User { email: "alice@example.com".into(), password_hash: "$argon2id$v=19$stub".into(), admin: true };
    users.add(&alice).await.unwrap();
    let found = users.find("alice@example.com").await.unwrap().unwrap();
    assert_eq!(
        (found.email.as_str(), found.password_hash.as_str(), found.admin),
        ("alice@example.com", "$argon2id$v=19$stub", true)
    );
    assert!(matches!(users.add(&alice).await, Err(StorageError::Conflict)));
    assert!(users.find("' OR '1'='1").await.unwrap().is_none());
    users.ping().await.unwrap();
}

#[tokio::test]
async fn migrating_twice_is_harmless() {
    let url = mysql_url().await;
    MysqlUsers::connect(&url).await.unwrap();
    let again = MysqlUsers::connect(&url).await.unwrap();
    assert!(again.find("nobody@example.com").await.unwrap().is_none());
}
