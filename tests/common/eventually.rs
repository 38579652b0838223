//! Polling with a deadline instead of sleeping a fixed time. Its own file so
//! the store tests can include it without the whole proxy harness.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` until it returns true or `limit` passes; returns the time it
/// took. Panics at the deadline, naming `what`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
