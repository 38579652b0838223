//! The operator commands behind `modelgate init|org|member|model|access|
//! report|audit|db-bench|migrate`: every SQL task the seed's deployment
//! guide had an operator type into `sqlite3` by hand.
//!
//! Each command is a library function returning a serializable report that
//! also implements `Display` (the human text); the CLI only parses
//! arguments, picks JSON or text, and maps the result to an exit code. The
//! SQL lives in [`crate::store`]; this layer decides how a database is
//! opened (read commands never create or modify one), names the actor, and
//! turns store errors into messages an operator can act on.
//!
//! # Layout
//! - [`init`]    — `init`: create/repair the schema
//! - [`manage`]  — `org`, `member`, `model`: writes and listings
//! - [`access`]  — `access`: explain a user's access and one decision
//! - [`report`]  — `report` and `audit`
//! - [`bench`]   — `db-bench`
//! - [`migrate`] — `migrate`: backup, one transaction, verification

pub mod access;
pub mod bench;
pub mod init;
pub mod manage;
pub mod migrate;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

use crate::store::{admin, StoreError};

/// Everything an operator command can fail with, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("database {0} does not exist (create it with `modelgate --db {0} init`)")]
    MissingDatabase(String),
    #[error("organization '{0}' does not exist")]
    UnknownOrganization(String),
    #[error("user '{0}' does not exist in Open WebUI's user table")]
    UnknownUser(String),
    #[error("user '{user}' is not a member of organization '{org}'")]
    NotAMember { org: String, user: String },
    #[error("model '{model}' is not enabled for organization '{org}'")]
    ModelNotLinked { org: String, model: String },
    #[error("invalid role '{0}' (expected member or admin)")]
    InvalidRole(String),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// The organization tables are absent; the text says to run `init`.
    #[error("{0}")]
    SchemaMissing(String),
    #[error("cannot create {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed and was rolled back; the database is unchanged{}",
        backup.as_ref().map(|b| format!(" (backup: {})", b.display())).unwrap_or_default())]
    RolledBack {
        what: &'static str,
        backup: Option<PathBuf>,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownOrganization(org) => OpsError::UnknownOrganization(org),
            StoreError::UnknownUser(user) => OpsError::UnknownUser(user),
            StoreError::InvalidRole(role) => OpsError::InvalidRole(role),
            StoreError::EmptyId(what) => OpsError::Empty(what),
            schema @ StoreError::Schema(_) => OpsError::SchemaMissing(schema.to_string()),
            other => OpsError::Store(other),
        }
    }
}

/// The actor recorded in `permission_audit_log` when `--actor` is not given:
/// the OS user, so a change made from a shared admin box is still
/// attributable. `env` is injectable so tests never touch the process
/// environment.
pub fn default_actor(env: &dyn Fn(&str) -> Option<String>) -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|name| env(name))
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

fn require_non_empty<'a>(value: &'a str, what: &'static str) -> Result<&'a str, OpsError> {
    if value.trim().is_empty() {
        Err(OpsError::Empty(what))
    } else {
        Ok(value)
    }
}

fn require_exists(path: &Path) -> Result<(), OpsError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(OpsError::MissingDatabase(path.display().to_string()))
    }
}

/// Read commands open read-only and never create the file: a typo in
/// `--db` must not leave an empty database behind (which `serve` would then
/// happily find).
pub fn open_reader(path: &Path) -> Result<Connection, OpsError> {
    require_exists(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::from)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(StoreError::from)?;
    Ok(conn)
}

/// Write commands other than `init` and `migrate` need an existing database
/// (with the schema: the store reports its absence); only `init` creates.
pub fn open_writer(path: &Path) -> Result<Connection, OpsError> {
    require_exists(path)?;
    Ok(admin::open_writer(path)?)
}

/// Left-aligned columns, two spaces apart; no table crate for plain text.
fn write_table(
    f: &mut std::fmt::Formatter<'_>,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::fmt::Result {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |f: &mut std::fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(cell);
            out.extend(std::iter::repeat(' ').take(w.saturating_sub(cell.chars().count())));
        }
        writeln!(f, "{}", out.trim_end())
    };
    line(f, &mut headers.iter().copied())?;
    for row in rows {
        line(f, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// `-` for an absent value in text tables.
fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_string()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for a Unix time; no date crate for one
/// format. Days → civil date after Howard Hinnant's `civil_from_days`.
pub fn utc(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// `YYYYMMDD-HHMMSS` (UTC), for backup file names.
fn compact_utc(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn civil(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3_600, rem % 3_600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_738_108_800 + 3_661), "2025-01-29 01:01:01");
        assert_eq!(compact_utc(1_738_108_800), "20250129-000000");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn actor_falls_back() {
        let env = |name: &str| (name == "LOGNAME").then(|| "ops".to_string());
        assert_eq!(default_actor(&env), "ops");
        assert_eq!(default_actor(&|_| None), "cli");
        assert_eq!(default_actor(&|_| Some(" ".into())), "cli");
    }
}
