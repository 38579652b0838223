//! The change watcher: polls `PRAGMA data_version` on its own read-only
//! connection and invalidates everything on any committed change by any
//! process (our CLI, `sqlite3`, Open WebUI), so revocations apply within
//! one poll interval plus one lookup.
//!
//! Polling rather than `update_hook`: hooks only see writes made through
//! the same connection, and the writers here are other processes.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

use rusqlite::Connection;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::cache::Caches;
use super::error::StoreError;
use super::pool::{file_id, open_read_only};

/// What the watcher acts on. The store implements it, so the watcher knows
/// nothing of the handle and the handle alone decides when to spawn it.
pub(crate) trait WatchTarget: Send + Sync + 'static {
    /// Invalidated on every change; also where the last error is reported.
    fn caches(&self) -> &Caches;
    /// Retires every read connection: the file they have open is gone.
    fn reset_connections(&self);
    /// Loads, after a change, what the next request would otherwise wait
    /// for (the model graph).
    fn warm(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Called once per completed poll.
    fn polled(&self);
}

struct Watched {
    conn: Connection,
    file: (u64, u64),
    version: i64,
}

enum Poll {
    Unchanged,
    Changed(i64),
    /// (Re)opened: the data may differ from whatever was cached.
    Opened(i64),
}

/// Runs until the store is dropped or `shutdown` is cancelled. Holds only a
/// `Weak` so it never keeps the store alive.
pub(crate) async fn run<T: WatchTarget>(
    target: Weak<T>,
    shutdown: CancellationToken,
    path: PathBuf,
    interval: Duration,
    busy_timeout: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watched: Option<Watched> = None;
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let Some(store) = target.upgrade() else { break };
        let caches = store.caches();
        let path = path.clone();
        let polled = tokio::task::spawn_blocking(move || {
            let result = poll(&mut watched, &path, busy_timeout);
            (watched, result)
        })
        .await;
        let result = match polled {
            Ok((w, result)) => {
                watched = w;
                result
            }
            Err(e) => {
                watched = None;
                Err(StoreError::Unavailable(format!("watcher task failed: {e}")))
            }
        };
        match result {
            Ok(Poll::Unchanged) => {
                if !healthy || caches.has_error() {
                    caches.set_error(None);
                }
                healthy = true;
            }
            Ok(Poll::Changed(v)) | Ok(Poll::Opened(v)) => {
                tracing::debug!(data_version = v, "access data changed; caches invalidated");
                caches.changed(Some(v));
                caches.set_error(None);
                healthy = true;
                if let Err(e) = store.warm().await {
                    caches.set_error(Some(e.to_string()));
                }
            }
            Err(e) => {
                // A vanished or replaced file means cached answers describe
                // data that no longer exists: fail closed. A busy lock does
                // not: nothing was committed, keep serving the cache.
                let gone = matches!(e, StoreError::Missing { .. }) || watched.is_none();
                if gone {
                    // On every such poll, not only the first: answers cached
                    // while the watcher was unhealthy for another reason
                    // (a busy lock) must not outlive the file either.
                    if healthy {
                        tracing::warn!(error = %e, "access database lost; caches invalidated");
                    }
                    store.reset_connections();
                    caches.changed(None);
                }
                healthy = false;
                caches.set_error(Some(e.to_string()));
            }
        }
        store.polled();
    }
    tracing::debug!("access store watcher stopped");
}

fn poll(
    watched: &mut Option<Watched>,
    path: &std::path::Path,
    busy_timeout: Duration,
) -> Result<Poll, StoreError> {
    let file = match file_id(path) {
        Ok(file) => file,
        Err(e) => {
            *watched = None;
            return Err(e);
        }
    };
    if let Some(w) = watched.as_mut() {
        if w.file == file {
            return match data_version(&w.conn) {
                Ok(v) if v == w.version => Ok(Poll::Unchanged),
                Ok(v) => {
                    w.version = v;
                    Ok(Poll::Changed(v))
                }
                // Busy: keep the connection, report, try again next tick.
                Err(e @ StoreError::Busy(_)) => Err(e),
                Err(e) => {
                    *watched = None;
                    Err(e)
                }
            };
        }
    }
    *watched = None;
    let conn = open_read_only(path, busy_timeout)?;
    let version = data_version(&conn)?;
    *watched = Some(Watched {
        conn,
        file,
        version,
    });
    Ok(Poll::Opened(version))
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "data_version", |r| r.get(0))?)
}
