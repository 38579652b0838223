//! `AccessStore`: the handle the proxy clones into every request. It never
//! fails to open; each lookup reports a typed error instead, and the store
//! heals itself when the database comes back.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::access::{Decision, ModelGraph, OrgModels, UserAccess};
use super::backend::Backend;
use super::cache::{Caches, GraphSlot, StoreStats};
use super::database::{Database, PgTarget};
use super::error::StoreError;
use super::known::KnownRecorder;
use super::lookup::ApiKeyOwner;
use super::pg::listen::{self, ListenerShared};
use super::pg::PgReader;
use super::pool::ReadPool;
use super::watch::{self, WatchTarget};

/// Read-side settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// A SQLite file or a PostgreSQL database.
    pub database: Database,
    pub read_connections: usize,
    pub busy_timeout: Duration,
    /// The longest a lookup may take, its wait for a read connection
    /// included: past it the caller gets [`StoreError::Busy`] (503), however
    /// long a writer holds the database.
    pub lookup_timeout: Duration,
    /// Users (and API keys) cached, each.
    pub cache_capacity: u64,
    /// Model links the organization cache may hold in total (an
    /// organization weighs one plus its active models): its memory bound.
    pub org_cache_capacity: u64,
    pub cache_ttl: Duration,
    pub watch_interval: Duration,
    pub max_base_depth: usize,
    /// The least time between two looks at the model lists one source
    /// forwards, to learn the known model ids (`store::known`).
    pub known_models_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            database: Database::default(),
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            lookup_timeout: Duration::from_secs(5),
            cache_capacity: 100_000,
            // Twice the 500k links of the reference data set.
            org_cache_capacity: 1_000_000,
            cache_ttl: Duration::from_secs(60),
            watch_interval: Duration::from_millis(250),
            max_base_depth: 8,
            known_models_interval: Duration::from_secs(60),
        }
    }
}

impl StoreConfig {
    /// A SQLite file.
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig::for_database(Database::Sqlite(path.into()))
    }

    pub fn for_database(database: Database) -> StoreConfig {
        StoreConfig {
            database,
            ..StoreConfig::default()
        }
    }
}

