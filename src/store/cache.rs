//! The caches in front of the read pool and the counters behind `stats()`.
//!
//! Entries are keyed by `(generation, id)`. The watcher bumps the
//! generation on every committed change before it calls `invalidate_all`,
//! so a load that read the database *before* a revocation but finished
//! *after* the invalidation lands under a generation nobody asks for any
//! more: moka's `invalidate_all` alone would keep such a late insert.
//!
//! Two layers share that scheme: `users` holds each user's memberships with
//! `Arc`s to organizations' model sets, `orgs` holds those sets. A user
//! entry of generation g only ever holds sets loaded under key (g, org), so
//! a user entry can never carry a set read before a change it outlives.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use moka::future::Cache;
use serde::Serialize;

use super::access::{ModelGraph, OrgModels, UserAccess};
use super::lookup::ApiKeyOwner;
use super::pg::ListenerStats;
use crate::hashing::Keyed;

pub(crate) type Key = (u64, String);

/// A point-in-time view of the store, for metrics and `/health/detailed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Cached users (approximate, as moka counts).
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    /// Cached organization model sets (approximate).
    pub org_entries: u64,
    /// Organization-set lookups answered from the cache (during user loads).
    pub org_hits: u64,
    /// Organization-set lookups not in the cache; concurrent misses for the
    /// same organization share one load (`org_loads`).
    pub org_misses: u64,
    /// Organization sets actually read from the database.
    pub org_loads: u64,
    /// Entries dropped by the size bound or the TTL, over the user,
    /// organization and API-key caches (not invalidations).
    pub evictions: u64,
    /// Whole-cache invalidations (watcher-detected changes and manual).
    pub invalidations: u64,
    /// Last `PRAGMA data_version` the watcher read; None before the first.
    pub data_version: Option<i64>,
    /// When the watcher last saw a change (or the store was opened).
    pub last_change: SystemTime,
    /// The most recent database error; cleared once the watcher reads the
    /// database successfully again.
    pub last_error: Option<String>,
    /// The PostgreSQL change listener (`None` on SQLite).
    pub listener: Option<ListenerStats>,
}

/// The model graph with the generation it was loaded under.
pub(crate) struct GraphSlot {
    pub generation: u64,
    pub graph: Arc<ModelGraph>,
}

pub(crate) struct Caches {
    pub users: Cache<Key, Arc<UserAccess>, Keyed>,
    /// Keyed by `(generation, organization id)`, weighed by link count.
    pub orgs: Cache<Key, Arc<OrgModels>, Keyed>,
    /// `None` is cached too: unknown keys are the common attack.
    pub api_keys: Cache<Key, Option<ApiKeyOwner>, Keyed>,
    pub graph: ArcSwapOption<GraphSlot>,
    /// Serializes graph reloads so a burst after a change loads it once.
    pub graph_load: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    /// Whether a cached answer may be served: always on SQLite (its poller
    /// cannot miss a commit); on PostgreSQL only while the listener is
    /// known to receive notifications (`pg::listen`).
    trusted: AtomicBool,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub org_hits: AtomicU64,
    pub org_misses: AtomicU64,
    pub org_loads: AtomicU64,
    /// Shared with the caches' eviction listeners.
    evictions: Arc<AtomicU64>,
    invalidations: AtomicU64,
    data_version: AtomicI64,
    last_change_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Caches {
    /// `capacity` bounds users and API keys (entries); `org_capacity`
    /// bounds the organization cache in model links (each organization
    /// weighs one plus its active models), which is what its memory follows.
    pub fn new(capacity: u64, org_capacity: u64, ttl: Duration) -> Caches {
        let evictions = Arc::new(AtomicU64::new(0));
        Caches {
            users: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .eviction_listener(count_evictions(&evictions))
                .build_with_hasher(Keyed::new()),
            orgs: Cache::builder()
                .max_capacity(org_capacity)
                .weigher(|_, set: &Arc<OrgModels>| {
                    u32::try_from(set.len().saturating_add(1)).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .eviction_listener(count_evictions(&evictions))
                .build_with_hasher(Keyed::new()),
            api_keys: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .eviction_listener(count_evictions(&evictions))
                .build_with_hasher(Keyed::new()),
            graph: ArcSwapOption::empty(),
            graph_load: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            trusted: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            org_hits: AtomicU64::new(0),
            org_misses: AtomicU64::new(0),
            org_loads: AtomicU64::new(0),
            evictions,
            invalidations: AtomicU64::new(0),
            data_version: AtomicI64::new(i64::MIN),
            last_change_ms: AtomicU64::new(now_ms()),
            last_error: Mutex::new(None),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn trusted(&self) -> bool {
        self.trusted.load(Ordering::Acquire)
    }

    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::Release);
    }

    /// Generation first, then the caches: see the module comment.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate_all();
        self.orgs.invalidate_all();
        self.api_keys.invalidate_all();
        self.graph.store(None);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn changed(&self, data_version: Option<i64>) {
        if let Some(v) = data_version {
            self.data_version.store(v, Ordering::Relaxed);
        }
        self.last_change_ms.store(now_ms(), Ordering::Relaxed);
        self.invalidate_all();
    }

    pub fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    pub fn has_error(&self) -> bool {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    pub fn stats(&self) -> StoreStats {
        let version = self.data_version.load(Ordering::Relaxed);
        StoreStats {
            entries: self.users.entry_count(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            org_entries: self.orgs.entry_count(),
            org_hits: self.org_hits.load(Ordering::Relaxed),
            org_misses: self.org_misses.load(Ordering::Relaxed),
            org_loads: self.org_loads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            data_version: (version != i64::MIN).then_some(version),
            last_change: UNIX_EPOCH
                + Duration::from_millis(self.last_change_ms.load(Ordering::Relaxed)),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            listener: None,
        }
    }
}

/// moka calls its listener for every removal; only size and TTL removals
/// are evictions (invalidations and replacements are counted elsewhere or
/// are not news). The listener runs during moka's housekeeping, off the
/// lookup's hot path, and costs one atomic add.
fn count_evictions<K, V>(
    counter: &Arc<AtomicU64>,
) -> impl Fn(Arc<K>, V, moka::notification::RemovalCause) + Send + Sync + 'static {
    let counter = Arc::clone(counter);
    move |_, _, cause| {
        if cause.was_evicted() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
