//! What only the MariaDB user store does (the user store's contract is [`crate::contract::users`]):
//! migrating the seed's schema, again and again.

use mp3converter::storage::UserStore;
use mp3converter::storage::mysql::MysqlUsers;

use crate::servers::mysql_url;

#[tokio::test]
async fn migrating_twice_is_harmless() {
    let url = mysql_url().await;
    MysqlUsers::connect(&url).await.unwrap();
    let again = MysqlUsers::connect(&url).await.unwrap();
    assert!(again.find("nobody@example.com").await.unwrap().is_none());
}
