//! The mailbox's contract: a message goes to one consumer at a time until answered; a release
//! does not count as a delivery, an unanswered delivery does and comes back, a retry comes back
//! after its delay; a message left unanswered as often as the delivery limit goes to its
//! dead-letter queue; a message is forwarded afresh or parked for inspection.

use std::time::Duration;

use mp3converter::storage::rabbitmq::RabbitMailbox;
use mp3converter::storage::sqlite::SqliteMailbox;
use mp3converter::storage::{DELIVERY_LIMIT, Mailbox, Queue};

use super::{Keep, contract};
use crate::servers::{amqp_url, eventually};

/// A wait that a delivery due now always meets, on a loaded machine too.
const WAIT: Duration = Duration::from_secs(10);
/// A wait in which nothing that is not due may come.
const QUIET: Duration = Duration::from_millis(300);
/// The SQLite mailbox's lease in these tests: renewed every third of it while a delivery is
/// held, which a loaded machine's late timers (hundreds of milliseconds) must not outrun.
const LEASE: Duration = Duration::from_secs(2);
/// The SQLite mailbox's delivery limit in these tests (the production one, for RabbitMQ).
const SQLITE_LIMIT: u32 = 3;

/// A mailbox and its delivery limit.
struct Limited(Box<dyn Mailbox>, u32);

async fn sqlite() -> (Box<Limited>, Keep) {
    let (pool, dir) = super::sqlite().await;
    (Box::new(Limited(Box::new(SqliteMailbox::new(pool, LEASE, SQLITE_LIMIT)), SQLITE_LIMIT)), Some(dir))
}

/// A virtual host of its own per test.
async fn rabbitmq() -> (Box<Limited>, Keep) {
    (
        Box::new(Limited(
            Box::new(RabbitMailbox::new(amqp_url().await, 1, Duration::from_millis(500))),
            DELIVERY_LIMIT,
        )),
        None,
    )
}

contract! {
    checks: [
        a_message_goes_to_one_consumer_and_is_acked_away,
        a_waiting_consumer_is_woken_by_a_publish,
        a_released_message_comes_back_without_counting,
        an_unanswered_delivery_comes_back_counted,
        a_retry_comes_back_after_its_delay_as_the_next_attempt_and_never_dead_letters,
        a_message_left_unanswered_as_often_as_the_limit_is_dead_lettered,
        a_message_is_forwarded_afresh_and_an_unreadable_one_parked,
    ],
    backends: { sqlite => sqlite(), rabbitmq => rabbitmq() }
}

async fn a_message_goes_to_one_consumer_and_is_acked_away(limited: &Limited) {
    let mailbox = limited.0.as_ref();
    mailbox.publish(Queue::Video, b"job-1").await.unwrap();
    let delivery = mailbox.receive(Queue::Video, "converter-1", WAIT).await.unwrap().unwrap();
    assert_eq!((delivery.body(), delivery.attempt(), delivery.queue()), (&b"job-1"[..], 1, Queue::Video));
    // Held past its lease: the holder renews it.
    let held = mailbox.receive(Queue::Video, "converter-2", 2 * LEASE).await.unwrap();
    assert!(held.is_none(), "held by the first");
    assert!(mailbox.receive(Queue::Mp3, "notifier", QUIET).await.unwrap().is_none(), "queues are apart");
    delivery.ack().await.unwrap();
    assert!(mailbox.receive(Queue::Video, "converter-2", QUIET).await.unwrap().is_none(), "acked away");
    assert_eq!(mailbox.depth(Queue::Video).await.unwrap(), 0);
    mailbox.ping().await.unwrap();
}

async fn a_waiting_consumer_is_woken_by_a_publish(limited: &Limited) {
    let mailbox = limited.0.as_ref();
    let (received, ()) = tokio::join!(mailbox.receive(Queue::Mp3, "notifier", WAIT), async {
        tokio::time::sleep(QUIET).await;
        mailbox.publish(Queue::Mp3, b"done").await.unwrap();
    });
    let delivery = received.unwrap().expect("woken within the wait");
    assert_eq!(delivery.body(), b"done");
    delivery.ack().await.unwrap();
}

async fn a_released_message_comes_back_without_counting(limited: &Limited) {
    let mailbox = limited.0.as_ref();
    mailbox.publish(Queue::Mp3, b"done").await.unwrap();
    let first = mailbox.receive(Queue::Mp3, "n", WAIT).await.unwrap().unwrap();
    first.release().await.unwrap();
    let again = mailbox.receive(Queue::Mp3, "n", WAIT).await.unwrap().unwrap();
    assert_eq!((again.body(), again.attempt()), (&b"done"[..], 1), "a release (at shutdown) is not a delivery");
    again.ack().await.unwrap();
}

