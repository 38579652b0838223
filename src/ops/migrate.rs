//! `modelgate migrate`: the seed's `migrate_to_organizations.py`, made safe.
//!
//! Order matters: an online backup (SQLite's backup API, consistent while
//! Open WebUI keeps writing, unlike the seed's `cp` of a live WAL file)
//! is taken before anything is written; then `store::admin::migrate` runs
//! everything in ONE transaction, so any failure rolls back and leaves the
//! database as it was. A dry run rolls back on purpose and needs no backup.
//!
//! On PostgreSQL there is no file to copy: the operator is told, first and
//! prominently, to take a `pg_dump` (or rely on the server's own backups),
//! and the migration runs in one transaction all the same.
//!
//! A migration that would leave the organization without any model is
//! refused before the backup (unless `--allow-empty`): with Open WebUI's
//! `model` table holding no base model and the gate having seen no model
//! list, there is nothing to link, and members of an organization without
//! models can use none.

use std::fmt;
use std::path::{Path, PathBuf};

use rusqlite::hooks::Action;
use serde::Serialize;

use super::{compact_utc, now_secs, open_write, require_non_empty, OpsError};
use crate::store::admin::{self, MigrateOptions, MigrateReport, ModelSource};
use crate::store::sql::AdminDb;
use crate::store::{Database, StoreError};

/// Rows between two progress reports.
pub const PROGRESS_EVERY: u64 = 10_000;

/// Rows inserted so far into one table (reported every [`PROGRESS_EVERY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub table: &'static str,
    pub rows: u64,
}

pub type ProgressFn = Box<dyn FnMut(Progress) + Send>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateOutcome {
    /// The file, or the PostgreSQL database without its password.
    pub database: String,
    pub organization_name: String,
    /// `None` on a dry run, and on PostgreSQL.
    pub backup: Option<PathBuf>,
    /// On PostgreSQL: what to do instead of the file backup (the CLI
    /// prints it on stderr before anything runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_advice: Option<String>,
    pub actor: String,
    #[serde(flatten)]
    pub report: MigrateReport,
}

/// What a PostgreSQL migration says instead of taking a backup.
pub fn pg_backup_advice(target: &str) -> String {
    format!(
        "PostgreSQL: modelgate takes no backup of {target}. Take one first \
         (pg_dump --format=custom --file=webui-before-migrate.dump, with the same connection \
         settings, or your server's own snapshot); the migration itself runs in one \
         transaction and rolls back whole on any error"
    )
}

/// `progress` is called on SQLite only (its update hook counts rows as
/// they go in; PostgreSQL's single `INSERT ... SELECT` gives no such view).
pub fn migrate(
    db: impl Into<Database>,
    org_id: &str,
    org_name: &str,
    actor: &str,
    options: MigrateOptions,
    progress: Option<ProgressFn>,
) -> Result<MigrateOutcome, OpsError> {
    let db = db.into();
    let dry_run = options.dry_run;
    // Validate before the backup: a typo should not leave a backup file.
    let org_id = require_non_empty(org_id, "organization id")?;
    let org_name = require_non_empty(org_name, "organization name")?;
    let actor = require_non_empty(actor, "actor")?;
    let conn = open_write(&db)?;
    // Nor should a refusal. (The transaction checks again, authoritatively.)
    if !options.allow_empty && admin::model_plan(&conn, org_id)?.leaves_no_models() {
        return Err(OpsError::NoModelsToLink {
            organization: org_id.to_string(),
            model_table: conn.table_exists("model")?,
        });
    }
    let (backup, backup_advice) = match (&db, conn.sqlite()) {
        (Database::Sqlite(path), Some(sqlite)) => {
            let backup = if dry_run {
                None
            } else {
                Some(take_backup(sqlite, path)?)
            };
            if let Some(progress) = progress {
                install_progress(sqlite, progress);
            }
            (backup, None)
        }
        _ => (None, (!dry_run).then(|| pg_backup_advice(&db.to_string()))),
    };
    let result = admin::migrate(&conn, org_id, org_name, actor, options);
    if let Some(sqlite) = conn.sqlite() {
        sqlite.update_hook(None::<fn(Action, &str, &str, i64)>);
    }
    let report = result.map_err(|source| OpsError::RolledBack {
        what: if dry_run { "dry run" } else { "migration" },
        backup: backup.clone(),
        source,
    })?;
    Ok(MigrateOutcome {
        database: db.to_string(),
        organization_name: org_name.to_string(),
        backup,
        backup_advice,
        actor: actor.to_string(),
        report,
    })
}

