//! The dialect layer the admin writes, listings and reports are written
//! against, so each statement exists once for SQLite and PostgreSQL.
//!
//! Statements are written in the common subset of the two dialects and
//! rewritten per dialect just before they run ([`rewrite`]):
//! - parameters are `?1`, `?2`, ... (SQLite's own; `$1`, ... on PostgreSQL);
//! - `{now}` is the current Unix time in seconds (SQLite's `strftime`,
//!   PostgreSQL's `extract(epoch ...)`), as an integer;
//! - `{binary}` after an `ORDER BY` key orders text by its bytes, as SQLite
//!   does by default (`COLLATE "C"` on PostgreSQL, whose database
//!   collation may be a locale's: the same listing in the same order on
//!   both);
//! - booleans are compared and set with `TRUE`/`FALSE` (`is_active =
//!   TRUE`, `is_active <> FALSE`): SQLite reads them as 1/0, so our SQLite
//!   columns keep holding the integers 1 and 0, and PostgreSQL's columns
//!   are `boolean`. Reading one back goes through [`Row::flag`], which
//!   takes either;
//! - `"user"` and `"group"` are always quoted (bare `user` is
//!   `current_user` on PostgreSQL);
//! - `INSERT ... ON CONFLICT DO NOTHING` / `DO UPDATE` instead of SQLite's
//!   `INSERT OR IGNORE` / `OR REPLACE` (SQLite needs a `WHERE` on an
//!   `INSERT ... SELECT` before `ON CONFLICT`, so those have `WHERE TRUE`
//!   at least); `IS DISTINCT FROM` instead of SQLite's `IS NOT`.
//!
//! What cannot be shared (catalog queries, the actor stamp for the audit
//! triggers, schema creation, transactions) is a method of [`AdminDb`],
//! each dialect's variant beside the other's in `sqlite` and
//! `crate::store::pg::blocking`.
//!
//! # Layout
//! - `sqlite` — [`AdminDb`] for `rusqlite::Connection`
//! - `any`    — [`AnyDb`]: either, chosen at run time (the CLI, the API)

mod any;
mod sqlite;

use std::borrow::Cow;

use super::error::StoreError;
use super::schema::SchemaReport;

pub use any::AnyDb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement parameter. PostgreSQL statements are prepared with the
/// parameters' types (`text`, `bigint`, `boolean`; `text` for `Null`), so
/// no parameter's type is left for the server to guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
    Null,
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Text(s)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Value::Null, Value::Text)
    }
}

/// One value read back, as either dialect hands it over.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

/// One result row. The getters fail (rather than guess) on a value of
/// another type than the column should hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub(crate) Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| mismatch(i, "a column", "no such column"))
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| mismatch(i, "text", "NULL"))
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(s) => Ok(Some(s.clone())),
            other => Err(mismatch(i, "text", &format!("{other:?}"))),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| mismatch(i, "an integer", "NULL"))
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            other => Err(mismatch(i, "an integer", &format!("{other:?}"))),
        }
    }

    /// An `is_active`-style flag: PostgreSQL's boolean, or SQLite's
    /// integer, where only 1 is true (as the SQLite code always read it:
    /// NULL or any other number is inactive).
    pub fn flag(&self, i: usize) -> Result<bool, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(false),
            Cell::Bool(b) => Ok(*b),
            Cell::Int(n) => Ok(*n == 1),
            other => Err(mismatch(i, "a boolean", &format!("{other:?}"))),
        }
    }
}

fn mismatch(column: usize, wanted: &str, got: &str) -> StoreError {
    StoreError::Schema(format!(
        "result column {column} should be {wanted}, but is {got}"
    ))
}

/// What each dialect provides. Statement text is written once (see the
/// module doc) and rewritten by the implementation.
pub trait AdminDb {
    fn dialect(&self) -> Dialect;

    /// Runs one statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError>;

