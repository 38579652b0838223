//! The PostgreSQL backend of the store: the same lookups as the SQLite
//! read pool, over deadpool-postgres, and a LISTEN/NOTIFY listener in
//! place of the `data_version` poller.
//!
//! # Layout
//! - `tls`    — libpq's `sslmode`/`sslrootcert`/`sslcert`/`sslkey` on rustls
//! - `error`  — SQLSTATEs → `StoreError` (what is a 503)
//! - `schema` — `ensure_schema`: our tables, indexes, view, audit and
//!   change-notification triggers, `alembic_version` check
//! - `reader` — `PgReader`: the lookups on a deadpool
//! - `blocking` — `PgConn`: a blocking connection for the admin layer
//! - `listen` — the listener: LISTEN, heartbeat, counter check, reconnect
pub mod blocking;
mod error;
pub(crate) mod listen;
pub(crate) mod reader;
pub mod schema;
mod tls;

pub use listen::{ListenerState, ListenerStats, APPLICATION_NAME};
pub(crate) use reader::PgReader;
pub use schema::{ensure_schema, CHANNEL};

/// Connects once, outside any pool (for `init` and tests).
pub async fn connect(
    target: &crate::store::PgTarget,
) -> Result<tokio_postgres::Client, crate::store::StoreError> {
    connect_with_task(target).await.map(|(client, _)| client)
}

/// [`connect`], with the task that drives the connection: it ends once the
/// client is dropped and the server told goodbye.
pub(crate) async fn connect_with_task(
    target: &crate::store::PgTarget,
) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let tls = tls::connector(target.tls()).map_err(crate::store::StoreError::Unavailable)?;
    let (client, connection) = target.config().connect(tls).await?;
    let task = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok((client, task))
}