/// `webui.db.backup-YYYYMMDD-HHMMSS` (UTC) beside the database; `-2`, `-3`
/// … when a run in the same second already took that name (the store's
/// backup refuses to overwrite).
fn take_backup(conn: &rusqlite::Connection, path: &Path) -> Result<PathBuf, OpsError> {
    let stamp = compact_utc(now_secs());
    let base = format!("{}.backup-{stamp}", path.display());
    for n in 1..100 {
        let dest = if n == 1 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}-{n}"))
        };
        if dest.exists() {
            continue;
        }
        admin::backup(conn, &dest)?;
        return Ok(dest);
    }
    Err(OpsError::Store(StoreError::Backup(format!(
        "too many backups named {base}-*"
    ))))
}

/// Counts inserted rows with SQLite's update hook: it sees every row of the
/// single `INSERT ... SELECT` the store runs (a statement gives no progress
/// of its own) and needs no temporary trigger, which could not be created
/// before the migration creates the tables anyway.
fn install_progress(conn: &rusqlite::Connection, mut progress: ProgressFn) {
    let mut members = 0u64;
    let mut models = 0u64;
    conn.update_hook(Some(
        move |action: Action, _db: &str, table: &str, _rowid: i64| {
            if action != Action::SQLITE_INSERT {
                return;
            }
            let (name, count) = match table {
                "organization_members" => ("organization_members", &mut members),
                "organization_models" => ("organization_models", &mut models),
                _ => return,
            };
            *count += 1;
            if *count % PROGRESS_EVERY == 0 {
                progress(Progress {
                    table: name,
                    rows: *count,
                });
            }
        },
    ));
}

impl fmt::Display for MigrateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        if let Some(backup) = &self.backup {
            writeln!(f, "backup: {}", backup.display())?;
        }

        if r.dry_run {
            writeln!(
                f,
                "dry run for organization '{}' ({}): rolled back, nothing was changed",
                r.organization_id, self.organization_name
            )?;
        } else {
            writeln!(
                f,
                "migrated organization '{}' ({}) in {} (actor: {})",
                r.organization_id, self.organization_name, self.database, self.actor
            )?;
        }
        let verb = if r.dry_run { "would link" } else { "linked" };
        writeln!(
            f,
            "  users:  {verb} {}, members in organization: {}",
            r.users_linked, r.members_total
        )?;
        writeln!(
            f,
            "  models: {verb} {}, models in organization:  {}",
            r.models_linked, r.models_total
        )?;
        if !r.user_table {
            writeln!(
                f,
                "  note: no Open WebUI `user` table, so no users were linked"
            )?;
        }
        let (base_models, presets) = if r.model_table {
            ("has no base models", ", and the bases its presets name")
        } else {
            ("does not exist", "")
        };
        match r.model_source {
            ModelSource::ModelTable => {}
            ModelSource::KnownModels if r.models_total == 0 => writeln!(
                f,
                "  note: the organization has no models (--allow-empty): its members can use \
                 none until `modelgate model enable`"
            )?,
            ModelSource::KnownModels => writeln!(
                f,
                "  note: Open WebUI's `model` table {base_models}, so the models linked are the \
                 ids the gate has seen the upstream offer{presets}"
            )?,
        }
        let has_any = r.members_total > 0 || r.models_total > 0;
        if !r.dry_run && r.users_linked == 0 && r.models_linked == 0 && has_any {
            writeln!(f, "  already migrated: nothing to add")?;
        }
        Ok(())
    }
}
