//! A blocking PostgreSQL connection for the admin layer ([`AdminDb`]): the
//! CLI and the management API's blocking tasks write through it, exactly
//! the statements the SQLite writer runs.
//!
//! Not the `postgres` crate: that is this, a tokio-postgres client driven
//! by a runtime of its own, and the few lines here cost no dependency.
//! The runtime is current-thread and private to the connection, so it
//! works the same from `main` (no runtime at all) and from a blocking task
//! of the server's runtime; it must not be used (or dropped) on an async
//! worker thread, which nothing here does.

use std::future::Future;
use std::time::Duration;

use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use crate::store::database::{quote_ident, PgTarget};
use crate::store::error::StoreError;
use crate::store::schema::SchemaReport;
use crate::store::sql::{rewrite, AdminDb, Cell, Dialect, Row, Value};

/// How long connecting may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The lock every admin write transaction takes first (see
/// [`AdminDb::begin`]); `init` has its own.
const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('modelgate admin write'))";

pub struct PgConn {
    /// `None` only while dropping.
    client: Option<Client>,
    /// Drives the connection; ends after the client is dropped.
    task: Option<tokio::task::JoinHandle<()>>,
    runtime: tokio::runtime::Runtime,
    target: String,
}

impl PgConn {
    /// Connects (TLS as the URL says). `read_only`: every transaction of
    /// the session is read-only, so a listing can never write.
    pub fn connect(target: &PgTarget, read_only: bool) -> Result<PgConn, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start a runtime: {e}")))?;
        let mut target_config = target.clone();
        if target.config().get_connect_timeout().is_none() {
            target_config = target_config.with_connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, task) = runtime.block_on(async {
            let (client, task) = super::connect_with_task(&target_config).await?;
            if read_only {
                client
                    .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                    .await?;
            }
            Ok::<_, StoreError>((client, task))
        })?;
        Ok(PgConn {
            client: Some(client),
            task: Some(task),
            runtime,
            target: target.to_string(),
        })
    }

    fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the connection is closed".into()))
    }

    /// The database, as shown (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// The declared type of each parameter, so the server never has to infer
/// one (`'om_' || $1` alone would leave it guessing).
fn types(params: &[Value<'_>]) -> Vec<Type> {
    params
        .iter()
        .map(|p| match p {
            Value::Text(_) | Value::Null => Type::TEXT,
            Value::Int(_) => Type::INT8,
            Value::Bool(_) => Type::BOOL,
        })
        .collect()
}

fn boxed<'a>(params: &[Value<'a>]) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send + 'a> {
            match p {
                Value::Text(s) => Box::new(*s),
                Value::Int(n) => Box::new(*n),
                Value::Bool(b) => Box::new(*b),
                Value::Null => Box::new(None::<&str>),
            }
        })
        .collect()
}

fn row(r: &tokio_postgres::Row) -> Result<Row, StoreError> {
    let mut cells = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?.map(Cell::Bool)
        } else if *ty == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|n| Cell::Int(n.into()))
        } else if *ty == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map(|n| Cell::Int(n.into()))
        } else if *ty == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map(Cell::Real)
        } else if [
            Type::TEXT,
            Type::VARCHAR,
            Type::BPCHAR,
            Type::NAME,
            Type::UNKNOWN,
        ]
        .contains(ty)
        {
            r.try_get::<_, Option<String>>(i)?.map(Cell::Text)
        } else {
            return Err(StoreError::Postgres(format!(
                "result column {} has type {ty}, which the admin layer does not read \
                 (cast it to text in the query)",
                column.name()
            )));
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

impl Drop for PgConn {
    /// Closes the session properly (the connection task sends Terminate
    /// once the client is gone) instead of cutting the socket, which the
    /// server would log as an unexpected EOF for every command.
    fn drop(&mut self) {
        drop(self.client.take());
        if let Some(task) = self.task.take() {
            // The timer belongs to this runtime: made inside it.
            self.runtime.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
            });
        }
    }
}

impl AdminDb for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let sql = rewrite(Dialect::Postgres, sql);
        let values = boxed(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| &**b as _).collect();
        self.block_on(async {
            let stmt = self.client()?.prepare_typed(&sql, &types(params)).await?;
            Ok::<_, StoreError>(self.client()?.execute(&stmt, &refs).await?)
        })
    }

    fn for_each_row(
        &self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let sql = rewrite(Dialect::Postgres, sql);
        let values = boxed(params);
        self.block_on(async {
            let stmt = self.client()?.prepare_typed(&sql, &types(params)).await?;
            let refs = values.iter().map(|b| &**b as &(dyn ToSql + Sync));
            // Rows as the server sends them: a large listing is never
            // held whole.
            let rows = self.client()?.query_raw(&stmt, refs).await?;
            pin_mut!(rows);
            while let Some(r) = rows.try_next().await? {
                each(row(&r)?)?;
            }
            Ok::<_, StoreError>(())
        })
    }

    fn table_exists(&self, name: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 WHERE to_regclass(?1) IS NOT NULL",
            &[Value::Text(&quote_ident(name))],
        )
    }

    fn column_exists(&self, table: &str, column: &str) -> Result<bool, StoreError> {
        self.exists(
            "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(?1) \
             AND attname = ?2 AND NOT attisdropped",
            &[Value::Text(&quote_ident(table)), Value::Text(column)],
        )
    }

    fn begin(&self) -> Result<(), StoreError> {
        self.block_on(self.client()?.batch_execute("BEGIN"))?;
        self.block_on(self.client()?.batch_execute(WRITE_LOCK))?;
        Ok(())
    }

    fn commit(&self) -> Result<(), StoreError> {
        Ok(self.block_on(self.client()?.batch_execute("COMMIT"))?)
    }

    fn rollback(&self) -> Result<(), StoreError> {
        Ok(self.block_on(self.client()?.batch_execute("ROLLBACK"))?)
    }

    fn set_actor(&self, actor: &str) -> Result<(), StoreError> {
        // `SET LOCAL` takes no parameter; `set_config(..., true)` is it.
        self.query_opt(
            "SELECT set_config('modelgate.actor', ?1, true)",
            &[Value::Text(actor)],
        )?;
        Ok(())
    }

    fn clear_actor(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn create_schema(&self) -> Result<SchemaReport, StoreError> {
        self.block_on(super::schema::create_in(self.client()?))
    }
}
