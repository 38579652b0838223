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

use crate::store::pg::blocking::PgConn;
use crate::store::sql::AnyDb;
use crate::store::{admin, Database, PgTarget, StoreError};

/// Everything an operator command can fail with, worded for the operator.
///
/// Each variant has a stable [`OpsError::code`] (`--json` errors carry it).
/// A message either shows its cause or exposes it as `source()`, never
/// both: the CLI prints the whole chain, so both would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("database {path} does not exist{}",
        match missing_dir {
            Some(dir) => format!(" (nor does its directory {dir}: check --db / MODELGATE_DATABASE)"),
            None => format!(" (check --db / MODELGATE_DATABASE, or create it with `modelgate --db {path} init`)"),
        })]
    MissingDatabase {
        path: String,
        /// The nearest missing directory above the file, when there is one.
        missing_dir: Option<String>,
    },
    /// The database path exists but cannot be used: the message names the
    /// file, what is wrong and what to do.
    #[error("cannot {} database {path}: {problem}. {fix}", if *write { "write" } else { "read" })]
    Open {
        path: String,
        /// Reading (`report`, `audit`, lists, `access`) or writing.
        write: bool,
        problem: String,
        fix: String,
        code: &'static str,
    },
    #[error("organization '{0}' does not exist")]
    UnknownOrganization(String),
    #[error("user '{0}' does not exist in Open WebUI's user table")]
    UnknownUser(String),
    #[error("user '{user}' is not a member of organization '{org}'")]
    NotAMember { org: String, user: String },
    #[error("model '{model}' is neither allowed nor denied for organization '{org}'")]
    ModelNotLinked { org: String, model: String },
    /// `model enable` of an exact id no known model has (without `--force`).
    #[error("{}", unknown_model_text(model, suggestions, *nothing_known))]
    UnknownModel {
        model: String,
        suggestions: Vec<String>,
        /// The gate has not recorded any model list yet.
        nothing_known: bool,
    },
    #[error("Open WebUI group '{group}' is not bound to organization '{org}'")]
    GroupNotBound { org: String, group: String },
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
    /// Writing a streamed listing failed (a closed pipe included: the CLI
    /// treats that one as the reader having seen enough).
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
    /// `migrate` found no model to give the organization.
    #[error("organization '{organization}' would get no models, so its members could use none: \
             Open WebUI's `model` table {} and the gate has not seen the upstream's model list yet. \
             Start `modelgate serve` in front of Open WebUI and open Open WebUI once, so the gate \
             learns the model ids, then run migrate again; or pass --allow-empty and enable models \
             later with `modelgate model enable`",
        if *model_table { "has no base models" } else { "does not exist" })]
    NoModelsToLink {
        organization: String,
        /// Whether Open WebUI's `model` table exists.
        model_table: bool,
    },
    #[error("{what} failed and was rolled back; the database is unchanged{}",
        backup.as_ref().map(|b| format!(" (backup: {})", b.display())).unwrap_or_default())]
    RolledBack {
        what: &'static str,
        backup: Option<PathBuf>,
        #[source]
        source: StoreError,
    },
    /// A command that only makes sense on SQLite; the text says why and
    /// what to use on PostgreSQL instead.
    #[error("{what} does not run on PostgreSQL: {why}")]
    NotOnPostgres {
        what: &'static str,
        why: &'static str,
    },
    #[error(transparent)]
    Store(StoreError),
}

impl OpsError {
    /// A stable, machine-readable name for the failure (`--json` errors).
    pub fn code(&self) -> &'static str {
        match self {
            OpsError::MissingDatabase { .. } => "database_not_found",
            OpsError::Open { code, .. } => code,
            OpsError::UnknownOrganization(_) => "unknown_organization",
            OpsError::UnknownUser(_) => "unknown_user",
            OpsError::NotAMember { .. } => "not_a_member",
            OpsError::ModelNotLinked { .. } => "model_not_enabled",
            OpsError::GroupNotBound { .. } => "group_not_bound",
            OpsError::UnknownModel { .. } => "unknown_model",
            OpsError::InvalidRole(_) => "invalid_role",
            OpsError::Empty(_) => "empty_argument",
            OpsError::SchemaMissing(_) => "schema_missing",
            OpsError::Io { .. } => "io_error",
            OpsError::Output(_) => "output_error",
            OpsError::NoModelsToLink { .. } => "no_models_to_link",
            OpsError::RolledBack { .. } => "rolled_back",
            OpsError::NotOnPostgres { .. } => "unsupported_database",
            OpsError::Store(e) => match e {
                StoreError::Busy(_) => "database_busy",
                StoreError::Missing { .. } => "database_not_found",
                StoreError::Unavailable(_) => "database_unavailable",
                StoreError::Backup(_) => "backup_failed",
                StoreError::BadPattern { .. } => "invalid_pattern",
                StoreError::OrganizationExists { .. } => "organization_exists",
                StoreError::UnknownGroup(_) => "unknown_group",
                StoreError::AmbiguousGroup { .. } => "ambiguous_group",
                StoreError::AmbiguousEmail { .. } => "ambiguous_user",
                StoreError::UnknownEmail(_) => "unknown_user",
                _ => "database_error",
            },
        }
    }
}

