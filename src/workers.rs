//! Thread per core for the proxy listeners: `workers` threads, each running
//! a single-threaded tokio runtime that accepts from the same listening
//! socket and serves its connections to the end, with its own upstream
//! connections ([`PerWorker`]).
//!
//! Why: on a multi-threaded runtime a proxied request crosses threads
//! several times (accepting worker, the pooled client's connection task,
//! back), and each crossing is a futex wake-up; profiles of plain
//! forwarding spent about half their time in the kernel doing that. Here a
//! request, its upstream call and its response stay on one thread, as in
//! nginx's and pingora's workers. Every worker accepts from a duplicate of
//! one socket, so the least busy thread takes the next connection and the
//! listener keeps its address (port 0 included) and backlog.
//!
//! What stays shared: the handler's state (caches, store, metrics, limits)
//! behind `Arc`s, the connection limit and the shutdown signal.

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::server::{self, Handler};

thread_local! {
    /// This thread's worker number; `None` off the worker threads (tests'
    /// runtimes, the main runtime), which then share worker 0's resources.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The worker running on this thread (0 outside the worker threads).
pub fn current() -> usize {
    WORKER.with(|w| w.get().unwrap_or(0))
}

/// One `T` per worker, each used only from its worker's thread (off the
/// worker threads, the first), so its connections and tasks never have to
/// wake another thread.
pub struct PerWorker<T>(Box<[T]>);

impl<T> PerWorker<T> {
    pub fn new(workers: NonZeroUsize, mut make: impl FnMut() -> T) -> Self {
        Self((0..workers.get()).map(|_| make()).collect())
    }

    /// The current worker's `T`.
    pub fn get(&self) -> &T {
        // `current` may exceed the count when two servers of different
        // sizes share a process (tests); any slot is correct, only slower.
        &self.0[current() % self.0.len()]
    }
}

/// The worker threads serving one listener.
pub struct Running {
    name: &'static str,
    finished: Vec<oneshot::Receiver<std::io::Result<()>>>,
}

/// Starts `workers` threads serving `handler` on `listener` until `stop`
/// turns true; each then drains as [`server::serve`] does. The connection
/// limit is shared. Fails when a thread cannot be started.
pub fn start<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    workers: NonZeroUsize,
    stop: watch::Receiver<bool>,
) -> std::io::Result<Running> {
    let socket = listener.into_std()?;
    let limit = Arc::new(tokio::sync::Semaphore::new(handler.max_connections()));
    let mut finished = Vec::with_capacity(workers.get());
    for index in 0..workers.get() {
        let socket = socket.try_clone()?;
        let handler = handler.clone();
        let limit = limit.clone();
        let mut stop = stop.clone();
        let (done, finished_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("{}-{index}", handler.name()))
            .spawn(move || {
                WORKER.with(|w| w.set(Some(index)));
                // I/O and timers only: the process and signal drivers'
                // bookkeeping at every park is not needed here.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build();
                let result = runtime.and_then(|rt| {
                    rt.block_on(async move {
                        tokio::spawn(keep_timer_armed());
                        let listener = TcpListener::from_std(socket)?;
                        let shutdown = async move {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        server::serve_limited(listener, handler, limit, shutdown).await;
                        Ok(())
                    })
                });
                let _ = done.send(result);
            })?;
        finished.push(finished_rx);
    }
    Ok(Running {
        name: handler.name(),
        finished,
    })
}

/// A timer that never lets this runtime's next wake-up lie far ahead.
///
/// tokio's timer wakes its own thread (an eventfd write and an extra
/// trip through epoll) whenever a new timer is due before the wake-up the
/// thread last planned. Without this, every proxied call did that: the
/// thread parks planning to wake for the 300 s upstream timeout, then
/// hyper arms the 30 s header timer for the connection's next request,
/// which is earlier. With a timer always due within [`TIMER_TICK`], no
/// request-path timer is ever the earliest.
async fn keep_timer_armed() {
    loop {
        tokio::time::sleep(TIMER_TICK).await;
    }
}

/// Shorter than any timeout on the request path (they are whole seconds).
const TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(500);

impl Running {
    /// Waits until every worker has drained and stopped.
    pub async fn wait(self) {
        for (index, worker) in self.finished.into_iter().enumerate() {
            match worker.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(listener = self.name, worker = index, error = %e, "worker failed")
                }
                Err(_) => {
                    tracing::error!(listener = self.name, worker = index, "worker thread died")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_thread_gets_its_own_slot() {
        let slots = Arc::new(PerWorker::new(NonZeroUsize::new(3).unwrap(), || {
            std::thread::current().id()
        }));
        // Off the worker threads: the first slot.
        assert_eq!(current(), 0);
        assert!(std::ptr::eq(slots.get(), &slots.0[0]));
        let seen: Vec<usize> = (0..3)
            .map(|i| {
                let slots = slots.clone();
                std::thread::spawn(move || {
                    WORKER.with(|w| w.set(Some(i)));
                    let got: *const _ = slots.get();
                    slots.0.iter().position(|s| std::ptr::eq(s, got)).unwrap()
                })
                .join()
                .unwrap()
            })
            .collect();
        assert_eq!(seen, vec![0, 1, 2]);
    }
}
