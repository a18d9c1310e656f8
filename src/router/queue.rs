//! Per-provider concurrency limit with a bounded queue. A request takes a slot before calling the
//! provider; when all are taken it waits in line (up to its deadline), unless the line is full or
//! the provider is set to drop excess requests, in which case it gets 429 `queue_full` at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{ErrorKind, GatewayError, Result};

#[derive(Debug)]
pub struct Gate {
    slots: Option<Arc<Semaphore>>,
    limit: usize,
    max_queue: usize,
    drop_excess: bool,
    waiting: AtomicUsize,
}

/// Holding this is holding a slot (nothing when the provider has no limit).
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    /// Time spent waiting for the slot.
    pub waited: Duration,
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    pub fn new(max_concurrency: Option<u32>, max_queue: Option<u32>, drop_excess: bool) -> Gate {
        let limit = max_concurrency.map(|n| n.max(1) as usize);
        Gate {
            slots: limit.map(|n| Arc::new(Semaphore::new(n))),
            limit: limit.unwrap_or(0),
            max_queue: max_queue.map(|q| q as usize).unwrap_or(usize::MAX),
            drop_excess,
            waiting: AtomicUsize::new(0),
        }
    }

    pub fn unlimited() -> Gate {
        Gate::new(None, None, false)
    }

    /// Whether this provider has a concurrency limit.
    pub fn is_limited(&self) -> bool {
        self.slots.is_some()
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests holding a slot now (0 without a limit).
    pub fn in_flight(&self) -> usize {
        self.slots
            .as_ref()
            .map(|s| self.limit - s.available_permits())
            .unwrap_or(0)
    }

    pub async fn acquire(&self, provider: &str, deadline: Option<Instant>) -> Result<Slot> {
        let Some(slots) = &self.slots else {
            return Ok(Slot {
                _permit: None,
                waited: Duration::ZERO,
            });
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(Slot {
                _permit: Some(permit),
                waited: Duration::ZERO,
            });
        }
        let full = |why: &str| {
            GatewayError::new(
                ErrorKind::RateLimited,
                format!(
                    "provider `{provider}` is at its concurrency limit ({} in flight){why}",
                    self.limit
                ),
            )
            .with_code("queue_full")
            .with_provider(provider)
        };
        if self.drop_excess {
            return Err(full(" and drops excess requests"));
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(full(&format!(
                " and its queue is full ({} waiting)",
                self.max_queue
            )));
        }
        let _waiting = Waiting(&self.waiting);
        let started = Instant::now();
        let acquire = slots.clone().acquire_owned();
        let permit = match deadline {
            Some(d) => tokio::time::timeout_at(d, acquire).await.map_err(|_| {
                GatewayError::new(
                    ErrorKind::Timeout,
                    format!("timed out waiting for a free slot of provider `{provider}`"),
                )
                .with_code("queue_timeout")
                .with_provider(provider)
            })?,
            None => acquire.await,
        }
        .map_err(|_| GatewayError::internal("provider queue closed"))?;
        Ok(Slot {
            _permit: Some(permit),
            waited: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drop_excess_fails_at_once_queue_waits() {
        let gate = Gate::new(Some(1), Some(1), true);
        let held = gate.acquire("p", None).await.unwrap();
        let e = gate.acquire("p", None).await.unwrap_err();
        assert_eq!((e.status, e.code.as_deref()), (429, Some("queue_full")));
        drop(held);

        let gate = Arc::new(Gate::new(Some(1), Some(1), false));
        let held = gate.acquire("p", None).await.unwrap();
        let g = gate.clone();
        let waiter = tokio::spawn(async move { g.acquire("p", None).await.map(|s| s.waited) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(gate.queued(), 1);
        let e = gate.acquire("p", None).await.unwrap_err();
        assert!(e.message.contains("queue is full"), "{}", e.message);
        drop(held);
        assert!(waiter.await.unwrap().unwrap() >= Duration::from_millis(15));
        assert_eq!(gate.queued(), 0);

        let held = gate.acquire("p", None).await.unwrap();
        let e = gate
            .acquire("p", Some(Instant::now() + Duration::from_millis(10)))
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("queue_timeout"));
        drop(held);
    }
}
