//! The byte budget between the stages (`pipeline.max_inflight_bytes`).
//!
//! Design note: a batch takes its share of the budget (its estimated bytes, in semaphore
//! permits) before it leaves the source, keeps it through the transforms (which may resize it)
//! and the sink, and gives it back once its acknowledgement completes. A batch larger than the
//! whole budget takes all of it rather than waiting forever.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The byte budget of the stages (`pipeline.max_inflight_bytes`), in semaphore permits.
#[derive(Clone)]
pub(super) struct Budget {
    sem: Arc<Semaphore>,
    total: Arc<AtomicUsize>,
}

impl Budget {
    pub(super) fn new(bytes: usize) -> Self {
        // `acquire_many` takes a u32; a single batch larger than the budget takes all of it.
        let total = bytes.clamp(1, u32::MAX as usize);
        Budget {
            sem: Arc::new(Semaphore::new(total)),
            total: Arc::new(AtomicUsize::new(total)),
        }
    }

    fn share(&self, bytes: usize) -> u32 {
        bytes.min(self.total.load(Ordering::Relaxed)) as u32
    }

    /// Raises the budget to `bytes` (never lowers it): after a snapshot, whose rows flow under
    /// a smaller budget, streaming gets the full one.
    pub(super) fn grow(&self, bytes: usize) {
        let bytes = bytes.clamp(1, u32::MAX as usize);
        let old = self.total.fetch_max(bytes, Ordering::Relaxed);
        if bytes > old {
            self.sem.add_permits(bytes - old);
        }
    }

    /// Waits until `bytes` (at most the whole budget) are free.
    pub(super) async fn acquire(&self, bytes: usize) -> OwnedSemaphorePermit {
        self.sem
            .clone()
            .acquire_many_owned(self.share(bytes))
            .await
            .expect("the budget semaphore is never closed")
    }

    /// Resizes a batch's permit after a stage changed its events: gives back what it no longer
    /// needs, and takes more only as far as it is free now (waiting here could deadlock, since
    /// only later stages give permits back), so a growing batch may overshoot the budget by its
    /// growth.
    pub(super) fn resize(&self, permit: &mut OwnedSemaphorePermit, bytes: usize) {
        let want = self.share(bytes) as usize;
        let have = permit.num_permits();
        if want < have {
            drop(permit.split(have - want));
        } else if want > have {
            let free = (want - have).min(self.sem.available_permits());
            if let Ok(more) = self.sem.clone().try_acquire_many_owned(free as u32) {
                permit.merge(more);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_byte_budget_blocks_and_never_deadlocks_on_a_huge_batch() {
        let budget = Budget::new(100);
        let a = budget.acquire(60).await;
        // 60 + 60 > 100: the second batch waits until the first is acknowledged.
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.acquire(60)).await;
        assert!(waiting.is_err(), "over the budget: waits");
        drop(a);
        let b = tokio::time::timeout(Duration::from_millis(50), budget.acquire(60))
            .await
            .expect("freed by the ack");
        drop(b);
        // A batch larger than the whole budget takes all of it rather than waiting forever.
        let mut huge = tokio::time::timeout(Duration::from_millis(50), budget.acquire(10_000))
            .await
            .expect("a huge batch takes the whole budget");
        assert_eq!(huge.num_permits(), 100);
        assert_eq!(budget.sem.available_permits(), 0);
        // A transform that shrinks it gives the difference back; growth takes only what is free.
        budget.resize(&mut huge, 30);
        assert_eq!(
            (huge.num_permits(), budget.sem.available_permits()),
            (30, 70)
        );
        let other = budget.acquire(60).await;
        budget.resize(&mut huge, 80);
        assert_eq!(
            (huge.num_permits(), budget.sem.available_permits()),
            (40, 0)
        );
        drop((huge, other));
        assert_eq!(budget.sem.available_permits(), 100);
        // Growing (after a snapshot) adds the difference; it never shrinks.
        budget.grow(250);
        assert_eq!(budget.sem.available_permits(), 250);
        budget.grow(10);
        assert_eq!(budget.sem.available_permits(), 250);
        let big = budget.acquire(1_000).await;
        assert_eq!(big.num_permits(), 250);
    }
}
