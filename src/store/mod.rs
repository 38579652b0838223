//! Access data: the organization schema inside Open WebUI's SQLite database,
//! the admin writes the CLI calls, and the cached, watched read path the
//! proxy asks "may this user use this model?".
//!
//! # Layout
//! - `error`  — `StoreError`, one enum for the layer (`is_unavailable` → 503)
//! - `database` — `Database`: a SQLite path or a PostgreSQL URL (Open WebUI's
//!   spellings, `DATABASE_URL`/`DATABASE_SCHEMA`), the password never shown
//! - `schema` — `ensure_schema`: tables, seed indexes, view, audit triggers
//! - `admin`  — writes/listings for the CLI, `migrate`, `backup`
//! - `pattern` — rule targets: exact ids and `*` globs, parsed and matched
//! - `access` — `UserAccess`, `OrgModels` (one organization's policy),
//!   `ModelGraph` (root of a preset), `Decision`
//! - `lookup` — the read queries (memberships per user, model sets per org)
//! - `pool`   — read-only connections on blocking threads
//! - `cache`  — moka caches (users, organizations' model sets) keyed by
//!   change generation, `StoreStats`
//! - `watch`  — `PRAGMA data_version` poller that invalidates on change
//! - `pg`     — the PostgreSQL backend: reader, schema, LISTEN/NOTIFY listener
//! - `sql`    — the dialect layer the admin code is written against: one
//!   statement text for SQLite and PostgreSQL, `AdminDb`, `AnyDb`
//! - `backend` — the lookups by database kind (SQLite pool or `pg` reader)
//! - `handle` — `AccessStore`, the cloneable handle the proxy uses
//! - `known`  — model ids seen upstream (`known_models`): record, union,
//!   "did you mean"
//! - `bench`  — synthetic data generator and the `db-bench` report
//! - `report` — operator reports: access report, model names, base chains
//! - `bootstrap` — `--bootstrap-org`: one organization for everyone at start-up
//! - `webui_fixture` — Open WebUI's own tables, for tests, the demo, benches
pub mod access;
pub mod admin;
mod backend;
pub mod bench;
pub mod bootstrap;
mod cache;
pub mod database;
pub mod error;
mod handle;
pub mod known;
pub mod lookup;
pub mod pattern;
pub mod pg;
mod pool;
pub mod report;
pub mod schema;
pub mod sql;
mod watch;
pub mod webui_fixture;

pub use access::{
    Decision, DenyReason, Effect, Mode, ModelGraph, OrgModels, RootError, RuleView, UserAccess,
};
pub use cache::StoreStats;
pub use database::{Database, DatabaseError, PgTarget};
pub use error::StoreError;
pub use handle::{AccessStore, StoreConfig};
pub use lookup::ApiKeyOwner;
pub use pg::{ListenerState, ListenerStats};
pub use pool::QueryObserver;
pub use schema::{ensure_schema, SchemaReport};
