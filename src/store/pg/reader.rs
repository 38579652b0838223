//! The read path on PostgreSQL: the queries of `store::lookup` in
//! PostgreSQL's dialect (quoted `"user"`, native booleans, `$n`), on a
//! deadpool of connections with cached statements, each lookup bounded by
//! the lookup timeout like the SQLite pool's.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;

use crate::store::access::{Effect, Mode, ModelGraph, OrgModels, UserAccess};
use crate::store::database::PgTarget;
use crate::store::error::StoreError;
use crate::store::lookup::{ApiKeyOwner, Memberships, Tables};
use crate::store::pattern::Target;
use crate::store::pool::QueryObserver;

pub const MEMBERSHIPS_SQL: &str =
    "SELECT organization_id FROM organization_members WHERE user_id = $1 AND is_active";
pub const MEMBERSHIPS_WITH_GROUPS_SQL: &str = "WITH RECURSIVE mine(group_id) AS ( \
     SELECT group_id FROM group_member WHERE user_id = $1 \
     UNION SELECT g.parent_group_id FROM \"group\" g JOIN mine ON g.id = mine.group_id \
     WHERE g.parent_group_id IS NOT NULL) \
     SELECT organization_id FROM organization_members WHERE user_id = $1 AND is_active \
     UNION SELECT b.organization_id FROM mine \
     JOIN organization_groups b ON b.group_id = mine.group_id AND b.is_active";
pub const MEMBERSHIPS_WITH_FLAT_GROUPS_SQL: &str = "SELECT organization_id \
     FROM organization_members WHERE user_id = $1 AND is_active \
     UNION SELECT b.organization_id FROM group_member gm \
     JOIN organization_groups b ON b.group_id = gm.group_id AND b.is_active \
     WHERE gm.user_id = $1";
pub const ORG_MODELS_SQL: &str =
    "SELECT model_id FROM organization_models WHERE organization_id = $1 AND is_active";
pub const ORG_RULES_SQL: &str = "SELECT pattern, effect FROM organization_model_rules \
     WHERE organization_id = $1 AND is_active";
pub const ORG_MODE_SQL: &str = "SELECT mode FROM organizations WHERE id = $1";
pub const ANY_MEMBERSHIP_SQL: &str =
    "SELECT 1 FROM organization_members WHERE user_id = $1 LIMIT 1";
/// `"user"` quoted: bare `user` is `current_user` on PostgreSQL.
pub const ROLE_SQL: &str = "SELECT role FROM \"user\" WHERE id = $1";
pub const API_KEY_SQL: &str = "SELECT user_id, expires_at FROM api_key WHERE key = $1";
pub const MODEL_GRAPH_SQL: &str = "SELECT id, base_model_id FROM model";
/// `message.meta` is `json` on PostgreSQL; the text is parsed as on SQLite.
pub const MESSAGE_META_SQL: &str = "SELECT meta::text FROM message WHERE id = $1";

/// Which tables exist, resolved through the search_path like the queries.
const TABLES_SQL: &str = "SELECT to_regclass('\"user\"') IS NOT NULL, \
     to_regclass('api_key') IS NOT NULL, to_regclass('model') IS NOT NULL, \
     to_regclass('message') IS NOT NULL, to_regclass('organization_members') IS NOT NULL, \
     to_regclass('organization_models') IS NOT NULL, \
     to_regclass('organization_model_rules') IS NOT NULL, \
     to_regclass('organization_groups') IS NOT NULL, to_regclass('group_member') IS NOT NULL, \
     EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('\"group\"') \
             AND attname = 'parent_group_id' AND NOT attisdropped), \
     EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('organizations') \
             AND attname = 'mode' AND NOT attisdropped)";

/// A connection's set-up may not take longer than this when the URL sets
/// no `connect_timeout`: a black-holed host must not hold a lookup.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct PgReader {
    /// `Err`: the pool could not be built (a TLS file unreadable); every
    /// lookup reports it.
    pool: Result<Pool, String>,
    lookup_timeout: Duration,
    /// The table list with the generation it was read under.
    tables: Mutex<Option<(u64, Tables)>>,
    observer: OnceLock<QueryObserver>,
}

impl PgReader {
    pub fn new(target: &PgTarget, size: usize, lookup_timeout: Duration) -> PgReader {
        PgReader {
            pool: build_pool(target, size, lookup_timeout),
            lookup_timeout,
            tables: Mutex::new(None),
            observer: OnceLock::new(),
        }
    }