    /// Calls `each` for every row as the database yields it (memory stays
    /// flat on a large listing). An error from `each` stops the walk.
    fn for_each_row(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// A table (or view) by name, as the queries would resolve it: SQLite's
    /// main schema, PostgreSQL's search_path.
    fn table_exists(&self, name: &str) -> Result<bool, StoreError>;

    fn column_exists(&self, table: &str, column: &str) -> Result<bool, StoreError>;

    /// Starts a write transaction that holds the writers' lock from the
    /// start (SQLite `BEGIN IMMEDIATE`; a transaction-scoped advisory lock
    /// on PostgreSQL): two admin writes never interleave their checks and
    /// writes, on either database.
    fn begin(&self) -> Result<(), StoreError>;
    fn commit(&self) -> Result<(), StoreError>;
    fn rollback(&self) -> Result<(), StoreError>;

    /// Names the actor the audit triggers record for the rest of the
    /// transaction; nobody else's writes are ever blamed on it.
    fn set_actor(&self, actor: &str) -> Result<(), StoreError>;

    /// Forgets the actor before commit (SQLite's context row; a no-op on
    /// PostgreSQL, where the setting ends with the transaction).
    fn clear_actor(&self) -> Result<(), StoreError>;

    /// Creates or repairs the organization schema inside the current
    /// transaction (`migrate` creates it and links rows atomically).
    fn create_schema(&self) -> Result<SchemaReport, StoreError>;

    /// Every row at once (for small results).
    fn query_rows(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::new();
        self.for_each_row(sql, params, &mut |row| {
            rows.push(row);
            Ok(())
        })?;
        Ok(rows)
    }

    /// The first row, if any (statements asking for one row say so with
    /// their keys or a `LIMIT`).
    fn query_opt(&self, sql: &str, params: &[Value<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.query_rows(sql, params)?.into_iter().next())
    }

    fn exists(&self, sql: &str, params: &[Value<'_>]) -> Result<bool, StoreError> {
        Ok(self.query_opt(sql, params)?.is_some())
    }

    /// The integer in the first column of the first row (a `COUNT(*)`).
    fn query_int(&self, sql: &str, params: &[Value<'_>]) -> Result<i64, StoreError> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Schema("a count returned no row".into()))?
            .int(0)
    }
}

/// `body` in one write transaction: committed when it returns `Ok`, rolled
/// back when it fails (or panics: the guard rolls back as it drops).
pub(crate) fn in_transaction<D: AdminDb + ?Sized, T>(
    db: &D,
    body: impl FnOnce(&D) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = WriteTx::begin(db)?;
    let out = body(db)?;
    tx.commit()?;
    Ok(out)
}

/// An open write transaction ([`AdminDb::begin`]) that rolls back unless
/// committed: for the writes that decide at the end (a dry run).
pub(crate) struct WriteTx<'a, D: AdminDb + ?Sized> {
    db: Option<&'a D>,
}

impl<'a, D: AdminDb + ?Sized> WriteTx<'a, D> {
    pub fn begin(db: &'a D) -> Result<Self, StoreError> {
        db.begin()?;
        Ok(WriteTx { db: Some(db) })
    }

    pub fn commit(mut self) -> Result<(), StoreError> {
        match self.db.take() {
            Some(db) => db.commit(),
            None => Ok(()),
        }
    }

    pub fn rollback(mut self) -> Result<(), StoreError> {
        match self.db.take() {
            Some(db) => db.rollback(),
            None => Ok(()),
        }
    }
}

impl<D: AdminDb + ?Sized> Drop for WriteTx<'_, D> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            // The error that got us here is the one worth reporting.
            let _ = db.rollback();
        }
    }
}

/// The tokens and how each dialect spells them.
const TOKENS: [(&str, &str, &str); 2] = [
    (
        "{now}",
        "CAST(strftime('%s','now') AS INTEGER)",
        "CAST(extract(epoch FROM now()) AS bigint)",
    ),
    ("{binary}", "COLLATE BINARY", "COLLATE \"C\""),
];

/// The statement as `dialect` reads it: the tokens spelled out, and on
/// PostgreSQL `?N` as `$N`. Quoted text is left alone, so a `?` in a
/// string literal or identifier is never taken for a parameter.
pub fn rewrite(dialect: Dialect, sql: &str) -> Cow<'_, str> {
    let needs_params = dialect == Dialect::Postgres && sql.contains('?');
    if !needs_params && !sql.contains('{') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 32);
    let mut quote: Option<char> = None;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        let mut taken = c.len_utf8();
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '{') => match TOKENS.iter().find(|(t, _, _)| rest.starts_with(t)) {
                Some((token, sqlite, postgres)) => {
                    out.push_str(match dialect {
                        Dialect::Sqlite => sqlite,
                        Dialect::Postgres => postgres,
                    });
                    taken = token.len();
                }
                None => out.push(c),
            },
            (None, '?') if needs_params && rest[1..].starts_with(|d: char| d.is_ascii_digit()) => {
                out.push('$');
            }
            (None, c) => out.push(c),
        }
        rest = &rest[taken..];
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_and_now_are_rewritten_outside_quotes_only() {
        let sql = "UPDATE t SET at = {now}, note = '?1 {now}' WHERE \"a?2\" = ?2 AND b = ?10 \
                   ORDER BY x {binary}, é {x}";
        assert_eq!(
            rewrite(Dialect::Postgres, sql),
            "UPDATE t SET at = CAST(extract(epoch FROM now()) AS bigint), note = '?1 {now}' \
             WHERE \"a?2\" = $2 AND b = $10 ORDER BY x COLLATE \"C\", é {x}"
        );
        assert_eq!(
            rewrite(Dialect::Sqlite, sql),
            "UPDATE t SET at = CAST(strftime('%s','now') AS INTEGER), note = '?1 {now}' \
             WHERE \"a?2\" = ?2 AND b = ?10 ORDER BY x COLLATE BINARY, é {x}"
        );
        assert!(matches!(
            rewrite(Dialect::Sqlite, "SELECT ?1"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn flags_read_either_dialect_s_booleans() {
        let row = Row(vec![
            Cell::Bool(true),
            Cell::Int(1),
            Cell::Int(0),
            Cell::Int(2),
            Cell::Null,
            Cell::Text("1".into()),
        ]);
        assert_eq!(row.flag(0), Ok(true));
        assert_eq!(row.flag(1), Ok(true));
        assert_eq!(row.flag(2), Ok(false));
        assert_eq!(row.flag(3), Ok(false), "only 1 is active, as before");
        assert_eq!(row.flag(4), Ok(false));
        assert!(row.flag(5).is_err());
        assert!(row.int(5).is_err());
        assert_eq!(row.opt_text(4), Ok(None));
        assert!(row.text(4).is_err());
        assert!(row.text(9).is_err());
    }
}
