//! What only the RabbitMQ mailbox promises (the mailbox's contract is
//! [`crate::contract::mailbox`]): fair dispatch, each consumer holding one message at a time.

use std::time::Duration;

use mp3converter::storage::rabbitmq::RabbitMailbox;
use mp3converter::storage::{Mailbox, Queue};

use crate::servers::amqp_url;

const WAIT: Duration = Duration::from_secs(5);

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