    pub fn observe(&self, observer: QueryObserver) {
        let _ = self.observer.set(observer);
    }

    /// Drops idle connections: after the listener lost the server they are
    /// likely dead too, and a dead one would cost a lookup its error.
    pub fn reset(&self) {
        if let Ok(pool) = &self.pool {
            pool.retain(|_, _| false);
        }
        *self.lock_tables() = None;
    }

    pub async fn memberships(
        &self,
        generation: u64,
        user: &str,
    ) -> Result<Memberships, StoreError> {
        self.run(generation, |conn, tables| {
            Box::pin(async move { memberships(&conn, &tables, user).await })
        })
        .await
    }

    pub async fn org_models(&self, generation: u64, org: &str) -> Result<OrgModels, StoreError> {
        self.run(generation, |conn, tables| {
            Box::pin(async move { org_models(&conn, &tables, org).await })
        })
        .await
    }

    pub async fn user(&self, generation: u64, user: &str) -> Result<UserAccess, StoreError> {
        self.run(generation, |conn, tables| {
            Box::pin(async move {
                let found = memberships(&conn, &tables, user).await?;
                let mut sets = Vec::with_capacity(found.organizations.len());
                for org in &found.organizations {
                    sets.push(Arc::new(org_models(&conn, &tables, org).await?));
                }
                Ok(UserAccess::new(user, found.role, found.known, sets))
            })
        })
        .await
    }

    pub async fn api_key(
        &self,
        generation: u64,
        key: &str,
    ) -> Result<Option<ApiKeyOwner>, StoreError> {
        self.run(generation, |conn, tables| {
            Box::pin(async move {
                if !tables.api_key {
                    return Ok(None);
                }
                let row = query_opt(&conn, API_KEY_SQL, &[&key]).await?;
                row.map(|r| {
                    Ok(ApiKeyOwner {
                        user_id: r.try_get(0)?,
                        expires_at: r.try_get(1)?,
                    })
                })
                .transpose()
            })
        })
        .await
    }

    pub async fn graph(&self, generation: u64, max_depth: usize) -> Result<ModelGraph, StoreError> {
        self.run(generation, |conn, tables| {
            Box::pin(async move {
                if !tables.model {
                    return Ok(ModelGraph::empty(max_depth));
                }
                let rows = query(&conn, MODEL_GRAPH_SQL, &[]).await?;
                let edges = rows
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect::<Result<Vec<(String, Option<String>)>, StoreError>>()?;
                Ok(ModelGraph::new(edges, max_depth))
            })
        })
        .await
    }

    pub async fn message_model(
        &self,
        generation: u64,
        message: &str,
    ) -> Result<Option<String>, StoreError> {
        self.run(generation, |conn, tables| {
            Box::pin(async move {
                if !tables.message {
                    return Ok(None);
                }
                let meta: Option<String> =
                    match query_opt(&conn, MESSAGE_META_SQL, &[&message]).await? {
                        Some(row) => row.try_get(0)?,
                        None => None,
                    };
                Ok(crate::store::lookup::model_id_of_meta(meta.as_deref()))
            })
        })
        .await
    }

    pub async fn ping(&self, generation: u64) -> Result<(), StoreError> {
        self.run(generation, |_, tables| {
            Box::pin(async move { tables.require_org_tables() })
        })
        .await
    }

    /// Runs `f` on a pooled connection within the lookup timeout (the wait
    /// for a connection included) and reports it to the observer.
    async fn run<'a, T>(
        &'a self,
        generation: u64,
        f: impl FnOnce(Object, Tables) -> LookupFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let work = async {
            let pool = self
                .pool
                .as_ref()
                .map_err(|e| StoreError::Unavailable(e.clone()))?;
            let conn = pool.get().await?;
            let tables = self.tables(&conn, generation).await?;
            f(conn, tables).await
        };
        let result = tokio::time::timeout(self.lookup_timeout, work)
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

