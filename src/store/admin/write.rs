//! What every admin write shares: the writer connection, the transaction
//! that stamps the actor for the audit triggers, and the argument checks.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use serde::Serialize;

use crate::store::error::StoreError;
use crate::store::sql::{in_transaction, AdminDb, Value};

/// What a write did, so the CLI can say so (and tests can check no-ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOutcome {
    Created,
    Reactivated,
    Updated,
    Deactivated,
    Unchanged,
    NotFound,
}

/// Opens the database for writing the way Open WebUI does (WAL,
/// `busy_timeout` 5 s), creating the file when missing (`modelgate init`).
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    configure_writer(&conn)?;
    Ok(conn)
}

/// What [`open_writer`] sets on a connection, for callers that open the
/// file themselves (the CLI, which must not create it).
pub fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")
}

/// Runs `body` in one write transaction with `actor` recorded for the
/// audit triggers; an error rolls everything back.
pub(crate) fn with_actor<D: AdminDb + ?Sized, T>(
    conn: &D,
    actor: &str,
    body: impl FnOnce(&D) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    in_transaction(conn, |tx| {
        tx.set_actor(actor)?;
        let out = body(tx)?;
        // Cleared before commit so no later writer's change is blamed on
        // `actor`.
        tx.clear_actor()?;
        Ok(out)
    })
}

/// Runs a deactivating `update` keyed by (organization, subject); `exists`
/// tells an already inactive row (`Unchanged`) from no row (`NotFound`).
pub(super) fn deactivate(
    tx: &(impl AdminDb + ?Sized),
    update: &str,
    exists: &str,
    org: &str,
    subject: &str,
) -> Result<WriteOutcome, StoreError> {
    let keys = [Value::Text(org), Value::Text(subject)];
    if tx.execute(update, &keys)? > 0 {
        return Ok(WriteOutcome::Deactivated);
    }
    if tx.exists(exists, &keys)? {
        Ok(WriteOutcome::Unchanged)
    } else {
        Ok(WriteOutcome::NotFound)
    }
}

pub(super) fn require_org(conn: &(impl AdminDb + ?Sized), org: &str) -> Result<(), StoreError> {
    if conn.exists(
        "SELECT 1 FROM organizations WHERE id = ?1",
        &[Value::Text(org)],
    )? {
        Ok(())
    } else {
        Err(StoreError::UnknownOrganization(org.to_string()))
    }
}

/// The one id `sql` (selecting ids by a name, `?1`) finds for `name`: none
/// is `unknown`, several are `ambiguous` — a name two rows share names
/// neither.
pub(super) fn only_match(
    conn: &(impl AdminDb + ?Sized),
    sql: &str,
    name: &str,
    unknown: impl FnOnce() -> StoreError,
    ambiguous: impl FnOnce(Vec<String>) -> StoreError,
) -> Result<String, StoreError> {
    let mut ids = conn
        .query_rows(sql, &[Value::Text(name)])?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<Vec<_>, _>>()?;
    match ids.len() {
        0 => Err(unknown()),
        1 => Ok(ids.remove(0)),
        _ => Err(ambiguous(ids)),
    }
}

pub(super) fn non_empty<'a>(value: &'a str, what: &'static str) -> Result<&'a str, StoreError> {
    if value.trim().is_empty() {
        Err(StoreError::EmptyId(what))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::{audit_actors, db};

    #[test]
    fn a_failed_body_rolls_back_and_leaves_no_actor() {
        let conn = db();
        let err = with_actor(&conn, "alice", |tx| {
            tx.execute("INSERT INTO organizations (id, name) VALUES ('o', 'O')", [])?;
            Err::<(), _>(StoreError::EmptyId("x"))
        })
        .unwrap_err();
        assert_eq!(err, StoreError::EmptyId("x"));
        let orgs: i64 = conn
            .query_row("SELECT COUNT(*) FROM organizations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(orgs, 0);
        let context: i64 = conn
            .query_row("SELECT COUNT(*) FROM permission_audit_context", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(context, 0);
        assert!(audit_actors(&conn).is_empty());
    }

    #[test]
    fn the_actor_is_cleared_after_commit() {
        let conn = db();
        with_actor(&conn, "alice", |_| Ok(())).unwrap();
        let context: i64 = conn
            .query_row("SELECT COUNT(*) FROM permission_audit_context", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(context, 0);
    }

    #[test]
    fn blank_ids_are_refused() {
        assert_eq!(
            non_empty(" \t", "user id"),
            Err(StoreError::EmptyId("user id"))
        );
        assert_eq!(non_empty("u", "user id"), Ok("u"));
    }

    #[test]
    fn unknown_organizations_are_refused() {
        let conn = db();
        assert_eq!(
            require_org(&conn, "nope"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
    }

    #[test]
    fn open_writer_creates_a_wal_file() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("new.db")).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
