//! A one-way signal (stop issuing, abort what is in flight) that the load's
//! hot path can check for free.
//!
//! `tokio_util`'s `CancellationToken` keeps its state behind a mutex, and
//! every `is_cancelled` takes it: at tens of thousands of requests a
//! second, shared by the load's threads, that lock's cache line bounced
//! between cores on every request. Here checking is one atomic load of a
//! line nobody writes until the signal fires, and awaiting it registers
//! with a `Notify` once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A signal that fires once; clones share it.
#[derive(Clone, Default)]
pub struct Signal(Arc<Inner>);

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal, waking every task awaiting [`Signal::fired`].
    pub fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether it has fired.
    pub fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::Acquire)
    }

    /// Completes once the signal has fired.
    pub async fn fired(&self) {
        let notified = self.0.notify.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a fire in between is
        // not missed.
        notified.as_mut().enable();
        if self.is_fired() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_when_it_fires_and_later_ones_return_at_once() {
        let s = Signal::new();
        assert!(!s.is_fired());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.fired().await }
        });
        tokio::task::yield_now().await;
        s.fire();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(s.is_fired());
        s.fired().await;
    }
}
