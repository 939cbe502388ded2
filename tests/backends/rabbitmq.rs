//! The persistent mailbox on RabbitMQ: publish with confirms, competing consumers, ack,
//! redelivery, retry with delay, and dead-lettering after the delivery limit.

use std::time::Duration;

use mp3converter::storage::rabbitmq::RabbitMailbox;
use mp3converter::storage::{DELIVERY_LIMIT, Mailbox, Queue};

use crate::servers::{amqp_url, eventually};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_message_goes_to_one_consumer_and_is_acked_away() {
    let mailbox = RabbitMailbox::new(amqp_url().await, 1, Duration::from_secs(1));
    mailbox.publish(Queue::Video, b"job-1").await.unwrap();
    let delivery = mailbox.receive(Queue::Video, "converter-1", WAIT).await.unwrap().unwrap();
    assert_eq!(delivery.body(), b"job-1");
    assert_eq!(delivery.attempt(), 1);
    assert!(mailbox.receive(Queue::Video, "converter-2", Duration::from_millis(300)).await.unwrap().is_none());
    delivery.ack().await.unwrap();
    assert_eq!(mailbox.depth(Queue::Video).await.unwrap(), 0);
    assert!(mailbox.receive(Queue::Mp3, "notifier", Duration::from_millis(300)).await.unwrap().is_none());
}

#[tokio::test]
async fn competing_consumers_each_hold_one_message_at_a_time() {
    let mailbox = RabbitMailbox::new(amqp_url().await, 1, Duration::from_secs(1));
    for n in 0..3 {
        mailbox.publish(Queue::Video, format!("job-{n}").as_bytes()).await.unwrap();
    }
    let a = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    let b = mailbox.receive(Queue::Video, "b", WAIT).await.unwrap().unwrap();
    assert_ne!(a.body(), b.body());
    // Prefetch 1: `a` gets nothing more until it acks.
    assert!(mailbox.receive(Queue::Video, "a", Duration::from_millis(300)).await.unwrap().is_none());
    a.ack().await.unwrap();
    let third = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    assert_eq!(third.body(), b"job-2");
    b.ack().await.unwrap();
    third.ack().await.unwrap();
}

#[tokio::test]
async fn a_released_message_comes_back_without_counting() {
    let mailbox = RabbitMailbox::new(amqp_url().await, 1, Duration::from_secs(1));
    mailbox.publish(Queue::Mp3, b"done").await.unwrap();
    let first = mailbox.receive(Queue::Mp3, "n", WAIT).await.unwrap().unwrap();
    first.release().await.unwrap();
    let again = mailbox.receive(Queue::Mp3, "n", WAIT).await.unwrap().unwrap();
    assert_eq!(again.body(), b"done");
    assert_eq!(again.attempt(), 1, "a release (at shutdown) is not a delivery");
    again.ack().await.unwrap();
}

#[tokio::test]
async fn a_delivery_dropped_unanswered_comes_back_after_a_short_delay() {
    let mailbox = RabbitMailbox::new(amqp_url().await, 1, Duration::from_secs(1));
    mailbox.publish(Queue::Video, b"orphan").await.unwrap();
    let first = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    drop(first); // as a handler that failed before answering
    // It comes back, and its consumer is not left blocked by an unacked message.
    let again = mailbox.receive(Queue::Video, "a", 3 * WAIT).await.unwrap().unwrap();
    assert_eq!(again.body(), b"orphan");
    assert_eq!(again.attempt(), 2);
    again.ack().await.unwrap();
    mailbox.publish(Queue::Video, b"next").await.unwrap();
    let next = mailbox.receive(Queue::Video, "a", WAIT).await.unwrap().unwrap();
    assert_eq!(next.body(), b"next");
    next.ack().await.unwrap();
}

#[tokio::test]
async fn a_retry_comes_back_after_its_delay_as_the_next_attempt() {
    let mailbox = RabbitMailbox::new(amqp_url().await, 1, Duration::from_secs(1));
    mailbox.publish(Queue::Video, b"flaky").await.unwrap();
    let first = mailbox.receive(Queue::Video, "c", WAIT).await.unwrap().unwrap();
    first.retry(Duration::from_millis(700)).await.unwrap();
    assert!(
        mailbox.receive(Queue::Video, "c", Duration::from_millis(200)).await.unwrap().is_none(),
        "not before its delay"
    );
    let again = mailbox.receive(Queue::Video, "c", WAIT).await.unwrap().unwrap();
    assert_eq!(again.body(), b"flaky");
    assert_eq!(again.attempt(), 2);
    again.ack().await.unwrap();
}

#[tokio::test]
async fn a_message_dropped_unanswered_as_often_as_the_limit_is_dead_lettered() {
    let url = amqp_url().await;
    let mailbox = RabbitMailbox::new(url.clone(), 1, Duration::from_secs(1));
    mailbox.publish(Queue::Video, b"poison").await.unwrap();
    for attempt in 1..=DELIVERY_LIMIT {
        let delivery = mailbox.receive(Queue::Video, "p", WAIT).await.unwrap().unwrap();
        assert_eq!(delivery.attempt(), attempt);
        drop(delivery); // as a handler that panicked would
    }
    assert!(mailbox.receive(Queue::Video, "p", Duration::from_millis(500)).await.unwrap().is_none());
    // It sits in video.dlq.
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let dead = eventually(WAIT, "the dead-lettered message", || async {
        channel.basic_get("video.dlq".into(), lapin::options::BasicGetOptions::default()).await.unwrap()
    })
    .await;
    assert_eq!(dead.delivery.data, b"poison");
}

#[tokio::test]
async fn a_message_is_forwarded_to_another_queue_and_an_unreadable_one_parked() {
    let mailbox = RabbitMailbox::new(amqp_url().await, 1, Duration::from_secs(1));
    mailbox.publish(Queue::Mp3Dead, b"notice").await.unwrap();
    mailbox.publish(Queue::Video, b"garbage").await.unwrap();
    let dead = mailbox.receive(Queue::Mp3Dead, "d", WAIT).await.unwrap().unwrap();
    assert_eq!(dead.queue(), Queue::Mp3Dead);
    dead.forward(Queue::Mp3, Duration::from_millis(300)).await.unwrap();
    let back = mailbox.receive(Queue::Mp3, "n", WAIT).await.unwrap().unwrap();
    assert_eq!((back.body(), back.attempt()), (&b"notice"[..], 1), "a forwarded message starts afresh");
    back.ack().await.unwrap();

    let garbage = mailbox.receive(Queue::Video, "c", WAIT).await.unwrap().unwrap();
    garbage.park().await.unwrap();
    assert!(mailbox.receive(Queue::Video, "c", Duration::from_millis(300)).await.unwrap().is_none());
    let parked = eventually(WAIT, "the parked message", || async {
        (mailbox.depth(Queue::VideoParked).await.unwrap() == 1).then_some(())
    });
    parked.await;
}