/// Cheap to clone; all clones share the pool, caches and watcher.
#[derive(Clone)]
pub struct AccessStore {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: StoreConfig,
    backend: Backend,
    /// The PostgreSQL listener's state and counters (`None` on SQLite).
    listener: Option<Arc<ListenerShared>>,
    caches: Caches,
    shutdown: CancellationToken,
    /// Completed watcher polls; lets tests wait for the watcher, not a clock.
    watcher_ticks: AtomicU64,
    /// Learns the model ids the upstream offers from forwarded lists.
    known: Arc<KnownRecorder>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl AccessStore {
    /// Opens lazily (nothing is read yet, a missing file is fine) and starts
    /// the watcher on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, like `tokio::spawn`.
    pub fn open(cfg: StoreConfig) -> AccessStore {
        AccessStore::open_with_shutdown(cfg, CancellationToken::new())
    }

    /// Like `open`; the watcher also stops when `shutdown` is cancelled
    /// (lookups keep working, without change detection beyond the TTL).
    pub fn open_with_shutdown(cfg: StoreConfig, shutdown: CancellationToken) -> AccessStore {
        let caches = Caches::new(cfg.cache_capacity, cfg.org_cache_capacity, cfg.cache_ttl);
        let (backend, listener) = match &cfg.database {
            Database::Sqlite(path) => (
                Backend::Sqlite(Arc::new(ReadPool::new(
                    path.clone(),
                    cfg.read_connections,
                    cfg.busy_timeout,
                    cfg.lookup_timeout,
                ))),
                None,
            ),
            Database::Postgres(target) => {
                // Nothing is cached until the listener proves it hears.
                caches.set_trusted(false);
                (
                    Backend::Postgres(Arc::new(PgReader::new(
                        target,
                        cfg.read_connections,
                        cfg.lookup_timeout,
                    ))),
                    Some(Arc::new(ListenerShared::default())),
                )
            }
        };
        let inner = Arc::new(Inner {
            backend,
            listener,
            caches,
            shutdown: shutdown.child_token(),
            watcher_ticks: AtomicU64::new(0),
            known: Arc::new(KnownRecorder::writing_to(
                Some(cfg.database.clone()),
                cfg.known_models_interval,
            )),
            cfg,
        });
        match (&inner.cfg.database, &inner.listener) {
            (Database::Postgres(target), Some(shared)) => {
                tokio::spawn(listen::run(
                    Arc::downgrade(&inner),
                    inner.shutdown.clone(),
                    PgTarget::clone(target),
                    Arc::clone(shared),
                ));
            }
            (Database::Sqlite(path), _) => {
                tokio::spawn(watch::run(
                    Arc::downgrade(&inner),
                    inner.shutdown.clone(),
                    path.clone(),
                    inner.cfg.watch_interval,
                    inner.cfg.busy_timeout,
                ));
            }
            (Database::Postgres(_), None) => {}
        }
        AccessStore { inner }
    }

    /// The user's access, from the cache or one coalesced load: memberships
    /// and role from the database, each organization's model set from the
    /// organization cache (loaded, coalesced, when missing). Unknown users
    /// are cached (`known: false`); errors never are.
    pub async fn user(&self, user_id: &str) -> Result<Arc<UserAccess>, StoreError> {
        let caches = &self.inner.caches;
        let generation = caches.generation();
        if !self.inner.cache_trusted() {
            return Box::pin(self.load_user(user_id)).await.map(Arc::new);
        }
        let key = (generation, user_id.to_string());
        if let Some(hit) = caches.users.get(&key).await {
            caches.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        caches.misses.fetch_add(1, Ordering::Relaxed);
        // Misses are boxed: inline, the loader's future (moka's and the
        // database's state) would be copied with every request's future.
        Box::pin(
            caches
                .users
                .try_get_with(key, self.inner.load_user_cached(generation, user_id)),
        )
        .await
        .map_err(|e| self.inner.failed(&e))
    }

    /// Reads the database directly, neither using nor filling the cache
    /// (for `modelgate access` explanations and the cold-path benchmark).
    pub async fn load_user(&self, user_id: &str) -> Result<UserAccess, StoreError> {
        self.inner
            .backend
            .user(self.inner.caches.generation(), user_id)
            .await
            .map_err(|e| self.inner.failed(&e))
    }

    /// The change counter: bumped whenever the access data changed. Answers
    /// derived from access data read at one generation may be reused only
    /// while it has not moved.
    pub fn generation(&self) -> u64 {
        self.inner.caches.generation()
    }

    pub async fn model_graph(&self) -> Result<Arc<ModelGraph>, StoreError> {
        self.inner.model_graph_inner().await
    }

    pub async fn decide(&self, user_id: &str, model_id: &str) -> Result<Decision, StoreError> {
        let access = self.user(user_id).await?;
        let graph = self.model_graph().await?;
        Ok(access.decide(&graph, model_id))
    }

    /// Owner of an Open WebUI API key (`None`: no such key, or no
    /// `api_key` table). Absent keys are cached too.
    pub async fn api_key_owner(&self, key: &str) -> Result<Option<ApiKeyOwner>, StoreError> {
        let caches = &self.inner.caches;
        let generation = caches.generation();
        let backend = &self.inner.backend;
        if !self.inner.cache_trusted() {
            return Box::pin(backend.api_key(generation, key))
                .await
                .map_err(|e| self.inner.failed(&e));
        }
        let cache_key = (generation, key.to_string());
        if let Some(hit) = caches.api_keys.get(&cache_key).await {
            return Ok(hit);
        }
        let load = backend.api_key(generation, key);
        Box::pin(caches.api_keys.try_get_with(cache_key, load))
            .await
            .map_err(|e| self.inner.failed(&e))
    }

    /// The model Open WebUI answers a reply to channel message `id` as. Read
    /// fresh each time: replies are rare, and the message may be new.
    pub async fn message_model(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        let generation = self.inner.caches.generation();
        self.inner
            .backend
            .message_model(generation, message_id)
            .await
            .map_err(|e| self.inner.failed(&e))
    }

    /// Readiness: the database answers and has the organization tables.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner
            .backend
            .ping(self.inner.caches.generation())
            .await
            .map_err(|e| self.inner.failed(&e))
    }

    /// Reports every database query (duration, error) to `observer`, e.g.
    /// the metrics registry. Set once, at start-up.
    pub fn observe_queries(&self, observer: super::pool::QueryObserver) {
        self.inner.backend.observe(observer);
    }

    pub fn stats(&self) -> StoreStats {
        let mut stats = self.inner.caches.stats();
        stats.listener = self.inner.listener.as_ref().map(|l| l.stats());
        stats
    }

    /// Drops every cached answer (the watcher does this on each change).
    pub fn invalidate_all(&self) {
        self.inner.caches.invalidate_all();
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.cfg
    }

    /// Where the gates hand the model lists they forward (off the hot
    /// path: see `store::known`).
    pub fn known_recorder(&self) -> &Arc<KnownRecorder> {
        &self.inner.known
    }

    /// Completed watcher polls (monotonic); tests wait on it, and
    /// `modelgate_policy_watch_polls_total` shows it.
    pub fn watcher_polls(&self) -> u64 {
        self.inner.watcher_ticks.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Whether cached answers may be served now. When not (the PostgreSQL
    /// listener is not known to hear changes), every lookup reads through,
    /// so an answer is never staler than the database, and a database
    /// error is the caller's 503.
    fn cache_trusted(&self) -> bool {
        if self.caches.trusted() {
            return true;
        }
        if let Some(listener) = &self.listener {
            listener.read_throughs.fetch_add(1, Ordering::Relaxed);
        }
        false
    }

    fn failed(&self, e: &StoreError) -> StoreError {
        self.caches.set_error(Some(e.to_string()));
        e.clone()
    }

    /// The user cache's loader. Everything it reads is keyed by the same
    /// `generation` as the user entry it fills (see `cache`).
    async fn load_user_cached(
        &self,
        generation: u64,
        user_id: &str,
    ) -> Result<Arc<UserAccess>, StoreError> {
        let found = self.backend.memberships(generation, user_id).await?;
        // One at a time: a user has a few organizations, the sets are
        // usually cached, and each load already runs on the blocking pool.
        let mut sets = Vec::with_capacity(found.organizations.len());
        for org in found.organizations {
            sets.push(self.org_models(generation, org).await?);
        }
        Ok(Arc::new(UserAccess::new(
            user_id,
            found.role,
            found.known,
            sets,
        )))
    }

    /// One organization's model set, cached per generation; concurrent
    /// misses (many users of one organization after a change) share one
    /// load. Errors are returned to every waiter and not cached.
    async fn org_models(
        &self,
        generation: u64,
        organization_id: String,
    ) -> Result<Arc<OrgModels>, StoreError> {
        let caches = &self.caches;
        let key = (generation, organization_id);
        if let Some(hit) = caches.orgs.get(&key).await {
            caches.org_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        caches.org_misses.fetch_add(1, Ordering::Relaxed);
        let id = key.1.clone();
        let load = async move {
            caches.org_loads.fetch_add(1, Ordering::Relaxed);
            self.backend.org_models(generation, &id).await.map(Arc::new)
        };
        Box::pin(caches.orgs.try_get_with(key, load))
            .await
            .map_err(|e| StoreError::clone(&e))
    }

    async fn model_graph_inner(&self) -> Result<Arc<ModelGraph>, StoreError> {
        let trusted = self.cache_trusted();
        if trusted {
            if let Some(graph) = self.current_graph() {
                return Ok(graph);
            }
        }
        // Boxed: a read is rare, and its future would otherwise be part of
        // every request's.
        Box::pin(self.read_graph(trusted)).await
    }

    async fn read_graph(&self, trusted: bool) -> Result<Arc<ModelGraph>, StoreError> {
        if !trusted {
            let generation = self.caches.generation();
            return self
                .backend
                .graph(generation, self.cfg.max_base_depth)
                .await
                .map(Arc::new)
                .map_err(|e| self.failed(&e));
        }
        let _loading = self.caches.graph_load.lock().await;
        if let Some(graph) = self.current_graph() {
            return Ok(graph);
        }
        let generation = self.caches.generation();
        let depth = self.cfg.max_base_depth;
        let graph = self
            .backend
            .graph(generation, depth)
            .await
            .map_err(|e| self.failed(&e))?;
        let graph = Arc::new(graph);
        // Stored under the generation it was read in: if a change landed
        // meanwhile, the next caller sees a stale slot and reloads.
        self.caches.graph.store(Some(Arc::new(GraphSlot {
            generation,
            graph: Arc::clone(&graph),
        })));
        Ok(graph)
    }

    fn current_graph(&self) -> Option<Arc<ModelGraph>> {
        let slot = self.caches.graph.load();
        slot.as_ref()
            .filter(|s| s.generation == self.caches.generation())
            .map(|s| Arc::clone(&s.graph))
    }
}

impl WatchTarget for Inner {
    fn caches(&self) -> &Caches {
        &self.caches
    }

    fn reset_connections(&self) {
        self.backend.reset();
    }

    async fn warm(&self) -> Result<(), StoreError> {
        self.model_graph_inner().await.map(drop)
    }

    fn polled(&self) {
        self.watcher_ticks.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn watcher_of(
        store: &AccessStore,
        token: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(watch::run(
            Arc::downgrade(&store.inner),
            token,
            store
                .inner
                .cfg
                .database
                .sqlite_path()
                .unwrap()
                .to_path_buf(),
            Duration::from_millis(10),
            Duration::from_millis(10),
        ))
    }

    #[tokio::test]
    async fn watcher_stops_when_the_store_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(StoreConfig::new(dir.path().join("none.db")));
        let task = watcher_of(&store, CancellationToken::new()).await;
        drop(store);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("watcher still running after drop")
            .unwrap();
    }

    #[tokio::test]
    async fn watcher_stops_on_cancellation() {
        let dir = tempfile::tempdir().unwrap();
        let token = CancellationToken::new();
        let store = AccessStore::open_with_shutdown(
            StoreConfig::new(dir.path().join("none.db")),
            token.clone(),
        );
        let task = watcher_of(&store, token.child_token()).await;
        token.cancel();
        assert!(store.inner.shutdown.is_cancelled());
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("watcher still running after cancel")
            .unwrap();
    }

    /// A set loaded under an old generation (a load that read the database
    /// before a change and finished after the invalidation) is never served,
    /// while one under the current generation is: the key does the work.
    #[tokio::test]
    async fn org_sets_of_an_old_generation_are_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gen.db");
        let conn = crate::store::admin::open_writer(&path).unwrap();
        crate::store::schema::ensure_schema(&conn).unwrap();
        crate::store::admin::create_org(&conn, "o", "O", "t").unwrap();
        crate::store::admin::add_member(
            &conn,
            "o",
            "u",
            crate::store::admin::MemberRole::Member,
            "t",
        )
        .unwrap();
        crate::store::admin::enable_model(&conn, "o", "real", "t").unwrap();
        let store = AccessStore::open(StoreConfig::new(&path));
        while store.watcher_polls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let caches = &store.inner.caches;
        let stale = Arc::new(OrgModels::new("o", ["stale".to_string()]));
        let old = caches.generation();
        caches.invalidate_all();
        caches
            .orgs
            .insert((old, "o".into()), Arc::clone(&stale))
            .await;
        let access = store.user("u").await.unwrap();
        assert_eq!(access.permits("real"), Some("o"));
        assert_eq!(access.permits("stale"), None);

        // Control: under the current generation the planted set is used.
        caches.invalidate_all();
        caches
            .orgs
            .insert((caches.generation(), "o".into()), stale)
            .await;
        let access = store.user("u").await.unwrap();
        assert_eq!(access.permits("stale"), Some("o"));
    }
}
