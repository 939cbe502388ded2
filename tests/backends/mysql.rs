//! Users in MariaDB.

use mp3converter::storage::mysql::MysqlUsers;
use mp3converter::storage::{SessionState, StorageError, User, UserStore};

use crate::servers::mysql_url;

#[tokio::test]
async fn users_are_added_found_and_unique() {
    let users = MysqlUsers::connect(&mysql_url().await).await.unwrap();
    let alice = User {
        email: "alice@example.com".into(),
        password_hash: "$argon2id$v=19$stub".into(),
        admin: true,
        session_generation: 0,
    };
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

#[tokio::test]
async fn users_are_listed_changed_and_deleted() {
    let users = MysqlUsers::connect(&mysql_url().await).await.unwrap();
    let bob = User {
        email: "bob@example.com".into(),
        password_hash: "$argon2id$v=19$old".into(),
        admin: false,
        session_generation: 0,
    };
    users.add(&bob).await.unwrap();
    assert!(users.list().await.unwrap().iter().any(|user| user.email == bob.email && !user.admin));

    assert!(users.set_password(&bob.email, "$argon2id$v=19$new").await.unwrap());
    // Matched but unchanged still counts as found (MySQL reports changed rows unless asked).
    assert!(users.set_admin(&bob.email, true).await.unwrap());
    assert!(users.set_admin(&bob.email, true).await.unwrap());
    let found = users.find(&bob.email).await.unwrap().unwrap();
    assert_eq!((found.password_hash.as_str(), found.admin), ("$argon2id$v=19$new", true));

    assert!(!users.set_password("nobody@example.com", "x").await.unwrap());
    assert!(!users.set_admin("nobody@example.com", true).await.unwrap());
    assert!(users.delete(&bob.email).await.unwrap());
    assert!(!users.delete(&bob.email).await.unwrap());
    assert!(users.find(&bob.email).await.unwrap().is_none());
}

#[tokio::test]
async fn sessions_end_one_by_one_or_with_every_change_of_the_user() {
    let users = MysqlUsers::connect(&mysql_url().await).await.unwrap();
    let cid = User {
        email: "cid@example.com".into(),
        password_hash: "$argon2id$v=19$a".into(),
        admin: false,
        session_generation: 0,
    };
    users.add(&cid).await.unwrap();
    let state = |generation, ended: &[&str]| {
        Some(SessionState { generation, ended: ended.iter().map(|id| id.to_string()).collect() })
    };
    assert_eq!(users.session_state(&cid.email).await.unwrap(), state(0, &[]));

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    users.end_session(&cid.email, "one", now + 600).await.unwrap();
    users.end_session(&cid.email, "one", now + 600).await.unwrap();
    users.end_session(&cid.email, "expired", now - 1).await.unwrap();
    assert_eq!(users.session_state(&cid.email).await.unwrap(), state(0, &["one"]));

    assert!(users.set_password(&cid.email, "$argon2id$v=19$b").await.unwrap());
    assert!(users.set_admin(&cid.email, true).await.unwrap());
    assert!(users.end_all_sessions(&cid.email).await.unwrap());
    assert_eq!(users.find(&cid.email).await.unwrap().unwrap().session_generation, 3);
    assert_eq!(users.session_state(&cid.email).await.unwrap(), state(3, &["one"]));

    assert!(!users.end_all_sessions("nobody@example.com").await.unwrap());
    assert_eq!(users.session_state("nobody@example.com").await.unwrap(), None);
    assert!(users.delete(&cid.email).await.unwrap());
    assert_eq!(users.session_state(&cid.email).await.unwrap(), None);
}
