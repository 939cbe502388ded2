//! The user store's contract: users added once, found, listed, changed and deleted; every
//! change of a user, and ending their sessions, moves their session generation on; sessions
//! ended one by one are remembered until their tokens expire.

use mp3converter::storage::mysql::MysqlUsers;
use mp3converter::storage::sqlite::SqliteUsers;
use mp3converter::storage::{SessionState, StorageError, User, UserStore};

use super::{Keep, contract};
use crate::servers::mysql_url;

fn user(email: &str, admin: bool) -> User {
    User { email: email.into(), password_hash: "$argon2id$v=19$stub".into(), admin, session_generation: 0 }
}

async fn sqlite() -> (Box<dyn UserStore>, Keep) {
    let (pool, dir) = super::sqlite().await;
    (Box::new(SqliteUsers::new(pool)), Some(dir))
}

/// A database of its own per test.
async fn mysql() -> (Box<dyn UserStore>, Keep) {
    (Box::new(MysqlUsers::connect(&mysql_url().await).await.unwrap()), None)
}

contract! {
    checks: [
        users_are_added_once_and_found_by_their_exact_email,
        users_are_listed_changed_and_deleted,
        sessions_end_one_by_one_or_with_every_change_of_the_user,
    ],
    backends: { sqlite => sqlite(), mysql => mysql() }
}

async fn users_are_added_once_and_found_by_their_exact_email(users: &dyn UserStore) {
    users.add(&user("alice@example.com", true)).await.unwrap();
    let found = users.find("alice@example.com").await.unwrap().unwrap();
    assert_eq!(
        (found.email.as_str(), found.password_hash.as_str(), found.admin),
        ("alice@example.com", "$argon2id$v=19$stub", true)
    );
    assert!(matches!(users.add(&user("alice@example.com", false)).await, Err(StorageError::Conflict)));
    assert!(users.find("' OR '1'='1").await.unwrap().is_none());
    assert!(users.find("alice@example").await.unwrap().is_none());
    users.ping().await.unwrap();
}

async fn users_are_listed_changed_and_deleted(users: &dyn UserStore) {
    let bob = user("bob@example.com", false);
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

async fn sessions_end_one_by_one_or_with_every_change_of_the_user(users: &dyn UserStore) {
    let cid = user("cid@example.com", false);
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
