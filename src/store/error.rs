//! The store's one error type, and how SQLite failures map onto it.
//!
//! `StoreError` is `Clone` because moka hands a failed load back as
//! `Arc<E>` to every coalesced waiter; `rusqlite::Error` is not `Clone`, so
//! SQLite failures are classified at the boundary and kept as text.

use rusqlite::ErrorCode;

/// Everything that can go wrong reading or writing the access data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database file does not exist (yet, or any more).
    #[error("access database {path} is missing")]
    Missing { path: String },
    /// Another connection holds a lock past the busy timeout
    /// (SQLITE_BUSY, SQLITE_LOCKED). Nothing is wrong with the file: the
    /// same read is expected to succeed once the writer commits.
    #[error("access database busy: {0}")]
    Busy(String),
    /// The file exists but cannot be read: cannot open, I/O error, corrupt
    /// or not a database, permission denied, disk full, out of memory, or
    /// the read pool is closed.
    #[error("access database unavailable: {0}")]
    Unavailable(String),
    /// The database opens but the organization tables are absent
    /// (`modelgate init` has not run against it). The hint is part of the
    /// message so every caller shows it without matching on the text.
    #[error("access schema missing: {0}; run `modelgate init` to create the organization tables")]
    Schema(String),
    /// Any other SQLite failure (constraint, type mismatch, bad data).
    #[error("access database error: {0}")]
    Sqlite(String),
    /// Any other PostgreSQL failure (constraint, type mismatch, bad data);
    /// lost connections and refused logins are `Unavailable`.
    #[error("access database error: {0}")]
    Postgres(String),
    /// Admin write naming an organization that has no `organizations` row.
    #[error("unknown organization {0:?}")]
    UnknownOrganization(String),
    /// Admin write naming a user absent from Open WebUI's `user` table.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// A membership role other than `member` or `admin`.
    #[error("invalid role {0:?} (expected member or admin)")]
    InvalidRole(String),
    /// An id argument that is empty or only whitespace.
    #[error("{0} must not be empty")]
    EmptyId(&'static str),
    /// A model pattern that cannot be parsed.
    #[error("invalid model pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    /// `org create` with an id that exists under another name.
    #[error("organization {id:?} already exists (named {name:?}); use `org rename` to rename it")]
    OrganizationExists { id: String, name: String },
    /// A group binding naming no Open WebUI group (by id or name).
    #[error("unknown Open WebUI group {0:?}")]
    UnknownGroup(String),
    /// A group name several Open WebUI groups share.
    #[error("group name {name:?} is ambiguous ({} groups: {}); bind by id", ids.len(), ids.join(", "))]
    AmbiguousGroup { name: String, ids: Vec<String> },
    /// A user named by an email no Open WebUI user has.
    #[error("no Open WebUI user has the email {0:?}")]
    UnknownEmail(String),
    /// An email several Open WebUI users share (Open WebUI refuses a
    /// second sign-up, but another writer may not have).
    #[error("email {email:?} is ambiguous ({} users: {}); name the user by id", ids.len(), ids.join(", "))]
    AmbiguousEmail { email: String, ids: Vec<String> },
    /// Backup destination problems (it exists, or its directory is missing).
    #[error("backup failed: {0}")]
    Backup(String),
    /// `migrate` would leave the organization without any model.
    #[error("organization {0:?} would have no models")]
    NoModels(String),
}

impl StoreError {
    /// True for the failures a lookup can produce: the proxy answers 503
    /// ("access data unavailable", fail closed) for every one of them.
    /// The remaining variants only come from admin writes.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Missing { .. }
                | StoreError::Busy(_)
                | StoreError::Unavailable(_)
                | StoreError::Schema(_)
                | StoreError::Sqlite(_)
                | StoreError::Postgres(_)
        )
    }

    /// True when the connection that produced this error should not be
    /// reused: reopening is how the store recovers from a replaced,
    /// restored or repaired file. A busy connection is dropped too: after a
    /// long lock the file may well have been swapped underneath it.
    pub(crate) fn poisons_connection(&self) -> bool {
        matches!(
            self,
            StoreError::Missing { .. }
                | StoreError::Busy(_)
                | StoreError::Unavailable(_)
                | StoreError::Schema(_)
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        let text = err.to_string();
        if let rusqlite::Error::SqliteFailure(ffi, _) = &err {
            match ffi.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    return StoreError::Busy(text)
                }
                ErrorCode::CannotOpen
                | ErrorCode::NotADatabase
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::OutOfMemory
                | ErrorCode::DiskFull => return StoreError::Unavailable(text),
                _ => {}
            }
        }
        if is_no_such_table(&text) {
            StoreError::Schema(text)
        } else {
            StoreError::Sqlite(text)
        }
    }
}

/// SQLite reports a missing table as a generic SQLITE_ERROR; the message is
/// the only way to tell it apart.
pub(crate) fn is_no_such_table(text: &str) -> bool {
    text.contains("no such table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_is_unavailable_and_poisons() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let err = rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                Some("database is locked".into()),
            );
            let mapped = StoreError::from(err);
            assert!(matches!(mapped, StoreError::Busy(_)), "{mapped:?}");
            assert!(mapped.is_unavailable());
            assert!(mapped.poisons_connection());
        }
    }

    /// The variant follows the code, never the wording: a corrupt file whose
    /// message happens to say "locked" is still unavailable, not busy.
    #[test]
    fn classification_ignores_the_message() {
        let err = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("page locked busy".into()),
        );
        assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
    }

    #[test]
    fn schema_message_names_the_fix() {
        let text = StoreError::Schema("organization tables absent".into()).to_string();
        assert!(text.contains("modelgate init"), "{text}");
    }

    #[test]
    fn missing_table_is_schema() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let err = conn
            .prepare("SELECT 1 FROM organization_members")
            .unwrap_err();
        assert!(matches!(StoreError::from(err), StoreError::Schema(_)));
    }

    #[test]
    fn admin_errors_are_not_unavailable() {
        assert!(!StoreError::InvalidRole("x".into()).is_unavailable());
        assert!(!StoreError::EmptyId("user id").is_unavailable());
        assert!(!StoreError::UnknownOrganization("o".into()).is_unavailable());
    }
}
