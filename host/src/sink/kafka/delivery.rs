//! Delivery reports counted per batch, not awaited per message.
//!
//! Design note: librdkafka reports each message's delivery once, on the producer's polling
//! thread (rdkafka's `ThreadedProducer`). Every message of a batch carries the same [`Tally`] as
//! its delivery opaque (an `Arc` clone and a count: two atomic increments per message, no
//! allocation). The polling thread counts the reports down, keeps the failed ones, and wakes the
//! batch's waiter when the count reaches zero. The count starts at one, a seal that the publisher holds while it is still
//! queueing the batch, so a batch whose early messages are acknowledged before its last one is
//! queued cannot look complete.
//!
//! This replaced a `FutureProducer`, whose per-message oneshot channel, boxed future and `Vec`
//! entry cost more than a third of the sink's time (docs/BENCHMARKS.md, "The Kafka sink").
//!
//! When the last clone of the producer is dropped with messages in flight, rdkafka purges them
//! and serves their reports as failures (within its 500 ms drop-time flush), so a waiter does
//! not hang on a producer that is gone. A pending batch with dead letters holds a clone itself;
//! its wait is then bounded by `message.timeout.ms`. A report that librdkafka never serves
//! (as with the `FutureProducer` before) leaves the waiter to the pipeline's stop deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use tokio::sync::{watch, Notify};

use super::client::Context;

/// The producer of events and dead letters: librdkafka's, with a thread that serves its delivery
/// reports.
pub(crate) type Producer = ThreadedProducer<Context>;

/// A message to queue: key and value bytes, delivery counted by a [`Tally`].
pub(super) type Record<'a> = BaseRecord<'a, [u8], [u8], Arc<Tally>>;

/// Queues `record`. While librdkafka's queue is full (the broker is slow or down) it waits, which
/// is the pipeline's backpressure, unless `stop` has turned true (the pipeline's stop deadline
/// passed). A message that is not queued gives its count back to its tally.
pub(super) async fn enqueue<'a>(
    producer: &Producer,
    mut record: Record<'a>,
    stop: Option<&watch::Receiver<bool>>,
) -> Result<(), (KafkaError, Record<'a>)> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                if !stop.is_some_and(|s| *s.borrow()) =>
            {
                record = r;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, r)) => {
                r.delivery_opaque.withdraw();
                return Err((e, r));
            }
        }
    }
}

/// A failed delivery: the error and the message librdkafka handed back (for the error's text,
/// or to divert it to the dead letters).
pub(super) type Failure = (KafkaError, OwnedMessage);

/// One batch's outstanding deliveries.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Messages queued and not reported yet, plus one while the batch is still being queued.
    outstanding: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
    done: Notify,
}

impl Tally {
    /// A tally for a batch about to be queued (sealed open: see [`Tally::seal`]).
    pub(super) fn new() -> Arc<Tally> {
        Arc::new(Tally {
            outstanding: AtomicUsize::new(1),
            failures: Mutex::new(Vec::new()),
            done: Notify::new(),
        })
    }

    /// Counts a message about to be queued; its delivery opaque is a clone of this tally.
    pub(super) fn expect_one(self: &Arc<Self>) -> Arc<Tally> {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Arc::clone(self)
    }

    /// A message counted by [`Tally::expect_one`] was not queued after all.
    pub(super) fn withdraw(&self) {
        self.count_down();
    }

    /// The batch is fully queued: from now on, the last report completes it.
    pub(super) fn seal(&self) {
        self.count_down();
    }

    /// A delivery report from the polling thread.
    pub(super) fn report(
        &self,
        result: &Result<BorrowedMessage<'_>, (KafkaError, BorrowedMessage<'_>)>,
    ) {
        if let Err((e, msg)) = result {
            crate::telemetry::metrics::delivery_error();
            let failure = (e.clone(), msg.detach());
            match self.failures.lock() {
                Ok(mut f) => f.push(failure),
                Err(poisoned) => poisoned.into_inner().push(failure),
            }
        }
        self.count_down();
    }

    fn count_down(&self) {
        // AcqRel: the waiter that sees zero also sees every failure pushed before it.
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Waits until every message of the sealed batch is reported, and returns the failures in
    /// the order they were reported (not necessarily the batch's order across partitions and
    /// topics).
    pub(super) async fn wait(&self) -> Vec<Failure> {
        while self.outstanding.load(Ordering::Acquire) != 0 {
            // `notify_one` stores a permit when nobody waits yet, so no wake-up is lost.
            self.done.notified().await;
        }
        match self.failures.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_batch_completes_only_when_sealed_and_every_message_is_reported() {
        let t = Tally::new();
        let a = t.expect_one();
        let b = t.expect_one();
        // Both reported before the seal: not complete yet.
        a.count_down();
        b.count_down();
        let early = tokio::time::timeout(Duration::from_millis(30), t.wait()).await;
        assert!(early.is_err(), "unsealed: still waiting");
        let c = t.expect_one();
        c.withdraw();
        t.seal();
        let failures = tokio::time::timeout(Duration::from_secs(1), t.wait())
            .await
            .expect("sealed and reported: complete");
        assert!(failures.is_empty());
    }

    #[tokio::test]
    async fn a_report_from_another_thread_wakes_the_waiter() {
        let t = Tally::new();
        let m = t.expect_one();
        t.seal();
        let waiter = tokio::spawn({
            let t = Arc::clone(&t);
            async move { t.wait().await.len() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::thread::spawn(move || m.count_down())
            .join()
            .expect("reporter thread");
        let n = tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("no panic");
        assert_eq!(n, 0);
    }
}
