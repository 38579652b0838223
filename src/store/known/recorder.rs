//! Keeps the recorded lists current from the request path without ever
//! slowing or failing a request.
//!
//! The request path only asks [`KnownRecorder::begin`] (a mutex held for a
//! few comparisons); the ids are extracted, compared and written on a
//! blocking thread with a short-lived writer connection of its own. Per
//! source, one list is looked at a time, at most once per interval, and
//! only written when its id set differs from the last one recorded, so the
//! database sees a write when the upstream's offer changes, not per
//! request. (Each write wakes the change watcher, which drops the access
//! caches: rare writes make that a non-issue.)
//!
//! A failed write (read-only file, database locked past the busy timeout)
//! is logged once at warn, counted, and retried no sooner than the next
//! interval; the request that carried the list has long been answered.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use super::{id_set_hash, record_known, KnownSource, RecordOutcome};
use crate::store::admin::configure_writer;
use crate::store::database::Database;
use crate::store::error::StoreError;
use crate::store::pg::blocking::PgConn;

/// How one looked-at list ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    /// The source's set changed and was written.
    Recorded,
    /// Same ids as recorded: nothing written.
    Unchanged,
    /// The write failed (logged once, counted).
    Failed,
}

/// Told about every looked-at list (the metrics registry listens).
pub type KnownObserver = Arc<dyn Fn(KnownSource, RecordResult) + Send + Sync>;

/// Shared by every request through the store handle.
pub struct KnownRecorder {
    /// `None`: nothing is recorded.
    database: Option<Database>,
    min_interval: Duration,
    slots: [Mutex<Slot>; 2],
    failures: AtomicU64,
    warned: AtomicBool,
    observer: OnceLock<KnownObserver>,
}

/// One source's state.
#[derive(Default)]
struct Slot {
    /// Fingerprint of the last body taken up, when the caller has one (the
    /// ingress hashes list bodies for its cache anyway): the same body is
    /// not even parsed again.
    body: Option<u128>,
    /// Hash of the id set last recorded (or found already recorded).
    ids: Option<u128>,
    last_try: Option<Instant>,
    busy: bool,
}

/// Permission to look at one list of `source`; dropping it unused gives
/// the turn back.
pub struct KnownTicket {
    recorder: Arc<KnownRecorder>,
    source: KnownSource,
}

impl KnownRecorder {
    /// Lists of each source are looked at no more often than `min_interval`
    /// (zero: whenever none is being looked at).
    pub fn new(path: PathBuf, min_interval: Duration) -> KnownRecorder {
        KnownRecorder::writing_to(Some(Database::Sqlite(path)), min_interval)
    }

    /// Records into `database` (a SQLite file or PostgreSQL), or nowhere
    /// (never hands out a ticket).
    pub(crate) fn writing_to(database: Option<Database>, min_interval: Duration) -> KnownRecorder {
        KnownRecorder {
            database,
            min_interval,
            slots: Default::default(),
            failures: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            observer: OnceLock::new(),
        }
    }

    /// Installs the observer; a second call is ignored.
    pub fn observe(&self, observer: KnownObserver) {
        let _ = self.observer.set(observer);
    }

    /// Failed writes since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A ticket when a list of `source` should be looked at now: none is
    /// being looked at, the last try is an interval old, and `fingerprint`
    /// (when given) differs from the last body taken up.
    pub fn begin(
        self: &Arc<Self>,
        source: KnownSource,
        fingerprint: Option<u128>,
    ) -> Option<KnownTicket> {
        self.database.as_ref()?;
        let mut slot = self.slot(source);
        if slot.busy || (fingerprint.is_some() && slot.body == fingerprint) {
            return None;
        }
        let now = Instant::now();
        if slot
            .last_try
            .is_some_and(|t| now.duration_since(t) < self.min_interval)
        {
            return None;
        }
        slot.busy = true;
        slot.last_try = Some(now);
        if fingerprint.is_some() {
            slot.body = fingerprint;
        }
        Some(KnownTicket {
            recorder: Arc::clone(self),
            source,
        })
    }