    /// The table list, read again when the generation moved or while the
    /// organization tables are missing (`init` may just have run).
    async fn tables(&self, conn: &Object, generation: u64) -> Result<Tables, StoreError> {
        if let Some((at, tables)) = *self.lock_tables() {
            if at == generation && tables.require_org_tables().is_ok() {
                return Ok(tables);
            }
        }
        let row = query_opt(conn, TABLES_SQL, &[])
            .await?
            .ok_or_else(|| StoreError::Postgres("the table check returned no row".into()))?;
        let flag = |i: usize| row.try_get::<_, bool>(i);
        let tables = Tables {
            user: flag(0)?,
            api_key: flag(1)?,
            model: flag(2)?,
            message: flag(3)?,
            organization_members: flag(4)?,
            organization_models: flag(5)?,
            organization_model_rules: flag(6)?,
            organization_groups: flag(7)?,
            group_member: flag(8)?,
            group_parent: flag(9)?,
            organization_mode: flag(10)?,
            // The PostgreSQL memberships query always includes the group
            // half (its planner skips an empty join cheaply).
            group_bindings: flag(7)? && flag(8)?,
        };
        *self.lock_tables() = Some((generation, tables));
        Ok(tables)
    }

    fn lock_tables(&self) -> std::sync::MutexGuard<'_, Option<(u64, Tables)>> {
        // Held for a copy, never across an await.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type LookupFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

fn build_pool(target: &PgTarget, size: usize, lookup_timeout: Duration) -> Result<Pool, String> {
    let tls = super::tls::connector(target.tls())?;
    let mut config = target.config().clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // `Fast` only checks that the connection task still runs: a
            // server restart ends it, so dead connections are not reused,
            // and a healthy lookup pays no extra round trip.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(lookup_timeout))
        .create_timeout(Some(lookup_timeout))
        .recycle_timeout(Some(lookup_timeout))
        .build()
        .map_err(|e| format!("PostgreSQL pool: {e}"))
}

async fn query(
    conn: &Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query(&stmt, params).await?)
}

async fn query_opt(
    conn: &Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let stmt = conn.prepare_cached(sql).await?;
    Ok(conn.query_opt(&stmt, params).await?)
}

/// As `lookup::load_memberships`, in PostgreSQL's dialect.
async fn memberships(
    conn: &Object,
    tables: &Tables,
    user: &str,
) -> Result<Memberships, StoreError> {
    tables.require_org_tables()?;
    let sql = match (
        tables.organization_groups && tables.group_member,
        tables.group_parent,
    ) {
        (true, true) => MEMBERSHIPS_WITH_GROUPS_SQL,
        (true, false) => MEMBERSHIPS_WITH_FLAT_GROUPS_SQL,
        (false, _) => MEMBERSHIPS_SQL,
    };
    let mut found = Memberships::default();
    for row in query(conn, sql, &[&user]).await? {
        found.organizations.push(row.try_get(0)?);
    }
    found.organizations.sort_unstable();
    found.organizations.dedup();
    if tables.user {
        let row = query_opt(conn, ROLE_SQL, &[&user]).await?;
        found.known = row.is_some();
        found.role = match row {
            Some(r) => r.try_get::<_, Option<String>>(0)?,
            None => None,
        };
    }
    if !found.known {
        found.known = !found.organizations.is_empty()
            || query_opt(conn, ANY_MEMBERSHIP_SQL, &[&user])
                .await?
                .is_some();
    }
    Ok(found)
}

/// As `lookup::load_org_models`: a row that cannot be read as written
/// fails the load rather than narrowing or widening the policy.
async fn org_models(conn: &Object, tables: &Tables, org: &str) -> Result<OrgModels, StoreError> {
    tables.require_org_tables()?;
    let models = query(conn, ORG_MODELS_SQL, &[&org])
        .await?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut set = OrgModels::new(org, models);
    if tables.organization_mode {
        if let Some(row) = query_opt(conn, ORG_MODE_SQL, &[&org]).await? {
            let text: String = row.try_get(0)?;
            let mode = Mode::parse(&text).ok_or_else(|| {
                StoreError::Schema(format!(
                    "organization {org} has mode {text:?}, neither enforce nor shadow"
                ))
            })?;
            set = set.with_mode(mode);
        }
    }
    if tables.organization_model_rules {
        for row in query(conn, ORG_RULES_SQL, &[&org]).await? {
            let pattern: String = row.try_get(0)?;
            let effect: String = row.try_get(1)?;
            let bad = |what: String| {
                StoreError::Schema(format!("organization {org}: rule {pattern:?} {what}"))
            };
            let target = Target::parse(&pattern).map_err(|e| bad(e.to_string()))?;
            let effect = Effect::parse(&effect)
                .ok_or_else(|| bad(format!("has effect {effect:?}, neither allow nor deny")))?;
            set = set.with_rule(target, effect);
        }
    }
    Ok(set)
}
