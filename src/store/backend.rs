//! The lookups by database kind: the SQLite read pool (blocking threads) or
//! the PostgreSQL reader (async). `AccessStore` asks this and never the
//! pools, so its caches, generation scheme and public API are one for both.

use std::sync::Arc;

use super::access::{ModelGraph, OrgModels, UserAccess};
use super::error::StoreError;
use super::lookup::{self, ApiKeyOwner, Memberships};
use super::pg::PgReader;
use super::pool::{QueryObserver, ReadPool};

pub(crate) enum Backend {
    Sqlite(Arc<ReadPool>),
    Postgres(Arc<PgReader>),
}

impl Backend {
    pub async fn memberships(
        &self,
        generation: u64,
        user: &str,
    ) -> Result<Memberships, StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                let user = user.to_string();
                pool.run(generation, move |conn, tables| {
                    lookup::load_memberships(conn, tables, &user)
                })
                .await
            }
            Backend::Postgres(pg) => pg.memberships(generation, user).await,
        }
    }

    pub async fn org_models(&self, generation: u64, org: &str) -> Result<OrgModels, StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                let org = org.to_string();
                pool.run(generation, move |conn, tables| {
                    lookup::load_org_models(conn, tables, &org)
                })
                .await
            }
            Backend::Postgres(pg) => pg.org_models(generation, org).await,
        }
    }

    /// Memberships and every organization's set in one go, uncached.
    pub async fn user(&self, generation: u64, user: &str) -> Result<UserAccess, StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                let user = user.to_string();
                pool.run(generation, move |conn, tables| {
                    lookup::load_user(conn, tables, &user)
                })
                .await
            }
            Backend::Postgres(pg) => pg.user(generation, user).await,
        }
    }

    pub async fn api_key(
        &self,
        generation: u64,
        key: &str,
    ) -> Result<Option<ApiKeyOwner>, StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                let key = key.to_string();
                pool.run(generation, move |conn, tables| {
                    lookup::load_api_key(conn, tables, &key)
                })
                .await
            }
            Backend::Postgres(pg) => pg.api_key(generation, key).await,
        }
    }

    pub async fn graph(&self, generation: u64, max_depth: usize) -> Result<ModelGraph, StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                pool.run(generation, move |conn, tables| {
                    lookup::load_graph(conn, tables, max_depth)
                })
                .await
            }
            Backend::Postgres(pg) => pg.graph(generation, max_depth).await,
        }
    }

    pub async fn message_model(
        &self,
        generation: u64,
        message: &str,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                let message = message.to_string();
                pool.run(generation, move |conn, tables| {
                    lookup::load_message_model(conn, tables, &message)
                })
                .await
            }
            Backend::Postgres(pg) => pg.message_model(generation, message).await,
        }
    }

    /// Readiness: the database answers and has the organization tables.
    pub async fn ping(&self, generation: u64) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(pool) => {
                pool.run(generation, |_, tables| tables.require_org_tables())
                    .await
            }
            Backend::Postgres(pg) => pg.ping(generation).await,
        }
    }

    pub fn observe(&self, observer: QueryObserver) {
        match self {
            Backend::Sqlite(pool) => pool.observe(observer),
            Backend::Postgres(pg) => pg.observe(observer),
        }
    }

    /// Retires every pooled connection (the watcher lost the database).
    pub fn reset(&self) {
        match self {
            Backend::Sqlite(pool) => pool.reset(),
            Backend::Postgres(pg) => pg.reset(),
        }
    }
}
