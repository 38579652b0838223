//! Shared fixtures for the store tests: an Open WebUI-shaped SQLite file in
//! a temp dir, and polling with a deadline instead of sleeping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use modelgate::store::admin::{self, MemberRole};
use modelgate::store::{ensure_schema, AccessStore, StoreConfig};
use rusqlite::{params, Connection};
use tempfile::TempDir;

// The one shared helper, without the proxy harness around it in `common`.
#[path = "../common/eventually.rs"]
mod eventually;
pub use eventually::eventually;

pub use modelgate::store::webui_fixture::OPEN_WEBUI_TABLES;

pub struct Db {
    pub dir: TempDir,
    pub path: PathBuf,
    pub conn: Connection,
}

/// A WAL database with Open WebUI's tables and our schema.
pub fn owui_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    let conn = admin::open_writer(&path).unwrap();
    conn.execute_batch(OPEN_WEBUI_TABLES).unwrap();
    ensure_schema(&conn).unwrap();
    Db { dir, path, conn }
}

/// Our schema only, no Open WebUI tables.
pub fn standalone_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    let conn = admin::open_writer(&path).unwrap();
    ensure_schema(&conn).unwrap();
    Db { dir, path, conn }
}

impl Db {
    pub fn user(&self, id: &str, role: &str) {
        self.conn
            .execute(
                "INSERT INTO user (id, name, email, role, created_at) VALUES (?1, ?1, ?1 || '@example.com', ?2, 0)",
                params![id, role],
            )
            .unwrap();
    }

    pub fn model(&self, id: &str, base: Option<&str>) {
        self.conn
            .execute(
                "INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES (?1, 'admin', ?2, ?1, '{}', '{}', 1)",
                params![id, base],
            )
            .unwrap();
    }

    pub fn org(&self, id: &str) {
        admin::create_org(&self.conn, id, &format!("Org {id}"), "test").unwrap();
    }

    pub fn member(&self, org: &str, user: &str) {
        admin::add_member(&self.conn, org, user, MemberRole::Member, "test").unwrap();
    }

    pub fn enable(&self, org: &str, model: &str) {
        admin::enable_model(&self.conn, org, model, "test").unwrap();
    }

    pub fn store(&self) -> AccessStore {
        AccessStore::open(StoreConfig::new(&self.path))
    }
}

pub fn config(path: &Path) -> StoreConfig {
    StoreConfig {
        busy_timeout: Duration::from_millis(50),
        watch_interval: Duration::from_millis(50),
        ..StoreConfig::new(path)
    }
}

/// Waits for the watcher's first poll, which always invalidates (a load
/// before it had no baseline `data_version`); counting tests start after it.
pub async fn wait_for_first_poll(store: &AccessStore) {
    eventually(Duration::from_secs(2), "first watcher poll", || async {
        store.watcher_polls() > 0
    })
    .await;
}
