//! `modelgate init`: the seed's "automatic initialization" as an explicit,
//! idempotent command (the same `ensure_schema` that `serve` runs).

use std::fmt;
use std::path::Path;

use serde::Serialize;

use super::OpsError;
use crate::store::{admin, ensure_schema, PgTarget};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitReport {
    /// The file, or the PostgreSQL database without its password.
    pub database: String,
    /// The database file did not exist before.
    pub file_created: bool,
    /// Tables, indexes, the view and triggers that were missing.
    pub created: Vec<String>,
    /// Organization ids referenced by memberships/links (the Python
    /// prototype never had an `organizations` table) given a row.
    pub organizations_backfilled: usize,
}

pub fn init(path: &Path) -> Result<InitReport, OpsError> {
    let file_created = !path.exists();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| OpsError::Io {
            path: parent.display().to_string(),
            source,
        })?;
    }
    let conn = admin::open_writer(path)?;
    let report = ensure_schema(&conn)?;
    Ok(InitReport {
        database: path.display().to_string(),
        file_created,
        // SQLite's own objects (autoindexes, sqlite_sequence) come and go
        // with our tables; naming them only adds noise.
        created: report
            .created
            .into_iter()
            .filter(|name| !name.starts_with("sqlite_"))
            .collect(),
        organizations_backfilled: report.organizations_backfilled,
    })
}

/// `init` on PostgreSQL: one transaction, in the schema Open WebUI has
/// migrated (refused otherwise, see `store::pg::schema`).
pub async fn init_postgres(target: &PgTarget) -> Result<InitReport, OpsError> {
    let mut client = crate::store::pg::connect(target).await?;
    let report = crate::store::pg::ensure_schema(&mut client).await?;
    Ok(InitReport {
        database: target.to_string(),
        file_created: false,
        created: report.created,
        organizations_backfilled: report.organizations_backfilled,
    })
}

impl fmt::Display for InitReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file_created {
            writeln!(f, "created database {}", self.database)?;
        }
        if self.created.is_empty() {
            writeln!(f, "schema of {} is complete; nothing to do", self.database)?;
        } else {
            writeln!(
                f,
                "created in {}: {}",
                self.database,
                self.created.join(", ")
            )?;
        }
        if self.organizations_backfilled > 0 {
            writeln!(
                f,
                "added {} missing organizations row(s) (named after their id)",
                self.organizations_backfilled
            )?;
        }
        Ok(())
    }
}
