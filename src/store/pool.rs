//! A small pool of read-only SQLite connections used from tokio through
//! `spawn_blocking`.
//!
//! Hand-written rather than r2d2 + r2d2_sqlite: r2d2 opens connections
//! eagerly and treats a failed open as a pool error with its own timeout,
//! while this store must start with the file missing, must never create
//! it, and must drop and reopen a connection whose file was deleted or
//! replaced (an open descriptor keeps reading the old inode). That policy is
//! most of the code either way; the pooling itself is a Vec behind a mutex
//! plus a semaphore, and it adds no dependency.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::error::StoreError;
use super::lookup::Tables;

/// Identity of the file a connection was opened on (device, inode).
type FileId = (u64, u64);

pub(crate) struct PooledConn {
    pub conn: Connection,
    pub tables: Tables,
    /// The data generation `tables` was read under.
    tables_gen: u64,
    file: FileId,
    epoch: u64,
}

pub(crate) struct ReadPool {
    path: PathBuf,
    busy_timeout: Duration,
    // Bounds a lookup from its call: the wait for a permit plus the query.
    lookup_timeout: Duration,
    // A std mutex: held only to push/pop, never across I/O or an await.
    idle: Mutex<Vec<PooledConn>>,
    // Bounds open connections (and concurrent blocking lookups) to `size`.
    permits: Arc<Semaphore>,
    // Bumped by `reset`; connections from an older epoch are not reused.
    epoch: AtomicU64,
    // Told the duration and outcome of every query (metrics); set once.
    observer: std::sync::OnceLock<QueryObserver>,
}

/// Receives each database query's duration (queue wait included) and its
/// error, if any.
pub type QueryObserver = Arc<dyn Fn(Duration, Option<&StoreError>) + Send + Sync>;

impl ReadPool {
    pub fn new(
        path: PathBuf,
        size: usize,
        busy_timeout: Duration,
        lookup_timeout: Duration,
    ) -> ReadPool {
        ReadPool {
            path,
            busy_timeout,
            lookup_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            epoch: AtomicU64::new(0),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Installs the query observer; a second call is ignored.
    pub fn observe(&self, observer: QueryObserver) {
        let _ = self.observer.set(observer);
    }

    /// Runs `f` on a pooled connection on a blocking thread. `data_gen` is
    /// the store's change counter: when it moved since the connection last
    /// looked, the table list is read again (tables may have been created).
    pub async fn run<T, F>(self: &Arc<Self>, data_gen: u64, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Tables) -> Result<T, StoreError> + Send + 'static,
    {
        let started = std::time::Instant::now();
        // Without a deadline a locked database made lookups queue for a
        // connection and then wait their own busy_timeout each, so answers
        // came in waves for as long as the writer held the lock. A lookup
        // that times out here leaves its blocking query to finish (within
        // busy_timeout) on its own; its connection permit goes back then.
        let result = tokio::time::timeout(self.lookup_timeout, self.run_unobserved(data_gen, f))
            .await
            .unwrap_or_else(|_| {
                Err(StoreError::Busy(format!(
                    "no answer within the lookup timeout ({} ms)",
                    self.lookup_timeout.as_millis()
                )))
            });
        if let Some(observe) = self.observer.get() {
            observe(started.elapsed(), result.as_ref().err());
        }
        result
    }

    async fn run_unobserved<T, F>(self: &Arc<Self>, data_gen: u64, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Tables) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("read pool closed".into()))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.run_blocking(data_gen, f)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("lookup task failed: {e}")))?
    }

    fn run_blocking<T>(
        &self,
        data_gen: u64,
        f: impl FnOnce(&Connection, &Tables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pooled = self.checkout(data_gen)?;
        let result = f(&pooled.conn, &pooled.tables);
        match &result {
            Err(e) if e.poisons_connection() => {}
            _ => {
                pooled.tables_gen = data_gen;
                self.checkin(pooled);
            }
        }
        result
    }

    /// Drops idle connections and retires the ones in use: after the file
    /// vanished or was replaced, or the watcher lost its own connection.
    pub fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.lock_idle().clear();
    }

    fn checkout(&self, data_gen: u64) -> Result<PooledConn, StoreError> {
        // A stat per checkout (about a microsecond) makes a deleted or
        // replaced file visible to the very next lookup.
        let file = file_id(&self.path)?;
        let epoch = self.epoch.load(Ordering::Acquire);
        let reused = self.lock_idle().pop();
        let mut pooled = match reused {
            Some(p) if p.file == file && p.epoch == epoch => p,
            _ => self.open(file, epoch, data_gen)?,
        };
        if pooled.tables_gen != data_gen {
            pooled.tables = Tables::read(&pooled.conn)?;
            pooled.tables_gen = data_gen;
        }
        Ok(pooled)
    }

    fn checkin(&self, pooled: PooledConn) {
        if pooled.epoch == self.epoch.load(Ordering::Acquire) {
            self.lock_idle().push(pooled);
        }
    }

    fn open(&self, file: FileId, epoch: u64, data_gen: u64) -> Result<PooledConn, StoreError> {
        let conn = open_read_only(&self.path, self.busy_timeout)?;
        conn.set_prepared_statement_cache_capacity(32);
        // Reading sqlite_master is also what exposes a garbage file.
        let tables = Tables::read(&conn)?;
        Ok(PooledConn {
            conn,
            tables,
            tables_gen: data_gen,
            file,
            epoch,
        })
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<PooledConn>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Opens without ever creating the file or taking write access. The
/// journal mode (WAL) is the writers' choice: Open WebUI and `open_writer`
/// set it, and a read-only connection could not change it anyway.
pub(crate) fn open_read_only(
    path: &Path,
    busy_timeout: Duration,
) -> Result<Connection, StoreError> {
    file_id(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "query_only", 1)?;
    Ok(conn)
}

/// `Missing` when the file is absent; used both before opening and to notice
/// that an open connection's file went away or was swapped.
pub(crate) fn file_id(path: &Path) -> Result<FileId, StoreError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(identity(&meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Missing {
            path: path.display().to_string(),
        }),
        Err(e) => Err(StoreError::Unavailable(format!("{}: {e}", path.display()))),
    }
}

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &fs::Metadata) -> FileId {
    (0, 0)
}
