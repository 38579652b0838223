//! [`AnyDb`]: a SQLite or a PostgreSQL connection, whichever the database
//! setting names, behind the one [`AdminDb`] the admin code is written
//! against (the CLI and the management API hold one of these).

use rusqlite::Connection;

use super::{AdminDb, Dialect, Row, Value};
use crate::store::error::StoreError;
use crate::store::pg::blocking::PgConn;
use crate::store::schema::SchemaReport;

pub enum AnyDb {
    Sqlite(Connection),
    Postgres(Box<PgConn>),
}

impl AnyDb {
    /// The SQLite connection, for what only SQLite has (online backup,
    /// the update hook that reports `migrate`'s progress).
    pub fn sqlite(&self) -> Option<&Connection> {
        match self {
            AnyDb::Sqlite(conn) => Some(conn),
            AnyDb::Postgres(_) => None,
        }
    }
}

/// Every method forwards to the connection inside.
macro_rules! forward {
    ($self:ident, $db:ident => $call:expr) => {
        match $self {
            AnyDb::Sqlite($db) => $call,
            AnyDb::Postgres($db) => {
                let $db: &PgConn = $db;
                $call
            }
        }
    };
}

impl AdminDb for AnyDb {
    fn dialect(&self) -> Dialect {
        forward!(self, db => db.dialect())
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        forward!(self, db => AdminDb::execute(db, sql, params))
    }

    fn for_each_row(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        forward!(self, db => db.for_each_row(sql, params, each))
    }

    fn table_exists(&self, name: &str) -> Result<bool, StoreError> {
        forward!(self, db => db.table_exists(name))
    }

    fn column_exists(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        forward!(self, db => db.column_exists(table, column))
    }

    fn begin(&self) -> Result<(), StoreError> {
        forward!(self, db => db.begin())
    }

    fn commit(&self) -> Result<(), StoreError> {
        forward!(self, db => db.commit())
    }

    fn rollback(&self) -> Result<(), StoreError> {
        forward!(self, db => db.rollback())
    }

    fn set_actor(&self, actor: &str) -> Result<(), StoreError> {
        forward!(self, db => db.set_actor(actor))
    }

    fn clear_actor(&self) -> Result<(), StoreError> {
        forward!(self, db => db.clear_actor())
    }

    fn create_schema(&self) -> Result<SchemaReport, StoreError> {
        forward!(self, db => AdminDb::create_schema(db))
    }
}