    fn slot(&self, source: KnownSource) -> std::sync::MutexGuard<'_, Slot> {
        let i = match source {
            KnownSource::Ingress => 0,
            KnownSource::Egress => 1,
        };
        self.slots[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The blocking part: compare, write when changed, report.
    fn record(&self, source: KnownSource, ids: BTreeSet<String>) {
        let hash = id_set_hash(&ids);
        if self.slot(source).ids == Some(hash) {
            self.report(source, RecordResult::Unchanged);
            return;
        }
        match self.write(source, &ids) {
            Ok(outcome) => {
                self.slot(source).ids = Some(hash);
                if let RecordOutcome::Recorded { added, removed } = outcome {
                    tracing::info!(
                        source = source.as_str(),
                        models = ids.len(),
                        added,
                        removed,
                        "recorded the model ids the upstream offers"
                    );
                    self.report(source, RecordResult::Recorded);
                } else {
                    self.report(source, RecordResult::Unchanged);
                }
            }
            Err(e) => {
                // Retried with the next list an interval on, even if it is
                // the same body.
                self.slot(source).body = None;
                self.failures.fetch_add(1, Ordering::Relaxed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        source = source.as_str(),
                        error = %e,
                        database = %self.database.as_ref().map(ToString::to_string).unwrap_or_default(),
                        "cannot record the model ids the upstream offers (requests are unaffected; \
                         `model enable` and `migrate` will know fewer ids); further failures are \
                         only counted"
                    );
                }
                self.report(source, RecordResult::Failed);
            }
        }
    }

    /// A connection of its own, opened per write (writes are rare) and
    /// never creating a SQLite file. Runs on a blocking thread (the
    /// PostgreSQL connection drives itself with a runtime of its own).
    fn write(
        &self,
        source: KnownSource,
        ids: &BTreeSet<String>,
    ) -> Result<RecordOutcome, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match &self.database {
            None => Err(StoreError::Unavailable("no database to record into".into())),
            Some(Database::Sqlite(path)) => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure_writer(&conn)?;
                record_known(&conn, source, ids, now)
            }
            Some(Database::Postgres(target)) => {
                record_known(&PgConn::connect(target, false)?, source, ids, now)
            }
        }
    }

    fn report(&self, source: KnownSource, result: RecordResult) {
        if let Some(observe) = self.observer.get() {
            observe(source, result);
        }
    }
}

impl KnownTicket {
    /// Extracts the ids with `extract` and records them, on a blocking
    /// thread. `extract` returns `None` for a body that is not a model
    /// list; neither that nor an empty list is recorded (an upstream with a
    /// broken key or a connection that is down can answer an empty list,
    /// and forgetting every id on such an answer loses more than it gains).
    pub fn record_with<F>(self, extract: F)
    where
        F: FnOnce() -> Option<BTreeSet<String>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn_blocking(move || {
            if let Some(ids) = extract().filter(|ids| !ids.is_empty()) {
                self.recorder.record(self.source, ids);
            }
            drop(self);
        });
    }
}

impl Drop for KnownTicket {
    fn drop(&mut self) {
        self.recorder.slot(self.source).busy = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::known::known_models;
    use crate::store::schema::ensure_schema;

    fn recorder(interval: Duration) -> (tempfile::TempDir, Arc<KnownRecorder>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        ensure_schema(&crate::store::admin::open_writer(&path).unwrap()).unwrap();
        let r = Arc::new(KnownRecorder::new(path, interval));
        (dir, r)
    }

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn results(r: &KnownRecorder) -> Arc<Mutex<Vec<(KnownSource, RecordResult)>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        r.observe(Arc::new(move |s, res| sink.lock().unwrap().push((s, res))));
        seen
    }