fn unknown_model_text(model: &str, suggestions: &[String], nothing_known: bool) -> String {
    if nothing_known {
        return format!(
            "no model list has been seen yet, so '{model}' cannot be checked: run `modelgate serve` \
             and let Open WebUI load its models (or open the model list as an admin), then retry; \
             or pass --force to enable it unchecked"
        );
    }
    let hint = match suggestions {
        [] => String::new(),
        [one] => format!(" Did you mean '{one}'?"),
        many => format!(
            " Close ids: {}.",
            many.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "no known model is called '{model}' (the ids come from the model lists the gate has \
         forwarded and Open WebUI's model table).{hint} Pass --force to enable it anyway"
    )
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

/// The database path must name an existing regular file this user can
/// read. Nothing is created: a typo in `--db` must not leave an empty
/// database behind (which `serve` would then happily find).
fn require_exists(path: &Path) -> Result<(), OpsError> {
    let shown = path.display().to_string();
    let problem = |problem: String, fix: String, code| OpsError::Open {
        path: shown.clone(),
        write: false,
        problem,
        fix,
        code,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(problem(
            "it is a directory, not a database file".into(),
            format!(
                "Give --db the SQLite file itself, e.g. {}",
                path.join("webui.db").display()
            ),
            "database_is_directory",
        )),
        Ok(meta) if !meta.is_file() => Err(problem(
            "it is not a regular file".into(),
            "Give --db the path of the SQLite file (webui.db)".into(),
            "not_a_database",
        )),
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(problem(
                "permission denied".into(),
                format!(
                    "This user needs read permission on {shown} (see `ls -l {shown}`); \
                     run the command as the user that runs `serve`, or give its group read access"
                ),
                "permission_denied",
            )),
            Err(e) => Err(problem(
                e.to_string(),
                "Check the file and the disk".into(),
                "database_unavailable",
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(OpsError::MissingDatabase {
            path: shown.clone(),
            missing_dir: missing_dir(path).map(|d| d.display().to_string()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(problem(
            "permission denied on a directory above it".into(),
            "This user needs search (x) permission on every directory on the path".into(),
            "permission_denied",
        )),
        // ENOTDIR: a file where a directory should be, and the like.
        Err(e) => Err(problem(
            e.to_string(),
            "Check the path given to --db / MODELGATE_DATABASE".into(),
            "database_unavailable",
        )),
    }
}

/// The highest directory on the way to `path` that does not exist.
fn missing_dir(path: &Path) -> Option<&Path> {
    let mut missing = None;
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if d.exists() {
            break;
        }
        missing = Some(d);
        dir = d.parent();
    }
    missing
}

/// Read commands open the file with `SQLITE_OPEN_READ_ONLY` and never
/// create it, so they work on a file this user may only read. The schema
/// is read once here: SQLite opens lazily, and a file it cannot read (not
/// a database, a WAL database whose `-shm` it cannot use) should fail now,
/// with the path and the fix, not half-way through a command.
pub fn open_reader(path: &Path) -> Result<Connection, OpsError> {
    require_exists(path)?;
    let opened = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(conn)
    });
    opened.map_err(|e| open_error(path, false, e))
}

/// Write commands other than `init` and `migrate` need an existing database
/// (with the schema: the store reports its absence); only `init` creates.
/// A file this user cannot write is refused up front, naming what needs
/// which permission, instead of SQLite's "attempt to write a readonly
/// database" from inside the first transaction.
pub fn open_writer(path: &Path) -> Result<Connection, OpsError> {
    require_exists(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| {
        // SQLite falls back to read-only when the file is write-protected.
        if conn.is_readonly(rusqlite::DatabaseName::Main)? {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                Some("the file is write-protected for this user".into()),
            ));
        }
        admin::configure_writer(&conn)?;
        Ok(conn)
    })
    .map_err(|e| open_error(path, true, e))?;
    Ok(conn)
}

/// [`open_reader`] for either database: on PostgreSQL a session whose
/// transactions are all read-only, so a listing cannot write.
pub fn open_read(db: &Database) -> Result<AnyDb, OpsError> {
    match db {
        Database::Sqlite(path) => open_reader(path).map(AnyDb::Sqlite),
        Database::Postgres(target) => connect(target, false),
    }
}

/// [`open_writer`] for either database. PostgreSQL has no file to check:
/// the server is asked, and a failure names the database (never the
/// password) and what to check.
pub fn open_write(db: &Database) -> Result<AnyDb, OpsError> {
    match db {
        Database::Sqlite(path) => open_writer(path).map(AnyDb::Sqlite),
        Database::Postgres(target) => connect(target, true),
    }
}

fn connect(target: &PgTarget, write: bool) -> Result<AnyDb, OpsError> {
    match PgConn::connect(target, !write) {
        Ok(conn) => Ok(AnyDb::Postgres(Box::new(conn))),
        Err(e @ StoreError::Unavailable(_)) => Err(OpsError::Open {
            path: target.to_string(),
            write,
            problem: e.to_string(),
            fix: "Check the URL (--db, MODELGATE_DATABASE, DATABASE_URL), that the server \
                  is up and reachable, and the credentials"
                .into(),
            code: "database_unavailable",
        }),
        Err(e) => Err(OpsError::from(e)),
    }
}

/// SQLite's open/first-read failures, named with the file and the fix.
fn open_error(path: &Path, write: bool, err: rusqlite::Error) -> OpsError {
    use rusqlite::ErrorCode;
    let rusqlite::Error::SqliteFailure(ffi, _) = &err else {
        return OpsError::from(StoreError::from(err));
    };
    let shown = path.display().to_string();
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.display().to_string(),
        None => ".".to_string(),
    };
    let sqlite = err.to_string();
    let wal = is_wal(path);
    let open = |problem: String, fix: String, code| OpsError::Open {
        path: shown.clone(),
        write,
        problem,
        fix,
        code,
    };
    match ffi.code {
        ErrorCode::NotADatabase => open(
            format!("it is not an SQLite database ({sqlite})"),
            "Check that --db names Open WebUI's webui.db".into(),
            "not_a_database",
        ),
        ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied if write => open(
            format!("this user may not write it ({sqlite})"),
            format!(
                "Write commands need write permission on {shown}, on {dir} (SQLite creates \
                     {shown}-wal and {shown}-shm there) and on those two files when they exist; \
                     run the command as the user that runs `serve`"
            ),
            "permission_denied",
        ),
        // Reproduced as an unprivileged user: with the gateway (or Open
        // WebUI) running, `-shm` exists and a read-only reader maps it
        // read-only and works; with neither running SQLite has removed it
        // and must create it, which a read-only directory forbids.
        ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied if wal => open(
            format!(
                "it is in WAL mode and SQLite cannot create its shared-memory file \
                 {shown}-shm ({sqlite})"
            ),
            format!(
                "Readers of a WAL database need {shown}-shm: it exists while `serve` or Open \
                 WebUI has the database open (then reading works), otherwise SQLite creates it \
                 in {dir}. Run the command while the gateway runs, or as the user that runs \
                 `serve`, or let this user's group write {dir} (chgrp GROUP {dir}; chmod g+w \
                 {dir})"
            ),
            "wal_not_readable",
        ),
        ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => open(
            format!("SQLite cannot open it ({sqlite})"),
            format!(
                "This user needs read permission on {shown} and search (x) permission on {dir}"
            ),
            "permission_denied",
        ),
        _ => OpsError::from(StoreError::from(err)),
    }
}

/// Whether the file's header says WAL (file format versions 2 at offsets
/// 18 and 19); false when it cannot be read.
fn is_wal(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map(|()| header[18] == 2 || header[19] == 2)
        .unwrap_or(false)
}

/// Widest a table cell gets, in characters: a UUID (36) fits; a longer
/// name, email or change summary is cut with `…` (`--json` has it whole).
pub const MAX_CELL: usize = 40;

/// Left-aligned columns, two spaces apart, each at most [`MAX_CELL`]
/// characters. Hand-written rather than a table crate: the streamed
/// `report --users` listing cannot size columns from all rows and uses
/// [`fit`] with fixed widths, and these tables need nothing more.
fn write_table(
    f: &mut std::fmt::Formatter<'_>,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::fmt::Result {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count().min(MAX_CELL));
        }
    }
    let line = |f: &mut std::fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(&fit(cell, *w));
        }
        writeln!(f, "{}", out.trim_end())
    };
    line(f, &mut headers.iter().copied())?;
    for row in rows {
        line(f, &mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

/// `cell` padded to `width` characters, or cut to `width - 1` plus `…`.
/// Characters, not display columns: wide (CJK) characters can still push
/// a row out of line, which costs readability, not correctness.
pub fn fit(cell: &str, width: usize) -> String {
    let len = cell.chars().count();
    if len <= width {
        let mut out = String::with_capacity(cell.len() + width - len);
        out.push_str(cell);
        out.extend(std::iter::repeat(' ').take(width - len));
        out
    } else {
        let mut out: String = cell.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
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
    fn cells_are_padded_or_cut_with_an_ellipsis() {
        assert_eq!(fit("ab", 4), "ab  ");
        assert_eq!(fit("abcd", 4), "abcd");
        assert_eq!(fit("abcde", 4), "abc…");
        assert_eq!(fit("ééééé", 3), "éé…");
        assert_eq!(fit("x", 0), "…");
    }

    #[test]
    fn the_nearest_missing_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a").join("b").join("webui.db");
        assert_eq!(missing_dir(&db), Some(dir.path().join("a").as_path()));
        assert_eq!(missing_dir(&dir.path().join("webui.db")), None);
        assert_eq!(missing_dir(Path::new("webui.db")), None);
    }

    fn sqlite_failure(code: i32, message: &str) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.into()))
    }

    /// What an unprivileged reader gets on a WAL database whose `-shm` it
    /// cannot create (reproduced by hand with `setpriv`; tests run as root,
    /// where permissions do not bite): the message names the files, the
    /// directory and the fixes.
    #[test]
    fn a_wal_database_that_cannot_be_read_names_the_shm_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webui.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        drop(conn);
        assert!(is_wal(&path));
        let readonly = sqlite_failure(
            rusqlite::ffi::SQLITE_READONLY,
            "attempt to write a readonly database",
        );
        let err = open_error(&path, false, readonly);
        assert_eq!(err.code(), "wal_not_readable");
        let text = err.to_string();
        let shown = path.display().to_string();
        for needle in [
            format!("cannot read database {shown}"),
            format!("{shown}-shm"),
            format!("chmod g+w {}", dir.path().display()),
            "attempt to write a readonly database".to_string(),
            "while the gateway runs".to_string(),
        ] {
            assert!(text.contains(&needle), "{needle:?} not in {text}");
        }

        let write = open_error(
            &path,
            true,
            sqlite_failure(rusqlite::ffi::SQLITE_READONLY, "readonly"),
        );
        assert_eq!(write.code(), "permission_denied");
        let text = write.to_string();
        assert!(
            text.starts_with(&format!("cannot write database {shown}")),
            "{text}"
        );
        assert!(text.contains(&format!("{shown}-wal")), "{text}");
    }

    #[test]
    fn a_rollback_journal_database_that_cannot_be_opened_names_the_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webui.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(!is_wal(&path));
        let err = open_error(
            &path,
            false,
            sqlite_failure(
                rusqlite::ffi::SQLITE_CANTOPEN,
                "unable to open database file",
            ),
        );
        assert_eq!(err.code(), "permission_denied");
        assert!(err.to_string().contains("read permission on"), "{err}");
    }

    #[test]
    fn actor_falls_back() {
        let env = |name: &str| (name == "LOGNAME").then(|| "ops".to_string());
        assert_eq!(default_actor(&env), "ops");
        assert_eq!(default_actor(&|_| None), "cli");
        assert_eq!(default_actor(&|_| Some(" ".into())), "cli");
    }
}
