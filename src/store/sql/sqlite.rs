//! [`AdminDb`] on SQLite: cached prepared statements, the actor in the
//! one-row `permission_audit_context` table the audit triggers read.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

use super::{rewrite, AdminDb, Cell, Dialect, Row, Value};
use crate::store::error::StoreError;
use crate::store::schema::{create_schema, SchemaReport};

impl ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Int(n) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*n)),
            // SQLite's TRUE and FALSE: our flag columns hold 1 and 0.
            Value::Bool(b) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i64::from(*b))),
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
        })
    }
}

fn cell(value: ValueRef<'_>) -> Result<Cell, StoreError> {
    Ok(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(n) => Cell::Int(n),
        ValueRef::Real(x) => Cell::Real(x),
        ValueRef::Text(t) => Cell::Text(
            std::str::from_utf8(t)
                .map_err(|_| StoreError::Sqlite("a text value is not UTF-8".into()))?
                .to_string(),
        ),
        ValueRef::Blob(_) => {
            return Err(StoreError::Sqlite(
                "a blob where text or a number was expected".into(),
            ))
        }
    })
}

impl AdminDb for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let sql = rewrite(Dialect::Sqlite, sql);
        let changed = self
            .prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(u64::try_from(changed).unwrap_or(u64::MAX))
    }

    fn for_each_row(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = rewrite(Dialect::Sqlite, sql);
        let mut stmt = self.prepare_cached(&sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(cell(r.get_ref(i)?)?);
            }
            each(Row(cells))?;
        }
        Ok(())
    }

    fn table_exists(&self, name: &str) -> Result<bool, StoreError> {
        crate::store::schema::table_exists(self, name)
    }

    fn column_exists(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        Ok(self
            .prepare_cached("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
            .exists([table, column])?)
    }

    fn begin(&self) -> Result<(), StoreError> {
        Ok(self.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn commit(&self) -> Result<(), StoreError> {
        Ok(self.execute_batch("COMMIT")?)
    }

    fn rollback(&self) -> Result<(), StoreError> {
        Ok(self.execute_batch("ROLLBACK")?)
    }

    fn set_actor(&self, actor: &str) -> Result<(), StoreError> {
        Connection::execute(
            self,
            "INSERT OR REPLACE INTO permission_audit_context (id, actor) VALUES (1, ?1)",
            [actor],
        )?;
        Ok(())
    }

    fn clear_actor(&self) -> Result<(), StoreError> {
        Connection::execute(self, "DELETE FROM permission_audit_context", [])?;
        Ok(())
    }

    fn create_schema(&self) -> Result<SchemaReport, StoreError> {
        create_schema(self)
    }
}
