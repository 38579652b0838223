//! Online backup of the database before risky operations.

use std::path::Path;

use rusqlite::Connection;

use crate::store::error::StoreError;

/// Online backup of the main database to `dest` (SQLite's backup API: a
/// consistent copy while Open WebUI keeps writing). Refuses to overwrite.
pub fn backup(src: &Connection, dest: &Path) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::Backup(format!(
            "{} already exists",
            dest.display()
        )));
    }
    src.backup(rusqlite::DatabaseName::Main, dest, None)
        .map_err(|e| StoreError::Backup(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::orgs::{create_org, list_orgs};
    use crate::store::admin::test_db::db;

    #[test]
    fn copies_the_database() {
        let conn = db();
        create_org(&conn, "o", "O", "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("copy.db");
        backup(&conn, &dest).unwrap();
        let copy = Connection::open(&dest).unwrap();
        assert_eq!(list_orgs(&copy).unwrap(), list_orgs(&conn).unwrap());
    }

    #[test]
    fn refuses_to_overwrite() {
        let conn = db();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("taken.db");
        std::fs::write(&dest, b"keep me").unwrap();
        assert!(matches!(backup(&conn, &dest), Err(StoreError::Backup(_))));
        assert_eq!(std::fs::read(&dest).unwrap(), b"keep me");
    }

    #[test]
    fn a_missing_directory_is_a_backup_error() {
        let conn = db();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("no").join("such").join("dir.db");
        assert!(matches!(backup(&conn, &dest), Err(StoreError::Backup(_))));
    }
}