    #[test]
    fn one_list_at_a_time_per_source_then_the_interval() {
        let (_dir, r) = recorder(Duration::from_secs(3600));
        let t = r.begin(KnownSource::Egress, None).unwrap();
        assert!(r.begin(KnownSource::Egress, None).is_none(), "busy");
        assert!(
            r.begin(KnownSource::Ingress, None).is_some(),
            "sources are apart"
        );
        drop(t);
        assert!(
            r.begin(KnownSource::Egress, None).is_none(),
            "within the interval"
        );
    }

    #[test]
    fn the_same_body_is_not_taken_up_twice() {
        let (_dir, r) = recorder(Duration::ZERO);
        drop(r.begin(KnownSource::Ingress, Some(7)).unwrap());
        assert!(r.begin(KnownSource::Ingress, Some(7)).is_none());
        assert!(r.begin(KnownSource::Ingress, Some(8)).is_some());
    }

    #[test]
    fn a_changed_set_is_written_an_unchanged_one_is_not() {
        let (dir, r) = recorder(Duration::ZERO);
        let seen = results(&r);
        r.record(KnownSource::Egress, ids(&["a", "b"]));
        r.record(KnownSource::Egress, ids(&["b", "a"]));
        r.record(KnownSource::Egress, ids(&["c"]));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (KnownSource::Egress, RecordResult::Recorded),
                (KnownSource::Egress, RecordResult::Unchanged),
                (KnownSource::Egress, RecordResult::Recorded),
            ]
        );
        let conn = Connection::open(dir.path().join("k.db")).unwrap();
        assert_eq!(known_models(&conn).unwrap().ids, ids(&["c"]));
    }

    /// After a restart the memory is empty: the stored hash still spares
    /// the write.
    #[test]
    fn a_new_recorder_does_not_rewrite_the_stored_set() {
        let (dir, r) = recorder(Duration::ZERO);
        r.record(KnownSource::Egress, ids(&["a"]));
        let again = Arc::new(KnownRecorder::new(dir.path().join("k.db"), Duration::ZERO));
        let seen = results(&again);
        again.record(KnownSource::Egress, ids(&["a"]));
        assert_eq!(
            *seen.lock().unwrap(),
            [(KnownSource::Egress, RecordResult::Unchanged)]
        );
    }

    #[test]
    fn a_failed_write_is_counted_and_forgets_the_body() {
        let dir = tempfile::tempdir().unwrap();
        // No such file: the recorder never creates one.
        let r = Arc::new(KnownRecorder::new(
            dir.path().join("absent.db"),
            Duration::ZERO,
        ));
        let seen = results(&r);
        drop(r.begin(KnownSource::Egress, Some(1)).unwrap());
        r.record(KnownSource::Egress, ids(&["a"]));
        r.record(KnownSource::Egress, ids(&["a"]));
        assert_eq!(r.failures(), 2);
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (KnownSource::Egress, RecordResult::Failed),
                (KnownSource::Egress, RecordResult::Failed)
            ]
        );
        assert!(!dir.path().join("absent.db").exists());
        assert!(r.begin(KnownSource::Egress, Some(1)).is_some(), "retried");
    }

    #[tokio::test]
    async fn a_ticket_records_on_a_blocking_thread_and_skips_empty_lists() {
        let (dir, r) = recorder(Duration::ZERO);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Mutex::new(Some(tx));
        r.observe(Arc::new(move |_, res| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(res);
            }
        }));
        // Each ticket ends (on its blocking thread) before the next can
        // begin, so the empty and the unparsable lists are done, having
        // reported nothing, when the third begins.
        let wait = || async {
            loop {
                if let Some(t) = r.begin(KnownSource::Ingress, None) {
                    return t;
                }
                tokio::task::yield_now().await;
            }
        };
        wait().await.record_with(|| Some(BTreeSet::new()));
        wait().await.record_with(|| None);
        wait().await.record_with(|| Some(ids(&["x"])));
        assert_eq!(rx.await.unwrap(), RecordResult::Recorded);
        let conn = Connection::open(dir.path().join("k.db")).unwrap();
        assert_eq!(known_models(&conn).unwrap().ids, ids(&["x"]));
    }
}