async fn an_unanswered_delivery_comes_back_counted(limited: &Limited) {
    let mailbox = limited.0.as_ref();
    mailbox.publish(Queue::Video, b"orphan").await.unwrap();
    let first = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    drop(first); // as a handler that failed (or a consumer that died) before answering
    let again = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    assert_eq!((again.body(), again.attempt()), (&b"orphan"[..], 2));
    again.ack().await.unwrap();
    // Its consumer is not left blocked by the unanswered one.
    mailbox.publish(Queue::Video, b"next").await.unwrap();
    let next = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    assert_eq!(next.body(), b"next");
    next.ack().await.unwrap();
}

async fn a_retry_comes_back_after_its_delay_as_the_next_attempt_and_never_dead_letters(limited: &Limited) {
    let (mailbox, limit) = (limited.0.as_ref(), limited.1);
    mailbox.publish(Queue::Mp3, b"flaky").await.unwrap();
    let first = mailbox.receive(Queue::Mp3, "c", WAIT).await.unwrap().unwrap();
    first.retry(Duration::from_millis(1500)).await.unwrap();
    assert!(mailbox.receive(Queue::Mp3, "c", QUIET).await.unwrap().is_none(), "not before its delay");
    let mut again = mailbox.receive(Queue::Mp3, "c", WAIT).await.unwrap().unwrap();
    assert_eq!((again.body(), again.attempt()), (&b"flaky"[..], 2));
    // Retries count as attempts, never toward the dead-letter limit.
    for attempt in 3..=SQLITE_LIMIT.min(limit) + 2 {
        again.retry(Duration::ZERO).await.unwrap();
        again = mailbox.receive(Queue::Mp3, "c", WAIT).await.unwrap().unwrap();
        assert_eq!(again.attempt(), attempt);
    }
    again.ack().await.unwrap();
    assert_eq!(mailbox.depth(Queue::Mp3Dead).await.unwrap(), 0);
}

async fn a_message_left_unanswered_as_often_as_the_limit_is_dead_lettered(limited: &Limited) {
    let (mailbox, limit) = (limited.0.as_ref(), limited.1);
    mailbox.publish(Queue::Video, b"poison").await.unwrap();
    for attempt in 1..=limit {
        let delivery = mailbox.receive(Queue::Video, "p", WAIT).await.unwrap().unwrap();
        assert_eq!(delivery.attempt(), attempt);
        drop(delivery); // as a handler that panicked would
    }
    // Longer than the SQLite mailbox's lease, after which the next receive moves it away.
    let more = mailbox.receive(Queue::Video, "p", 2 * LEASE).await.unwrap();
    assert!(more.is_none(), "it loops no more");
    let dead = mailbox.receive(Queue::VideoDead, "dead-letters", WAIT).await.unwrap().expect("in video.dlq");
    assert_eq!(dead.body(), b"poison");
    dead.ack().await.unwrap();
}

async fn a_message_is_forwarded_afresh_and_an_unreadable_one_parked(limited: &Limited) {
    let mailbox = limited.0.as_ref();
    mailbox.publish(Queue::Mp3Dead, b"notice").await.unwrap();
    let dead = mailbox.receive(Queue::Mp3Dead, "d", WAIT).await.unwrap().unwrap();
    assert_eq!(dead.queue(), Queue::Mp3Dead);
    dead.forward(Queue::Mp3, Duration::from_millis(300)).await.unwrap();
    let back = mailbox.receive(Queue::Mp3, "n", WAIT).await.unwrap().unwrap();
    assert_eq!((back.body(), back.attempt()), (&b"notice"[..], 1), "a forwarded message starts afresh");
    back.ack().await.unwrap();

    mailbox.publish(Queue::Video, b"garbage").await.unwrap();
    let garbage = mailbox.receive(Queue::Video, "c", WAIT).await.unwrap().unwrap();
    garbage.park().await.unwrap();
    assert!(mailbox.receive(Queue::Video, "c", QUIET).await.unwrap().is_none(), "parked, never looped");
    eventually(WAIT, "the parked message counted", || async {
        (mailbox.depth(Queue::VideoParked).await.unwrap() == 1).then_some(())
    })
    .await;
}
